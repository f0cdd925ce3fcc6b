"""The rows a merge and a referral touch, on the caller's connection (SQLAlchemy Core).

A merge moves a duplicate's messages and history to the ticket kept, and finds the ticket
kept behind a merged reference; a referral reads the citizen's request as it arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db import tickets as ticket_rows
from mailbot.db.tickets import TicketRow
from mailbot.models import DEADLINE, EVENT, INBOUND

# A merged ticket may be merged again later; a chain longer than this is a loop (refused at
# merge time, so never written) or a fault: the last ticket found is used.
MAX_MERGE_HOPS = 8


class ClockRow(NamedTuple):
    """One deadline row, every column a merge compares or copies."""

    id: int
    commitment: str
    clock_start: date
    due_date: date
    due_at: datetime
    met_at: datetime | None
    days_on_hold: int


def clock_rows(connection: Connection, ticket_id: int) -> dict[str, ClockRow]:
    rows = connection.execute(
        sa.select(
            DEADLINE.c.id,
            DEADLINE.c.commitment,
            DEADLINE.c.clock_start,
            DEADLINE.c.due_date,
            DEADLINE.c.due_at,
            DEADLINE.c.met_at,
            DEADLINE.c.days_on_hold,
        ).where(DEADLINE.c.ticket_id == ticket_id)
    ).all()
    return {row.commitment: ClockRow(*row) for row in rows}


def move_history(connection: Connection, duplicate_id: int, kept_id: int) -> int:
    """The duplicate's messages and events now belong to the ticket kept; the number of
    messages moved. (Its outbox rows stay: they were sent as the duplicate's.)"""
    moved = connection.execute(
        sa.update(INBOUND).where(INBOUND.c.ticket_id == duplicate_id).values(ticket_id=kept_id)
    ).rowcount
    connection.execute(
        sa.update(EVENT).where(EVENT.c.ticket_id == duplicate_id).values(ticket_id=kept_id)
    )
    return int(moved or 0)


def kept_ticket(connection: Connection, ticket: TicketRow) -> TicketRow:
    """The ticket a merged ticket's mail belongs to now (itself when it is not merged)."""
    current = ticket
    for _ in range(MAX_MERGE_HOPS):
        if current.merged_into is None:
            return current
        following = ticket_rows.ticket_by_ref(connection, current.merged_into)
        if following is None:
            return current
        current = following
    return current


def follow_merges(connection: Connection, rows: Mapping[str, TicketRow]) -> dict[str, TicketRow]:
    """Each reference's ticket, a merged one replaced by the ticket kept."""
    return {
        ref: kept_ticket(connection, row) if row.merged_into else row for ref, row in rows.items()
    }


class Request(NamedTuple):
    """The citizen's request as it arrived: the first message that opened the ticket."""

    inbound_id: int
    raw: bytes
    received_at: datetime


def first_request(connection: Connection, ticket_id: int) -> Request | None:
    row = connection.execute(
        sa.select(INBOUND.c.id, INBOUND.c.raw, INBOUND.c.internal_date)
        .where(INBOUND.c.ticket_id == ticket_id)
        .where(INBOUND.c.kind == "new_request")
        .order_by(INBOUND.c.id)
        .limit(1)
    ).first()
    return Request(row.id, row.raw, row.internal_date) if row is not None else None
