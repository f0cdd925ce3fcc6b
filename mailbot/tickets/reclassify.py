"""Moving a ticket to another category: by a staff command, by a merge, or because a copy of
its request reached the complaints mailbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ticket_rows
from mailbot.db.inbound_rows import Duplicate
from mailbot.db.ticket_rows import TicketRow
from mailbot.standards import authority
from mailbot.tickets import clocks
from mailbot.tickets.facts import Arrival
from mailbot.tickets.notices import notify_new_ticket


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
    clocks.recompute(connection, app, ticket.id, now)
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
