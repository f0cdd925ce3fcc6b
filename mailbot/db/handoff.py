"""The rows a merge and a referral touch, on the caller's connection (SQLAlchemy Core).

A merge moves a duplicate's messages and history to the ticket kept, and finds the ticket
kept behind a merged reference; a referral reads the citizen's own request and follow-ups as
they arrived (never a merged duplicate's), and what the previous referral to a body carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db import ticket_rows
from mailbot.db.models import DEADLINE, EVENT, INBOUND, OUTBOX
from mailbot.db.ticket_rows import TicketRow
from mailbot.states import MessageState, OutboxState

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
    messages moved. Each message remembers the ticket it came from (`merged_from`: the
    first merge that moved it), so the ticket kept refers only its own. (The duplicate's
    outbox rows stay: they were sent as the duplicate's.)"""
    moved = connection.execute(
        sa.update(INBOUND)
        .where(INBOUND.c.ticket_id == duplicate_id)
        .values(
            ticket_id=kept_id,
            merged_from=sa.func.coalesce(INBOUND.c.merged_from, duplicate_id),
        )
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
    """A message of the citizen's as it arrived: the request that opened the ticket, or a
    follow-up; `flags` say whether only its headers were read (`oversized`)."""

    inbound_id: int
    raw: bytes
    received_at: datetime
    flags: str = ""


def _own(ticket_id: int) -> sa.ColumnElement[bool]:
    """The ticket's own messages: not those a merge brought from a duplicate."""
    return sa.and_(INBOUND.c.ticket_id == ticket_id, INBOUND.c.merged_from.is_(None))


def first_request(connection: Connection, ticket_id: int) -> Request | None:
    """The message that opened the ticket (never a merged duplicate's)."""
    row = connection.execute(
        sa.select(INBOUND.c.id, INBOUND.c.raw, INBOUND.c.internal_date, INBOUND.c.flags)
        .where(_own(ticket_id))
        .where(INBOUND.c.kind == "new_request")
        .order_by(INBOUND.c.id)
        .limit(1)
    ).first()
    return Request(*row) if row is not None else None


def follow_ups_after(connection: Connection, ticket_id: int, after_id: int) -> list[Request]:
    """The requester's own follow-ups on the ticket stored after inbound message `after_id`
    (attached, not held: never a stranger's message, nor a merged duplicate's), oldest
    first."""
    rows = connection.execute(
        sa.select(INBOUND.c.id, INBOUND.c.raw, INBOUND.c.internal_date, INBOUND.c.flags)
        .where(_own(ticket_id))
        .where(INBOUND.c.kind == "follow_up")
        .where(INBOUND.c.state == MessageState.PROCESSED.value)
        .where(INBOUND.c.id > after_id)
        .order_by(INBOUND.c.id)
    ).all()
    return [Request(*row) for row in rows]


def last_referral_to(connection: Connection, ticket_id: int, address: str) -> int | None:
    """The inbound message (the staff command) of the latest referral of the ticket to
    `address` that was not refused for good: the follow-ups after it are what a new
    referral to the same body carries."""
    found = connection.execute(
        sa.select(sa.func.max(EVENT.c.inbound_id))
        .join(OUTBOX, OUTBOX.c.id == EVENT.c.outbox_id)
        .where(EVENT.c.ticket_id == ticket_id)
        .where(EVENT.c.kind == "referral_queued")
        .where(OUTBOX.c.purpose == "referral")
        .where(OUTBOX.c.recipient == address.lower())
        .where(OUTBOX.c.state.in_((OutboxState.PENDING.value, OutboxState.SENT.value)))
    ).scalar()
    return int(found) if found is not None else None
