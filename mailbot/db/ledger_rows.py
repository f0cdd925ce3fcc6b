"""What the erasure ledger (mailbot/privacy/ledger.py) reads and changes in the database: the
reference counters and the rows an entry names (SQLAlchemy Core, on the caller's
connection); the instance id is the service_meta key db/backup.INSTANCE_KEY."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mailbot.db.models import (
    ADDRESS,
    COUNTER,
    EVENT,
    HOLD,
    INBOUND,
    OUTBOX,
    RETENTION_RUN,
    TICKET,
)
from mailbot.db.store import chunks


def counters(connection: Connection) -> list[tuple[str, int, int]]:
    """Every reference counter: (prefix, year, last sequence given)."""
    rows = connection.execute(
        sa.select(COUNTER.c.prefix, COUNTER.c.year, COUNTER.c.last).order_by(
            COUNTER.c.prefix, COUNTER.c.year
        )
    ).all()
    return [(str(prefix), int(year), int(last)) for prefix, year, last in rows]


def raise_counter(connection: Connection, prefix: str, year: int, last: int) -> bool:
    """The counter of (prefix, year) at `last` at least (never lowered); whether it rose."""
    updated = connection.execute(
        sa.update(COUNTER)
        .where(COUNTER.c.prefix == prefix, COUNTER.c.year == year, COUNTER.c.last < last)
        .values(last=last)
    )
    if updated.rowcount:
        return True
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    inserted = connection.execute(
        dialect.insert(COUNTER)
        .on_conflict_do_nothing(index_elements=["prefix", "year"])
        .values(prefix=prefix, year=year, last=last)
    )
    return bool(inserted.rowcount)


def holds_no_mail(connection: Connection) -> bool:
    """A database that holds no ticket and no message yet (new, or about to be rebuilt)."""
    for table in (TICKET, INBOUND, OUTBOX):
        if connection.execute(sa.select(table.c.id).limit(1)).first() is not None:
            return False
    return True


@dataclass(frozen=True, slots=True)
class NamedTicket:
    id: int
    ref: str
    requester: str
    received_at: datetime
    legal_hold: bool
    anonymised: bool
    raw_destroyed: bool


def _named(row: Any) -> NamedTicket:
    return NamedTicket(
        id=row.id,
        ref=row.ref,
        requester=row.requester,
        received_at=row.received_at,
        legal_hold=row.legal_hold_at is not None,
        anonymised=row.anonymised_at is not None,
        raw_destroyed=row.raw_destroyed_at is not None,
    )


_TICKET_COLUMNS = (
    TICKET.c.id,
    TICKET.c.ref,
    TICKET.c.requester,
    TICKET.c.received_at,
    TICKET.c.legal_hold_at,
    TICKET.c.anonymised_at,
    TICKET.c.raw_destroyed_at,
)


def tickets_named(connection: Connection, refs: Iterable[str]) -> list[NamedTicket]:
    wanted = sorted(set(refs))
    found: list[NamedTicket] = []
    for chunk in chunks(wanted, 500):
        rows = connection.execute(sa.select(*_TICKET_COLUMNS).where(TICKET.c.ref.in_(chunk))).all()
        found += [_named(row) for row in rows]
    return found


def tickets_not_anonymised(connection: Connection) -> list[NamedTicket]:
    rows = connection.execute(
        sa.select(*_TICKET_COLUMNS).where(TICKET.c.anonymised_at.is_(None)).order_by(TICKET.c.id)
    ).all()
    return [_named(row) for row in rows]


@dataclass(frozen=True, slots=True)
class HashedMessage:
    """A received message the database still identifies by the hash of its bytes."""

    id: int
    sha256: str
    ticket_id: int | None
    mailbox: str
    message_id: str
    size: int


def messages_with_hashes(connection: Connection) -> list[HashedMessage]:
    rows = connection.execute(
        sa.select(
            INBOUND.c.id,
            INBOUND.c.sha256,
            INBOUND.c.ticket_id,
            INBOUND.c.mailbox,
            INBOUND.c.message_id,
            INBOUND.c.size,
        ).where(INBOUND.c.sha256 != "")
    ).all()
    return [HashedMessage(*row) for row in rows]


def outbox_named(connection: Connection, message_ids: Iterable[str]) -> list[tuple[int, str]]:
    """(id, message_id) of our own mail named by Message-ID that still holds something."""
    wanted = sorted(set(message_ids))
    found: list[tuple[int, str]] = []
    for chunk in chunks(wanted, 500):
        rows = connection.execute(
            sa.select(OUTBOX.c.id, OUTBOX.c.message_id).where(
                OUTBOX.c.message_id.in_(chunk),
                sa.or_(sa.func.length(OUTBOX.c.raw) > 0, OUTBOX.c.state == "pending"),
            )
        ).all()
        found += [(int(row[0]), str(row[1])) for row in rows]
    return found


def people_named(connection: Connection) -> set[str]:
    """Every address the history or the bounce states name (actors, hold authors)."""
    found: set[str] = set()
    for column in (EVENT.c.actor, HOLD.c.started_by, HOLD.c.ended_by, ADDRESS.c.address):
        found |= {str(v) for v in connection.execute(sa.select(column).distinct()).scalars()}
    return found - {"", "mailbot", "anonymised"}


def run_keys(connection: Connection) -> set[str]:
    keys = connection.execute(sa.select(RETENTION_RUN.c.ledger_key).distinct()).scalars()
    return {str(key) for key in keys} - {""}


def record_run(
    connection: Connection,
    *,
    key: str,
    trigger: str,
    actor: str,
    started_at: datetime,
    finished_at: datetime,
    counts: tuple[int, int, int],
    refs: Sequence[str],
) -> None:
    """A run the ledger records and the database lacked, recorded again (its counts and
    references as the ledger gives them)."""
    connection.execute(
        sa.insert(RETENTION_RUN).values(
            started_at=started_at,
            finished_at=finished_at,
            trigger=trigger[:16],
            actor=actor[:320],
            dry_run=False,
            raw_destroyed=counts[0],
            anonymised=counts[1],
            unlinked=counts[2],
            refs=" ".join(refs),
            ledger_key=key,
        )
    )


def hold_pending(connection: Connection, reason: str, now: datetime) -> int:
    """Every message waiting to be sent held instead (a person decides), its ticket's history
    saying why; how many. The history entry counts as the failure's report: the restore
    that held them said so itself."""
    pending = connection.execute(
        sa.select(OUTBOX.c.id, OUTBOX.c.ticket_id).where(OUTBOX.c.state == "pending")
    ).all()
    if not pending:
        return 0
    ids = [row.id for row in pending]
    for chunk in chunks(ids, 500):
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(chunk))
            .values(state="held", last_error=reason[:2000], lease_owner=None, lease_until=None)
        )
    events = [
        {
            "ticket_id": row.ticket_id,
            "at": now,
            "kind": "failure_reported",
            "actor": "mailbot",
            "outbox_id": row.id,
            "detail": reason[:4000],
        }
        for row in pending
        if row.ticket_id is not None
    ]
    if events:
        connection.execute(sa.insert(EVENT), events)
    return len(ids)
