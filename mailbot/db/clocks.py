"""The clock rows of tickets: one deadline per commitment, and the holds that pause them (kind
"wait") or that say the request is incomplete (kind "incomplete")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import DEADLINE, HOLD
from mailbot.standards.business_calendar import Hold


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    id: int
    commitment: str
    due_date: date
    met_at: datetime | None


def deadlines_of(connection: Connection, ticket_id: int) -> dict[str, DeadlineRow]:
    rows = connection.execute(
        sa.select(
            DEADLINE.c.id, DEADLINE.c.commitment, DEADLINE.c.due_date, DEADLINE.c.met_at
        ).where(DEADLINE.c.ticket_id == ticket_id)
    ).all()
    return {row.commitment: DeadlineRow(*row) for row in rows}


_INSERT_DEADLINE = sa.insert(DEADLINE)


def insert_deadlines(
    connection: Connection, ticket_id: int, values: Mapping[str, Mapping[str, object]]
) -> None:
    """One row per commitment: {commitment: {clock_start, due_date, due_at, days_on_hold}}."""
    if values:
        connection.execute(
            _INSERT_DEADLINE,
            [{"ticket_id": ticket_id, "commitment": c, **v} for c, v in values.items()],
        )


def update_deadline(connection: Connection, row_id: int, values: Mapping[str, object]) -> None:
    connection.execute(sa.update(DEADLINE).where(DEADLINE.c.id == row_id).values(**values))


def set_deadline(
    connection: Connection, ticket_id: int, commitment: str, values: Mapping[str, object]
) -> None:
    """Insert or replace the deadline of one commitment on a ticket."""
    updated = connection.execute(
        sa.update(DEADLINE)
        .where(DEADLINE.c.ticket_id == ticket_id)
        .where(DEADLINE.c.commitment == commitment)
        .values(**values)
    )
    if updated.rowcount == 0:
        insert_deadlines(connection, ticket_id, {commitment: values})


def delete_deadlines(connection: Connection, ticket_id: int, commitments: Iterable[str]) -> None:
    wanted = list(commitments)
    if wanted:
        connection.execute(
            sa.delete(DEADLINE)
            .where(DEADLINE.c.ticket_id == ticket_id)
            .where(DEADLINE.c.commitment.in_(wanted))
        )


def meet_deadlines(
    connection: Connection, ticket_id: int, commitments: Iterable[str], at: datetime
) -> None:
    """Record `at` as the instant the open deadlines of `commitments` were met."""
    connection.execute(_MEET, {"ticket": ticket_id, "commitments": list(commitments), "at": at})


_MEET = (
    sa.update(DEADLINE)
    .where(DEADLINE.c.ticket_id == sa.bindparam("ticket"))
    .where(DEADLINE.c.commitment.in_(sa.bindparam("commitments", expanding=True)))
    .where(DEADLINE.c.met_at.is_(None))
    .values(met_at=sa.bindparam("at"))
)


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


def unmeet_deadlines_at(connection: Connection, ticket_id: int, at: datetime) -> None:
    """Forget the deadlines met at exactly `at` (by an answer that did not happen after all)."""
    connection.execute(
        sa.update(DEADLINE)
        .where(DEADLINE.c.ticket_id == ticket_id)
        .where(DEADLINE.c.met_at == at)
        .values(met_at=None)
    )


def reopen_deadlines(connection: Connection, ticket_id: int, commitments: Iterable[str]) -> None:
    """Forget that these commitments were met: their clock starts again (complete request)."""
    wanted = list(commitments)
    if wanted:
        connection.execute(
            sa.update(DEADLINE)
            .where(DEADLINE.c.ticket_id == ticket_id)
            .where(DEADLINE.c.commitment.in_(wanted))
            .values(met_at=None)
        )


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
