"""What the people who work a ticket are sent about it: who they are, the request itself when
a ticket opens or moves to their queue, and a message held for their review.

Everything here runs on the caller's connection, inside the transaction of the message that
caused it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import inbound_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.logformat import log_fields
from mailbot.mail.parse import parse_message
from mailbot.sending.to_staff import to_staff
from mailbot.settings import MailboxSettings, Settings
from mailbot.standards import authority
from mailbot.tickets.facts import Arrival

log = logging.getLogger(__name__)


def staff_recipients(settings: Settings, ticket: TicketRow) -> tuple[str, ...]:
    """Who works a ticket: its assignee while they may act on it (`authority`), else its
    queue's staff."""
    if ticket.assignee and authority.may_act_on(settings, ticket, ticket.assignee).allowed:
        return (ticket.assignee,)
    return authority.queue_of(settings, ticket).staff


def to_workers(
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
    to_staff(
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
        queue=authority.queue_of(app.settings, ticket),
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
        queue = authority.queue_of(app.settings, ticket)
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "notice_skipped",
            f"queue {queue.name} has no staff address configured",
            inbound_id=arrival.inbound_id,
        )
        return
    to_workers(
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
    to_workers(
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
    queue = authority.queue_of(app.settings, ticket) if ticket else arrival.mailbox
    to_staff(
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
