"""A ticket's clocks written: opening a ticket with its deadlines, recomputing them, holds and
their end, and the programmes' result clocks.

Which commitments a category has, when each clock starts and when it is due are decided by the
pure rules of `mailbot.standards.deadlines` (the counting itself is `BusinessCalendar`'s); the
rows are written through `mailbot.db.deadline_rows` and `mailbot.db.hold_rows` on the caller's
connection, inside the transaction of whatever changed the ticket.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import deadline_rows, hold_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.settings import Settings
from mailbot.standards import deadlines
from mailbot.standards.deadlines import (
    commitments_for,
    completeness_of,
    deadline_values,
    receipt_deadlines,
    reply_due_date,
)
from mailbot.states import TicketStatus
from mailbot.tickets.facts import NewTicket


def open_ticket(connection: Connection, app: App, new: NewTicket, now: datetime) -> TicketRow:
    """Open a ticket with the deadline of every commitment its category has from receipt."""
    settings, calendar = app.settings, app.calendar
    # The year of arrival in office time, even when the receipt day rolls into January.
    year = calendar.office_date(new.received_at).year
    ref = ticket_rows.allocate_ref(connection, settings.organisation.ticket_prefix, year)
    deadlines = receipt_deadlines(settings, calendar, new.category, new.received_at, (), now)
    ticket = ticket_rows.insert_ticket(
        connection,
        {
            "ref": ref,
            "mailbox": new.mailbox,
            "category": new.category,
            "requester": new.requester,
            "requester_name": new.requester_name,
            "language": new.language,
            "subject": new.subject,
            "received_at": new.received_at,
            "receipt_date": calendar.receipt_day(new.received_at),
            "due_date": reply_due_date(settings, deadlines),
        },
        now,
    )
    deadline_rows.insert_deadlines(
        connection, ticket.id, {c: deadline_values(d) for c, d in deadlines.items()}
    )
    return ticket


def recompute(connection: Connection, app: App, ticket_id: int, now: datetime) -> None:
    """Recompute every receipt-started deadline of a ticket from its original receipt time
    (or, for the commitments counted from the complete request, the instant it was last
    completed), its current category and its holds; deadlines already met keep their row, and
    those of commitments the category no longer has go."""
    settings = app.settings
    ticket = ticket_rows.ticket_by_id(connection, ticket_id)
    assert ticket is not None
    existing = deadline_rows.deadlines_of(connection, ticket.id)
    deadlines = receipt_deadlines(
        settings,
        app.calendar,
        ticket.category,
        ticket.received_at,
        hold_rows.holds_of(connection, ticket.id),
        now,
        completeness=completeness_of(
            hold_rows.holds_of(connection, ticket.id, hold_rows.INCOMPLETE)
        ),
    )
    for commitment_id, deadline in deadlines.items():
        row = existing.get(commitment_id)
        if row is None:
            deadline_rows.insert_deadlines(
                connection, ticket.id, {commitment_id: deadline_values(deadline)}
            )
        elif row.met_at is None:
            deadline_rows.update_deadline(connection, row.id, deadline_values(deadline))
    wanted = set(commitments_for(settings, ticket.category))
    deadline_rows.delete_deadlines(
        connection,
        ticket.id,
        [c for c, row in existing.items() if c not in wanted and row.met_at is None],
    )
    # Without a reply commitment (programme queues), the result clock staff started is promised.
    due_date = reply_due_date(settings, deadlines) or next(
        (
            row.due_date
            for c, row in existing.items()
            if c in wanted
            and c not in deadlines
            and settings.commitment(c).kind != "acknowledgement"
        ),
        None,
    )
    ticket_rows.set_due_date(connection, ticket.id, due_date, now)


def start_hold(
    connection: Connection, ticket: TicketRow, reason: str, actor: str, now: datetime
) -> None:
    """Pause the ticket's clocks: the ministry waits on the citizen."""
    hold_rows.open_hold(connection, ticket.id, now, reason, actor)
    ticket_rows.set_ticket_fields(connection, ticket.id, now, status=TicketStatus.ON_HOLD.value)


def end_hold(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    at: datetime,
    now: datetime,
    *,
    actor: str,
) -> bool:
    """End the open hold (an `attente`, or an `incomplet` now complete) at `at`: a ticket that
    waited is open again, and its deadlines move by the business days the hold lasted. False
    when no hold was open."""
    if not hold_rows.close_hold(connection, ticket.id, at, actor):
        return False
    if ticket.status == TicketStatus.ON_HOLD:
        ticket_rows.set_ticket_fields(connection, ticket.id, now, status=TicketStatus.OPEN.value)
    recompute(connection, app, ticket.id, now)
    return True


def start_result_clock(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    commitment_id: str,
    start: date,
    now: datetime,
) -> None:
    """Start a programme's result clock on the date staff gave (interview, committee)."""
    commitment = app.settings.commitment(commitment_id)
    deadline = app.calendar.deadline_from_day(start, commitment.business_days)
    deadline_rows.set_deadline(
        connection, ticket.id, commitment_id, {**deadline_values(deadline), "days_on_hold": 0}
    )
    ticket_rows.set_due_date(connection, ticket.id, deadline.due_date, now)


def meet_sent(
    connection: Connection, settings: Settings, ticket_id: int, purpose: str, at: datetime
) -> None:
    """An acknowledgement or a reply was sent (the outbox's `on_sent`): stamp the ticket at
    `at` (the first time), mark it answered, and meet its open deadlines of the matching commitments
    (`deadlines.MEETS_KINDS`). `at` is the relay's acceptance for an acknowledgement, and for
    a staff reply the instant staff answered (`met_at`): a resend after a crash or a relay
    outage does not move it."""
    kinds = deadlines.MEETS_KINDS.get(purpose)
    if kinds is None:
        return
    if purpose == "reply":
        ticket_rows.mark_answered(connection, ticket_id, at, at)
    else:
        ticket_rows.stamp_first(connection, ticket_id, deadlines.STAMPS[purpose], at)
    met = [c.id for c in settings.commitments if c.kind in kinds]
    deadline_rows.meet_deadlines(connection, ticket_id, met, at)
