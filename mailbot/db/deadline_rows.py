"""The deadline rows of tickets: one per commitment, its due date and when it was met, on the
caller's connection (the holds that pause them are in `hold_rows`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import DEADLINE


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
