"""The requester wrote again: what their message does to the ticket, and its forwarding to
whoever works it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.states import TicketStatus
from mailbot.tickets import clocks, completeness
from mailbot.tickets.facts import Arrival
from mailbot.tickets.notices import staff_recipients, to_workers


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
    `intake.decide`), and forward the message to whoever works the ticket."""
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
    hold_ended = completed or _end_hold(connection, app, ticket, arrival, now)
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
    to_workers(
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


def _end_hold(
    connection: Connection, app: App, ticket: TicketRow, arrival: Arrival, now: datetime
) -> bool:
    """The requester's message ends an `attente` as of its arrival; False when none was open."""
    if not clocks.end_hold(
        connection, app, ticket, arrival.received_at, now, actor=ticket.requester
    ):
        return False
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "hold_ended",
        "the requester wrote back",
        actor=ticket.requester,
        inbound_id=arrival.inbound_id,
    )
    return True
