"""Ticket rows, their references and their event log, on the caller's connection.

Every function takes the caller's `Connection`, so whatever a message or a command causes is
written in the caller's single transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mailbot.db.models import COUNTER, DEADLINE, EVENT, HOLD, INBOUND, TICKET
from mailbot.states import TicketStatus


@dataclass(frozen=True, slots=True)
class TicketRow:
    """The ticket facts the middle and the templates need (a read-only view)."""

    id: int
    ref: str
    mailbox: str
    category: str
    status: str
    requester: str
    requester_name: str
    language: str
    subject: str
    received_at: datetime
    receipt_date: date
    due_date: date | None
    english_allowed: bool
    assignee: str | None = None
    legal_hold_at: datetime | None = None
    closed_reason: str | None = None  # merged | referred
    merged_into: str | None = None  # the reference a merged duplicate joined


def _ticket_row(row: Any) -> TicketRow:
    return TicketRow(
        id=row.id,
        ref=row.ref,
        mailbox=row.mailbox,
        category=row.category,
        status=row.status,
        requester=row.requester,
        requester_name=row.requester_name,
        language=row.language,
        subject=row.subject,
        received_at=row.received_at,
        receipt_date=row.receipt_date,
        due_date=row.due_date,
        english_allowed=row.english_allowed,
        assignee=row.assignee,
        legal_hold_at=row.legal_hold_at,
        closed_reason=row.closed_reason,
        merged_into=row.merged_into,
    )


def ticket_by_id(connection: Connection, ticket_id: int) -> TicketRow | None:
    row = connection.execute(sa.select(TICKET).where(TICKET.c.id == ticket_id)).first()
    return _ticket_row(row) if row is not None else None


def ticket_by_ref(connection: Connection, ref: str) -> TicketRow | None:
    row = connection.execute(sa.select(TICKET).where(TICKET.c.ref == ref)).first()
    return _ticket_row(row) if row is not None else None


def tickets_by_ref(connection: Connection, refs: Iterable[str]) -> dict[str, TicketRow]:
    wanted = list(refs)
    if not wanted:
        return {}
    rows = connection.execute(sa.select(TICKET).where(TICKET.c.ref.in_(wanted))).all()
    return {row.ref: _ticket_row(row) for row in rows}


def tickets_of_message_ids(connection: Connection, message_ids: Sequence[str]) -> dict[str, str]:
    """Message-ID of a stored inbound message -> the reference of its ticket."""
    if not message_ids:
        return {}
    rows = connection.execute(
        sa.select(INBOUND.c.message_id, TICKET.c.ref)
        .join(TICKET, TICKET.c.id == INBOUND.c.ticket_id)
        .where(INBOUND.c.message_id.in_(list(message_ids)[:50]))
    ).all()
    return {message_id: ref for message_id, ref in rows}


def allocate_ref(connection: Connection, prefix: str, year: int) -> str:
    """The next reference of the year. Two transactions never share one: on SQLite the write
    transaction holds the database's write lock (BEGIN IMMEDIATE); on PostgreSQL the second
    waits for the first's counter row, and for the year's first reference, for the first's
    insert of that row, then counts on from it."""
    parameters = {"of_prefix": prefix, "of_year": year}
    number = connection.execute(_NEXT_REF, parameters).scalar()
    if number is None:
        # The year's first reference, unless another transaction made the counter row
        # meanwhile: then the insert does nothing (once that transaction has committed) and
        # the row it made counts on.
        number = connection.execute(_first_ref(connection.dialect.name), parameters).scalar()
    if number is None:
        number = connection.execute(_NEXT_REF, parameters).scalar_one()
    return f"{prefix}-{year}-{int(number):05d}"


@lru_cache(maxsize=4)
def _first_ref(dialect: str) -> Any:
    """INSERT of a year's counter at 1 ... ON CONFLICT DO NOTHING RETURNING last."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(COUNTER)
        .values(prefix=sa.bindparam("of_prefix"), year=sa.bindparam("of_year"), last=1)
        .on_conflict_do_nothing(index_elements=[COUNTER.c.prefix, COUNTER.c.year])
        .returning(COUNTER.c.last)
    )


def insert_ticket(connection: Connection, values: Mapping[str, Any], now: datetime) -> TicketRow:
    """A new open ticket with `values` (ref, mailbox, category, requester, requester_name,
    language, subject, received_at, receipt_date, due_date)."""
    row = {
        **values,
        "status": TicketStatus.OPEN.value,
        "english_allowed": False,
        "created_at": now,
        "updated_at": now,
    }
    ticket_id = connection.execute(_INSERT_TICKET, row).scalar_one()
    fields = {name: row[name] for name in TicketRow.__slots__ if name in row}
    return TicketRow(id=ticket_id, **fields)


def set_ticket_fields(
    connection: Connection, ticket_id: int, now: datetime, **values: object
) -> None:
    connection.execute(
        sa.update(TICKET).where(TICKET.c.id == ticket_id).values(updated_at=now, **values)
    )


def set_status_where(
    connection: Connection, ticket_id: int, now: datetime, status: str, *, was: str
) -> None:
    """Set the status only if it is `was` now (another event may have moved it)."""
    connection.execute(
        sa.update(TICKET)
        .where(TICKET.c.id == ticket_id)
        .where(TICKET.c.status == was)
        .values(status=status, updated_at=now)
    )


def mark_answered(connection: Connection, ticket_id: int, at: datetime, now: datetime) -> None:
    """The ticket's request was answered at `at`: stamp it (the first time) and mark an open
    ticket answered."""
    stamp_first(connection, ticket_id, "answered_at", at)
    set_status_where(
        connection, ticket_id, now, TicketStatus.ANSWERED.value, was=TicketStatus.OPEN.value
    )


def stamp_first(connection: Connection, ticket_id: int, column: str, at: datetime) -> None:
    """Set the instant `column` (acknowledged_at, answered_at) unless it is already set."""
    connection.execute(_stamp_first(column), {"ticket": ticket_id, "at": at})


@lru_cache(maxsize=8)
def _stamp_first(column: str) -> sa.Update:
    return (
        sa.update(TICKET)
        .where(TICKET.c.id == sa.bindparam("ticket"))
        .where(TICKET.c[column].is_(None))
        .values({column: sa.bindparam("at")})
    )


def unstamp(connection: Connection, ticket_id: int, column: str, at: datetime) -> None:
    """Clear the instant `column` if it is `at` (set by what turned out not to happen)."""
    connection.execute(
        sa.update(TICKET)
        .where(TICKET.c.id == ticket_id)
        .where(TICKET.c[column] == at)
        .values({column: None})
    )


def set_due_date(connection: Connection, ticket_id: int, due: date | None, now: datetime) -> None:
    connection.execute(
        sa.update(TICKET).where(TICKET.c.id == ticket_id).values(due_date=due, updated_at=now)
    )


# Built once: constructing a statement costs more than running it on the hot path.
_INSERT_EVENT = sa.insert(EVENT)
_INSERT_TICKET = sa.insert(TICKET).returning(TICKET.c.id)
_NEXT_REF = (
    sa.update(COUNTER)
    .where(COUNTER.c.prefix == sa.bindparam("of_prefix"))
    .where(COUNTER.c.year == sa.bindparam("of_year"))
    .values(last=COUNTER.c.last + 1)
    .returning(COUNTER.c.last)
)


def add_event(
    connection: Connection,
    ticket_id: int,
    at: datetime,
    kind: str,
    detail: str = "",
    *,
    actor: str = "mailbot",
    inbound_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    connection.execute(
        _INSERT_EVENT,
        {
            "ticket_id": ticket_id,
            "at": at,
            "kind": kind,
            "actor": actor,
            "inbound_id": inbound_id,
            "outbox_id": outbox_id,
            "detail": detail[:4000],
        },
    )


def actor_of(connection: Connection, outbox_id: int, kind: str) -> str | None:
    """Who caused the event `kind` that queued outbox row `outbox_id` (a relay's author)."""
    value: str | None = connection.execute(
        sa.select(EVENT.c.actor).where(EVENT.c.outbox_id == outbox_id).where(EVENT.c.kind == kind)
    ).scalar()
    return value


# --- what people read (the CLI, the demo, exports) -------------------------------------------


def ticket_records(
    connection: Connection, *, status: str | None = None, mailbox: str | None = None
) -> list[sa.RowMapping]:
    """Every column of the tickets, oldest arrival first, optionally of one status or mailbox."""
    query = sa.select(TICKET).order_by(TICKET.c.received_at, TICKET.c.id)
    if status:
        query = query.where(TICKET.c.status == status)
    if mailbox:
        query = query.where(TICKET.c.mailbox == mailbox)
    return list(connection.execute(query).mappings())


def ticket_record(connection: Connection, ref: str) -> sa.RowMapping | None:
    return connection.execute(sa.select(TICKET).where(TICKET.c.ref == ref)).mappings().first()


def ticket_history(connection: Connection, ticket_id: int) -> dict[str, list[sa.RowMapping]]:
    """A ticket's deadlines, holds (`attente` and `incomplet`), inbound messages (without their
    bytes) and events, in order."""

    inbound = [c for c in INBOUND.c if c.name != "raw"]
    return {
        "deadlines": list(
            connection.execute(
                sa.select(DEADLINE).where(DEADLINE.c.ticket_id == ticket_id).order_by(DEADLINE.c.id)
            ).mappings()
        ),
        "holds": list(
            connection.execute(
                sa.select(HOLD).where(HOLD.c.ticket_id == ticket_id).order_by(HOLD.c.id)
            ).mappings()
        ),
        "messages": list(
            connection.execute(
                sa.select(*inbound).where(INBOUND.c.ticket_id == ticket_id).order_by(INBOUND.c.id)
            ).mappings()
        ),
        "events": list(
            connection.execute(
                sa.select(EVENT).where(EVENT.c.ticket_id == ticket_id).order_by(EVENT.c.id)
            ).mappings()
        ),
    }
