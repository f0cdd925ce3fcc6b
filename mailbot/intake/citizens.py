"""What a citizen's (or a machine's) message does to the tickets, once decided.

Everything here runs on the caller's connection, inside the transaction of the inbound message
that caused it: the ticket change, its event log and the outgoing rows commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import inbound_rows, outbox_rows, service, ticket_rows
from mailbot.db.inbound_rows import Duplicate
from mailbot.db.outbox_rows import SentMessage
from mailbot.db.ticket_rows import TicketRow
from mailbot.logformat import log_fields
from mailbot.mail.parse import InboundMail, parse_message
from mailbot.sending import outgoing
from mailbot.settings import MailboxSettings, Settings
from mailbot.standards import authority, completeness, deadlines
from mailbot.states import TicketStatus

log = logging.getLogger(__name__)

# A message over the size cap: a ticket from its headers; the whole message stays on the
# server, in the quarantine folder, where staff open it (the notice says so).
OVERSIZED = "oversized"


@dataclass(frozen=True, slots=True)
class Arrival:
    """An inbound message as stored: what the stages after storage act on."""

    mailbox: MailboxSettings  # where it arrived
    mail: InboundMail
    raw: bytes
    inbound_id: int
    received_at: datetime  # the server's arrival instant (INTERNALDATE)

    @property
    def sender(self) -> str | None:
        return self.mail.from_address.address if self.mail.from_address else None


def staff_recipients(settings: Settings, ticket: TicketRow) -> tuple[str, ...]:
    """Who works a ticket: its assignee while they may act on it (`authority`), else its
    queue's staff."""
    if ticket.assignee and authority.may_act_on(settings, ticket, ticket.assignee).allowed:
        return (ticket.assignee,)
    return authority.queue_of(settings, ticket).staff


def automatic_mail_blocked(
    connection: Connection, app: App, recipient: str, now: datetime
) -> str | None:
    """Why no automatic answer may go to `recipient` now, or None.

    The per-address cap stops loops with one correspondent; a flood from many addresses is
    not refused here but paced by the sender (mailbot/sending/delivery.py): it never drops anyone.
    An undeliverable mark never blocks an acknowledgement: the person just wrote, which
    clears it (`mark_reachable`).
    """
    limit = app.settings.classification.per_address_daily_limit
    start_of_day = app.calendar.end_of_day(app.calendar.office_date(now) - timedelta(days=1))
    if outbox_rows.automatic_answers_since(connection, start_of_day, recipient) >= limit:
        return f"per-address limit of {limit} automatic answers a day"
    return None


def acknowledge(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
    now: datetime,
    *,
    automatic: bool,
) -> None:
    """Queue the acknowledgement of a new ticket, or record why none may go (`automatic`:
    the message is automatic mail, which is never answered)."""
    blocked = (
        "automatic message: no automatic answer"
        if automatic
        else automatic_mail_blocked(connection, app, ticket.requester, now)
    )
    if blocked is None:
        outgoing.acknowledgement(
            connection, app, arrival.mailbox, ticket, arrival.mail, arrival.inbound_id, now
        )
        return
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "acknowledgement_withheld",
        blocked,
        inbound_id=arrival.inbound_id,
    )
    if not automatic:
        log.warning(
            "acknowledgement withheld: %s",
            blocked,
            extra=log_fields(
                mailbox=arrival.mailbox.name, ref=ticket.ref, inbound=arrival.inbound_id
            ),
        )


def _to_workers(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
    now: datetime,
    *,
    template: str,
    values: dict[str, object],
    purpose: str,
    dedupe: str,
    event: str,
) -> None:
    """The citizen's message, with its text and attachments, to whoever works the ticket."""
    outgoing.to_staff(
        connection,
        app,
        template=template,
        values={
            "subject": arrival.mail.subject,
            "text": arrival.mail.text,
            "left_out": arrival.mail.left_out,
            "defects": arrival.mail.defects,
            **values,
        },
        queue=app.settings.queue_for(ticket.category, ticket.mailbox),
        recipients=staff_recipients(app.settings, ticket),
        ticket=ticket,
        purpose=purpose,
        dedupe=dedupe,
        now=now,
        attachments_from=arrival.raw if arrival.mail.attachments else None,
        event=event,
        inbound_id=arrival.inbound_id,
    )


def notify_new_ticket(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
    now: datetime,
    *,
    reason: str = "",
) -> None:
    """Send the queue's staff (or the assignee) the request itself, with its attachments."""
    if not staff_recipients(app.settings, ticket):
        queue = app.settings.queue_for(ticket.category, ticket.mailbox)
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "notice_skipped",
            f"queue {queue.name} has no staff address configured",
            inbound_id=arrival.inbound_id,
        )
        return
    _to_workers(
        connection,
        app,
        ticket,
        arrival,
        now,
        template="notice",
        values={"attachments": arrival.mail.attachments, "reason": reason},
        purpose="notice",
        dedupe=f"notice:{ticket.ref}:{arrival.inbound_id}",
        event="notice_queued",
    )


def notify_handover(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    previous: MailboxSettings,
    *,
    actor: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """The ticket moved to another queue: that queue's staff receive the request (the notice,
    saying who handed it over and from which queue), so they can answer it."""
    queue = authority.queue_of(app.settings, ticket)
    if queue.name == previous.name:
        return
    stored = inbound_rows.first_request(connection, ticket.id)
    if stored is None or not staff_recipients(app.settings, ticket):
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "handover_notice_skipped",
            f"queue {queue.name}: no staff address or no stored request",
            inbound_id=inbound_id,
        )
        return
    mail = parse_message(stored.raw)
    arrival = Arrival(previous, mail, stored.raw, stored.id, stored.internal_date)
    _to_workers(
        connection,
        app,
        ticket,
        arrival,
        now,
        template="notice",
        values={
            "attachments": mail.attachments,
            "reason": "handover",
            "handed_over_by": actor,
            "from_queue": previous,
        },
        purpose="notice",
        dedupe=f"handover:{ticket.ref}:{inbound_id}",
        event="handover_notice_queued",
    )


def follow_up(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
    now: datetime,
    *,
    reopen: bool,
) -> None:
    """The requester wrote again: complete a request declared incomplete (its arrival is the
    complete request's receipt), or end a hold; reopen when `reopen` (decided by
    `tickets.decide`), and forward the message to whoever works the ticket."""
    completed = completeness.complete(
        connection,
        app,
        ticket,
        arrival.received_at,
        now,
        actor=ticket.requester,
        inbound_id=arrival.inbound_id,
        how="the requester's message completed the request",
    )
    hold_ended = completed or deadlines.end_hold(
        connection,
        app,
        ticket,
        arrival.received_at,
        now,
        actor=ticket.requester,
        inbound_id=arrival.inbound_id,
    )
    if reopen:
        ticket_rows.set_ticket_fields(
            connection, ticket.id, now, status=TicketStatus.OPEN.value, closed_at=None
        )
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "reopened",
            "follow-up from the requester",
            actor=ticket.requester,
            inbound_id=arrival.inbound_id,
        )
    current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
    if not staff_recipients(app.settings, current):
        return
    _to_workers(
        connection,
        app,
        current,
        arrival,
        now,
        template="forward",
        values={
            "reopened": reopen,
            "hold_ended": hold_ended,
            "completed": completed,
            "complete_day": app.calendar.receipt_day(arrival.received_at),
            "due_date": current.due_date,
        },
        purpose="forward",
        dedupe=f"forward:{arrival.inbound_id}",
        event="follow_up_forwarded",
    )


def hold_for_review(
    connection: Connection,
    app: App,
    ticket: TicketRow | None,
    arrival: Arrival,
    reasons: Sequence[str],
    now: datetime,
    *,
    recipients: Sequence[str] | None = None,
) -> None:
    """Keep the message, relay nothing, and tell the queue's staff (or `recipients`, e.g. its
    supervisors) why (never the sender)."""
    queue = app.settings.queue_for(ticket.category, ticket.mailbox) if ticket else arrival.mailbox
    outgoing.to_staff(
        connection,
        app,
        template="held",
        values={
            "ref": ticket.ref if ticket else None,
            "sender": arrival.sender,
            "subject": arrival.mail.subject,
            "received_at": now.astimezone(app.calendar.zone).strftime("%Y-%m-%d %H:%M"),
            "inbound_id": arrival.inbound_id,
            "reasons": list(reasons),
        },
        queue=queue,
        recipients=queue.staff if recipients is None else recipients,
        ticket=ticket,
        purpose="held_notice",
        dedupe=f"held:{arrival.inbound_id}",
        now=now,
    )
    if ticket is not None:
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "message_held",
            "; ".join(reasons),
            actor=arrival.sender or "unknown",
            inbound_id=arrival.inbound_id,
        )
    log.warning(
        "inbound message held: %s",
        "; ".join(reasons),
        extra=log_fields(
            mailbox=arrival.mailbox.name,
            inbound=arrival.inbound_id,
            ref=ticket.ref if ticket else None,
        ),
    )


def reclassify(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    category: str,
    *,
    actor: str,
    inbound_id: int | None,
    now: datetime,
    reason: str,
) -> None:
    """Move a ticket to another category: its deadlines are recomputed from the original
    receipt time, and an assignee who may not act on it in its new queue is unassigned."""
    if category == ticket.category:
        return
    moved = replace(ticket, category=category)
    ticket_rows.set_ticket_fields(connection, ticket.id, now, category=category)
    deadlines.recompute(connection, app, ticket.id, now)
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "reclassified",
        f"{ticket.category} -> {category}: {reason}",
        actor=actor,
        inbound_id=inbound_id,
    )
    if ticket.assignee and not authority.may_act_on(app.settings, moved, ticket.assignee).allowed:
        ticket_rows.set_ticket_fields(connection, ticket.id, now, assignee=None)
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "unassigned",
            f"{ticket.assignee} is not on the {category} queue",
            actor=actor,
            inbound_id=inbound_id,
        )


@dataclass(frozen=True, slots=True)
class Bounce:
    """A permanent failure report about a message we really sent (`sent`), or not (`None`)."""

    sent: SentMessage | None
    status: str

    IGNORED = "delivery report that matches no message we sent to that address: ignored"


def match_bounce(connection: Connection, mail: InboundMail) -> Bounce | None:
    """A permanent failure stops automatic mail to an address only when the report names a
    message we really sent to that address (its Message-ID is an outbox row's, and the failed
    recipient is that row's): anyone can mail a report naming any address. None when the
    message is no permanent failure report at all.

    A report in another form than RFC 3464 (`FailureNotice`) names the message by the copy it
    returns, and its failed recipients as flufl.bounce's detectors read them: it counts when
    exactly one address we sent a returned message to is among them."""
    report = mail.delivery_report
    if report is not None:
        if not report.is_permanent_failure:
            return None
        sent = outbox_rows.row_by_message_id(connection, report.original_message_id)
        failed = report.final_recipient.lower()
        if sent is not None and failed and failed != sent.recipient.lower():
            sent = None
        return Bounce(sent, report.status or report.action)
    notice = mail.failure_notice
    if notice is None or not notice.is_permanent_failure:
        return None
    returned = (outbox_rows.row_by_message_id(connection, i) for i in notice.returned_message_ids)
    matching = [row for row in returned if row and row.recipient.lower() in notice.permanent]
    recipients = {row.recipient.lower() for row in matching}
    sent = matching[0] if len(recipients) == 1 else None
    return Bounce(sent, notice.status or "without a status code")


def record_bounce(connection: Connection, bounce: Bounce, inbound_id: int, now: datetime) -> None:
    """Mark the address of a matching report undeliverable, on its ticket's log too."""
    sent = bounce.sent
    if sent is None:
        return
    reason = f"permanent failure {bounce.status}"
    service.mark_undeliverable(connection, sent.recipient, reason, now)
    if sent.ticket_id is not None:
        ticket_rows.add_event(
            connection,
            sent.ticket_id,
            now,
            "address_undeliverable",
            f"{reason} for outbox #{sent.id}",
            inbound_id=inbound_id,
            outbox_id=sent.id,
        )


def copy_reached_complaints(
    connection: Connection, app: App, duplicate: Duplicate, arrival: Arrival, now: datetime
) -> None:
    """A copy of a request reached a complaint mailbox (a blind copy): a complaint stays a
    complaint, so its ticket becomes one and the complaints staff receive it."""
    if duplicate.ticket_id is None or arrival.mailbox.category != "complaint":
        return
    ticket = ticket_rows.ticket_by_id(connection, duplicate.ticket_id)
    if ticket is None or ticket.category == "complaint":
        return
    reclassify(
        connection,
        app,
        ticket,
        "complaint",
        actor="mailbot",
        inbound_id=arrival.inbound_id,
        now=now,
        reason=f"the same message reached the {arrival.mailbox.name} mailbox",
    )
    current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
    notify_new_ticket(connection, app, current, arrival, now, reason="complaint_copy")


def mark_reachable(connection: Connection, address: str) -> None:
    """A person who writes again is reachable again (a bounce may have been transient)."""
    service.clear_undeliverable(connection, address)
