"""What a message to a citizen that could not go does to its ticket, and who is told.

After each flush, `report_failures` tells a person about every acknowledgement or relayed reply
that was refused for good or that the relay cannot carry, so a citizen is never left without
an answer unknowingly; `report_bounce` does the same for a message the relay accepted and a
delivery report later said never arrived. A referral that failed did not happen: its ticket is
open again. Both write outbox rows with dedupe keys: exactly once across passes, restarts and
instances.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, deadline_rows, outbox_rows, ticket_rows
from mailbot.db.outbox_rows import PACED_PURPOSE, Failure, SentMessage
from mailbot.db.store import reading
from mailbot.db.ticket_rows import TicketRow
from mailbot.sending.outbox import error_summary
from mailbot.sending.to_staff import to_staff
from mailbot.standards import authority
from mailbot.states import ClosedReason, TicketStatus
from mailbot.tickets.notices import staff_recipients

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
    failure, matched to the row: mailbot/tickets/bounces.py `match_bounce`): the person who
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
        else staff_recipients(app.settings, ticket)
    )
    to_staff(
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
        queue=authority.queue_of(app.settings, ticket),
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
