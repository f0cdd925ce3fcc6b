"""What sending leaves for people: the brake's start and end, and mail that could not go.

The sender (mailbot/sending/outbox.py) only sends rows and records outcomes. Before each flush,
`review_pacing` tells the queues' staff once when the brake starts holding acknowledgements
back and once when it lets the last of them go; after it, `report_failures` tells a person
about every acknowledgement or relayed reply that was refused for good or that the relay
cannot carry, so a citizen is never left without an answer unknowingly; `report_bounce` does
the same for a message the relay accepted and a delivery report later said never arrived.
Both write outbox rows with dedupe keys: exactly once across passes, restarts and instances.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, deadline_rows, outbox_rows, service, ticket_rows
from mailbot.db.outbox_rows import PACED_PURPOSE, Failure, SentMessage
from mailbot.db.store import reading
from mailbot.db.ticket_rows import TicketRow
from mailbot.intake import citizens
from mailbot.sending import outgoing
from mailbot.sending.outbox import SendPolicy, error_summary, paced_capacity
from mailbot.states import ClosedReason, TicketStatus

log = logging.getLogger(__name__)

PACING = "pacing"
# Mail to a citizen whose failure a person must learn of; staff mail is not reported (a
# failing staff address would only produce more failing staff mail).
REPORTED_PURPOSES = (
    "acknowledgement",
    "reply",
    "hold_request",
    "incomplete_request",
    # What a merge or a referral sends: the citizen's notices, the request to the other body.
    "merge_notice",
    "referral_notice",
    "referral",
)


def review_pacing(app: App, policy: SendPolicy, now: datetime) -> None:
    """Open or close the brake's episode and tell the queues' staff and supervisors."""
    if policy.pace_limit is None:
        return
    with app.engine.begin() as connection:
        capacity = paced_capacity(connection, policy, now) or 0
        waiting = outbox_rows.due_paced(connection, now)
        alert = service.open_alert(connection, PACING)
        if alert is None and waiting > capacity:
            queues = outbox_rows.queues_waiting(connection, now)
            if service.start_alert(connection, PACING, now, ",".join(queues)):
                log.warning("brake: %d acknowledgement(s) paced", waiting - capacity)
                _tell(connection, app, queues, now, ended=False, waiting=waiting, since=now)
        elif (
            alert is not None
            and waiting <= capacity
            and service.resolve_alert(connection, PACING, now)
        ):
            log.warning("brake released")
            queues = [name for name in alert.detail.split(",") if name]
            _tell(connection, app, queues, now, ended=True, since=alert.started_at)


def _tell(
    connection: Connection,
    app: App,
    queues: list[str],
    now: datetime,
    *,
    ended: bool,
    since: datetime,
    waiting: int = 0,
) -> None:
    rules = app.settings.classification
    for mailbox in app.settings.mailboxes:
        if mailbox.name not in queues:
            continue
        outgoing.to_staff(
            connection,
            app,
            template="brake",
            values={
                "ended": ended,
                "waiting": waiting,
                "limit": rules.burst_limit,
                "window_minutes": rules.burst_window_minutes,
                "started_at": since.astimezone(app.calendar.zone).strftime("%Y-%m-%d %H:%M"),
            },
            queue=mailbox,
            recipients=(*mailbox.staff, *mailbox.supervisors),
            purpose="brake_notice",
            dedupe=f"brake:{mailbox.name}:{since.isoformat()}:{'end' if ended else 'start'}",
            now=now,
        )


def report_failures(app: App, now: datetime) -> int:
    """Tell a person of each citizen-bound message that failed for good or was held; returns
    how many reports were queued."""
    with reading(app.engine) as connection:
        failures = outbox_rows.unreported_failures(connection, REPORTED_PURPOSES)
    for failure in failures:
        with app.engine.begin() as connection:
            _report(connection, app, failure, now)
    return len(failures)


def report_bounce(
    connection: Connection, app: App, sent: SentMessage, status: str, now: datetime
) -> None:
    """A delivery report says a message the relay had accepted never arrived (a permanent
    failure, matched to the row: mailbot/intake/citizens.py `match_bounce`): the person who
    must act learns it as of a refusal at the relay, once (the same key); a referral that
    bounced did not happen, and its ticket is open again."""
    if sent.ticket_id is None or sent.purpose not in REPORTED_PURPOSES:
        return
    failure = Failure(sent.id, sent.ticket_id, sent.purpose, "failed", f"delivery report: {status}")
    _report(connection, app, failure, now, late=True)


def _report(
    connection: Connection, app: App, failure: Failure, now: datetime, *, late: bool = False
) -> None:
    ticket = ticket_rows.ticket_by_id(connection, failure.ticket_id)
    if ticket is None:
        return
    reopened = failure.purpose == "referral" and _undo_referral(connection, ticket, failure, now)
    author = ticket_rows.actor_of(connection, failure.outbox_id, f"{failure.purpose}_queued")
    # A relayed reply's author learns it did not arrive; an acknowledgement's failure goes to
    # whoever works the ticket.
    recipients = (
        (author,)
        if failure.purpose != PACED_PURPOSE and author and author != "mailbot"
        else citizens.staff_recipients(app.settings, ticket)
    )
    outgoing.to_staff(
        connection,
        app,
        template="delivery_failed",
        values={
            "purpose": failure.purpose,
            "held": failure.state == "held",
            "error": error_summary(failure.error),
            "reopened": reopened,
            # Accepted by the relay, then reported undelivered: notices went out meanwhile.
            "late": late,
        },
        queue=app.settings.queue_for(ticket.category, ticket.mailbox),
        recipients=recipients,
        ticket=ticket,
        purpose="failure_notice",
        dedupe=f"failure:{failure.outbox_id}",
        now=now,
    )
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "failure_reported",
        f"{failure.purpose} {failure.state}: told {', '.join(recipients)}",
        outbox_id=failure.outbox_id,
    )


def _undo_referral(
    connection: Connection, ticket: TicketRow, failure: Failure, now: datetime
) -> bool:
    """A referral refused for good did not happen: the ticket closed by it is open again,
    and a clock it met is unmet (a referral queued before its acceptance met the clocks
    met them at its instant); its notice to the citizen was withdrawn when it failed
    (mailbot/sending/outbox.py). Whether the ticket was reopened."""
    queued_at = outbox_rows.created_at(connection, failure.outbox_id)
    if queued_at is not None:
        deadline_rows.unmeet_deadlines_at(connection, ticket.id, queued_at)
        ticket_rows.unstamp(connection, ticket.id, "answered_at", queued_at)
    if ticket.status != TicketStatus.CLOSED or ticket.closed_reason != ClosedReason.REFERRED:
        return False  # reopened since (the citizen wrote), or referred again
    ticket_rows.set_ticket_fields(
        connection,
        ticket.id,
        now,
        status=TicketStatus.OPEN.value,
        closed_at=None,
        closed_reason=None,
    )
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "reopened",
        f"the referral (outbox #{failure.outbox_id}) was refused for good",
        outbox_id=failure.outbox_id,
    )
    author = ticket_rows.actor_of(connection, failure.outbox_id, "referral_queued") or "mailbot"
    access.record(connection, now, author, "referral_refused", ticket.ref, "not delivered")
    return True
