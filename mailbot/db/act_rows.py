"""Staff acts (closes, referrals, merges, relays) per person, applied or held past the
hourly limit, on the caller's connection (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import STAFF_ACT, TICKET
from mailbot.db.store import insert_ignoring_for

APPLIED = "applied"
HELD = "held"
RELEASED = "released"


@dataclass(frozen=True, slots=True)
class HeldAct:
    """An act held past its author's limit: the staff message and the ticket it was for."""

    id: int
    person: str
    at: datetime
    inbound_id: int
    ticket_id: int | None
    ref: str
    category: str
    mailbox: str
    acts: str
    state: str


def record(
    connection: Connection,
    *,
    person: str,
    at: datetime,
    ticket_id: int | None,
    inbound_id: int,
    acts: Sequence[str],
    state: str,
) -> None:
    """The act of the staff message `inbound_id`, once (a message replayed after its release
    turns its row `applied`)."""
    existing = connection.execute(
        sa.select(STAFF_ACT.c.id, STAFF_ACT.c.state).where(STAFF_ACT.c.inbound_id == inbound_id)
    ).first()
    if existing is not None:
        if existing.state == RELEASED and state == APPLIED:
            connection.execute(
                sa.update(STAFF_ACT).where(STAFF_ACT.c.id == existing.id).values(state=APPLIED)
            )
        return
    connection.execute(
        insert_ignoring_for(connection.dialect.name, STAFF_ACT, "inbound_id").values(
            person=person.lower()[:320],
            at=at,
            ticket_id=ticket_id,
            inbound_id=inbound_id,
            acts=",".join(acts)[:64],
            state=state,
            decided_by="",
        )
    )


def applied_since(connection: Connection, person: str, since: datetime) -> int:
    """How many acts `person` had applied after `since`."""
    return int(
        connection.execute(
            sa.select(sa.func.count())
            .select_from(STAFF_ACT)
            .where(STAFF_ACT.c.person == person.lower())
            .where(STAFF_ACT.c.state == APPLIED)
            .where(STAFF_ACT.c.at > since)
        ).scalar_one()
    )


def state_of(connection: Connection, inbound_id: int) -> str | None:
    value: str | None = connection.execute(
        sa.select(STAFF_ACT.c.state).where(STAFF_ACT.c.inbound_id == inbound_id)
    ).scalar()
    return value


def _held_rows(where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return (
        sa.select(
            STAFF_ACT.c.id,
            STAFF_ACT.c.person,
            STAFF_ACT.c.at,
            STAFF_ACT.c.inbound_id,
            STAFF_ACT.c.ticket_id,
            sa.func.coalesce(TICKET.c.ref, ""),
            sa.func.coalesce(TICKET.c.category, ""),
            sa.func.coalesce(TICKET.c.mailbox, ""),
            STAFF_ACT.c.acts,
            STAFF_ACT.c.state,
        )
        .outerjoin(TICKET, TICKET.c.id == STAFF_ACT.c.ticket_id)
        .where(where)
        .order_by(STAFF_ACT.c.id)
    )


def _held_act(row: Any) -> HeldAct:
    return HeldAct(*row)


def held(connection: Connection, person: str | None = None) -> list[HeldAct]:
    """Acts held and not released yet, of `person` or of everyone, oldest first."""
    where = STAFF_ACT.c.state == HELD
    if person is not None:
        where = sa.and_(where, STAFF_ACT.c.person == person.lower())
    return [_held_act(row) for row in connection.execute(_held_rows(where)).all()]


def released(connection: Connection) -> list[HeldAct]:
    """Acts a supervisor released and not replayed yet, oldest first."""
    return [_held_act(row) for row in connection.execute(_held_rows(STAFF_ACT.c.state == RELEASED))]


def release(connection: Connection, act_ids: Sequence[int], by: str, at: datetime) -> int:
    """Mark held acts released by supervisor `by`; how many."""
    if not act_ids:
        return 0
    result = connection.execute(
        sa.update(STAFF_ACT)
        .where(STAFF_ACT.c.id.in_(list(act_ids)))
        .where(STAFF_ACT.c.state == HELD)
        .values(state=RELEASED, decided_by=by.lower()[:320], decided_at=at)
    )
    return int(result.rowcount or 0)


def finish(connection: Connection, act_id: int, state: str) -> None:
    """A released act after its replay: applied, or held again for another reason."""
    connection.execute(sa.update(STAFF_ACT).where(STAFF_ACT.c.id == act_id).values(state=state))
