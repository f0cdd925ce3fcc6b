"""A request declared incomplete, and completed: the clocks that count "from the complete
request" start again (docs/complete-request.md).

Staff say `incomplet : MOTIF` (the reason goes to the citizen); the ticket waits (status
on_hold) and the commitments counted from the complete request (`from_complete_request` in
the configuration) are paused and forget any earlier "met". The request becomes complete when
the citizen's next message arrives (its arrival is the new receipt instant: day 0 by the
16:30 rule), or when staff say `complet` (the missing piece came another way: the instant
staff said it, by the same rule). Staff answer `incomplet` again when the citizen's message
did not complete it. In the programme queues the complete file is acknowledged as such.

Everything runs on the caller's connection, in the transaction of the message that decided
it; the history stays in the hold rows of kind "incomplete" and in the ticket's events.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import deadline_rows, hold_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.canned import may_write_english
from mailbot.sending import to_citizens
from mailbot.standards import deadlines
from mailbot.states import TicketStatus
from mailbot.tickets import clocks

log = logging.getLogger(__name__)

# A category whose commitment of this kind counts from the complete file (the programme
# queues) gets its own acknowledgement of the complete file ("dossier complet reçu").
PROGRAMME_ACK_KIND = "acknowledgement"


def citizen_text(app: App, ticket: TicketRow, reason: str, rest: str) -> str:
    """What the citizen reads for `incomplet : MOTIF`: the reason in the template's words
    (French first; English after it where allowed), then the rest of the staff's text."""
    rendered = app.renderer.render(
        "incomplete_request",
        {
            "ticket": ticket,
            "reason": reason,
            "body": rest,
            "english": may_write_english(app.settings, ticket),
        },
        with_html=False,
    )
    return rendered.text


def is_incomplete(connection: Connection, ticket_id: int) -> bool:
    """Whether the request is declared incomplete and not completed yet."""
    return hold_rows.open_hold_kind(connection, ticket_id) == hold_rows.INCOMPLETE


def declare_incomplete(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    reason: str,
    actor: str,
    now: datetime,
) -> None:
    """`incomplet : MOTIF`: the request waits for the missing piece; its clocks counted from
    the complete request pause, and will start again when it is complete. An `attente` still
    open ends now (the wait is now about completeness); an `incomplet` still open stays."""
    if hold_rows.open_hold_kind(connection, ticket.id) == hold_rows.WAIT:
        hold_rows.close_hold(connection, ticket.id, now, actor)
    hold_rows.open_hold(connection, ticket.id, now, reason, actor, kind=hold_rows.INCOMPLETE)
    deadline_rows.reopen_deadlines(
        connection, ticket.id, deadlines.restarting(app.settings, ticket.category)
    )
    ticket_rows.set_ticket_fields(
        connection, ticket.id, now, status=TicketStatus.ON_HOLD.value, closed_at=None
    )
    clocks.recompute(connection, app, ticket.id, now)
    log.info("ticket %s declared incomplete", ticket.ref)


def complete(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    at: datetime,
    now: datetime,
    *,
    actor: str,
    inbound_id: int | None,
    how: str,
) -> bool:
    """The request is complete as of `at` (the citizen's message's arrival, or the instant
    staff said `complet`): the clocks counted from the complete request start again from its
    receipt day. False when the request was not waiting to be completed."""
    if not is_incomplete(connection, ticket.id):
        return False
    clocks.end_hold(connection, app, ticket, at, now, actor=actor)
    day = app.calendar.receipt_day(at)
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "request_completed",
        f"{how}; complete request received {day.isoformat()} (day 0 of the clocks counted "
        "from the complete request)",
        actor=actor,
        inbound_id=inbound_id,
    )
    log.info("ticket %s completed (%s), clocks start again from %s", ticket.ref, how, day)
    current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
    if _acknowledges_complete_file(app, current):
        to_citizens.complete_file_acknowledgement(
            connection, app, current, day, inbound_id=inbound_id, now=now
        )
    return True


def _acknowledges_complete_file(app: App, ticket: TicketRow) -> bool:
    """Programme queues: their acknowledgement commitment counts from the complete file."""
    settings = app.settings
    return any(
        settings.commitment(c).kind == PROGRAMME_ACK_KIND
        for c in deadlines.restarting(settings, ticket.category)
    )
