"""The hold rows of tickets: the holds that pause a ticket's deadlines (kind "wait") or that
say the request is incomplete (kind "incomplete"), on the caller's connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import HOLD
from mailbot.standards.business_calendar import Hold

# The kinds of hold: a pause (the clock stops) and an incomplete request.
WAIT = "wait"
INCOMPLETE = "incomplete"


def holds_of(connection: Connection, ticket_id: int, kind: str = WAIT) -> list[Hold]:
    """The ticket's holds of one kind (`attente` pauses by default)."""
    return [
        Hold(start=row.started_at, end=row.ended_at)
        for row in connection.execute(
            sa.select(HOLD.c.started_at, HOLD.c.ended_at)
            .where(HOLD.c.ticket_id == ticket_id)
            .where(HOLD.c.kind == kind)
        )
    ]


@dataclass(frozen=True, slots=True)
class IncompleteSpell:
    """One time the request was declared incomplete, and when and by whom it was completed."""

    declared_at: datetime
    reason: str
    declared_by: str
    completed_at: datetime | None
    completed_by: str


def incomplete_spells(connection: Connection, ticket_id: int) -> list[IncompleteSpell]:
    """Each time the request was declared incomplete, oldest first."""
    return [
        IncompleteSpell(row.started_at, row.reason, row.started_by, row.ended_at, row.ended_by)
        for row in connection.execute(
            sa.select(
                HOLD.c.started_at,
                HOLD.c.reason,
                HOLD.c.started_by,
                HOLD.c.ended_at,
                HOLD.c.ended_by,
            )
            .where(HOLD.c.ticket_id == ticket_id)
            .where(HOLD.c.kind == INCOMPLETE)
            .order_by(HOLD.c.started_at, HOLD.c.id)
        )
    ]


def open_hold_kind(connection: Connection, ticket_id: int) -> str | None:
    """The kind of the ticket's open hold ("wait" or "incomplete"), None when none is open."""
    value: str | None = connection.execute(
        sa.select(HOLD.c.kind).where(HOLD.c.ticket_id == ticket_id).where(HOLD.c.ended_at.is_(None))
    ).scalar()
    return value


def open_hold_start(connection: Connection, ticket_id: int) -> datetime | None:
    value: datetime | None = connection.execute(
        sa.select(HOLD.c.started_at)
        .where(HOLD.c.ticket_id == ticket_id)
        .where(HOLD.c.ended_at.is_(None))
    ).scalar()
    return value


def open_hold(
    connection: Connection,
    ticket_id: int,
    at: datetime,
    reason: str,
    actor: str,
    kind: str = WAIT,
) -> None:
    """Start a hold unless one is already open."""
    if open_hold_start(connection, ticket_id) is None:
        connection.execute(
            sa.insert(HOLD).values(
                ticket_id=ticket_id,
                started_at=at,
                reason=reason[:2000],
                started_by=actor,
                ended_by="",
                kind=kind,
            )
        )


def close_hold(connection: Connection, ticket_id: int, at: datetime, actor: str) -> bool:
    """End the open hold at `at` (never before it started); False when none was open."""
    started = open_hold_start(connection, ticket_id)
    if started is None:
        return False
    connection.execute(
        sa.update(HOLD)
        .where(HOLD.c.ticket_id == ticket_id)
        .where(HOLD.c.ended_at.is_(None))
        .values(ended_at=max(at, started), ended_by=actor)
    )
    return True
