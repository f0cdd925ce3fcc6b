"""The rows of the journal: sent messages whose copy is not yet in the Sent folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.models import COUNTER, INBOUND, OUTBOX, TICKET
from mailbot.states import OutboxState
from mailbot.store import insert_ignoring


@dataclass(frozen=True, slots=True)
class SentCopy:
    """A sent message whose copy is still to be kept."""

    id: int
    message_id: str
    envelope_from: str
    raw: bytes
    sent_at: datetime


def copies_to_keep(connection: Connection, limit: int) -> list[SentCopy]:
    rows = connection.execute(
        sa.select(
            OUTBOX.c.id, OUTBOX.c.message_id, OUTBOX.c.envelope_from, OUTBOX.c.raw, OUTBOX.c.sent_at
        )
        .where(OUTBOX.c.state == OutboxState.SENT.value)
        .where(OUTBOX.c.sent_copy_at.is_(None))
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )
    return [SentCopy(r.id, r.message_id, r.envelope_from, r.raw, r.sent_at) for r in rows]


def record_copies(connection: Connection, ids: Sequence[int], now: datetime) -> None:
    if ids:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(list(ids)))
            .where(OUTBOX.c.sent_copy_at.is_(None))
            .values(sent_copy_at=now)
        )


# --- reconciliation with the mail store (mailbot/reconcile.py) -----------------------------

# Messages brought back from the processed and quarantine folders are stored under this
# UIDVALIDITY (never a real one: RFC 3501 makes it non-zero), with their own sequence as UID,
# so they can never be taken for a message of a watched folder.
REPLAYED_UIDVALIDITY = 0


def known_hashes(connection: Connection) -> set[str]:
    return set(connection.execute(sa.select(INBOUND.c.sha256)).scalars())


def known_message_ids(connection: Connection) -> set[str]:
    """Message-IDs of stored inbound mail and of mail we queued."""
    inbound = connection.execute(sa.select(INBOUND.c.message_id)).scalars()
    outbound = connection.execute(sa.select(OUTBOX.c.message_id)).scalars()
    return {*inbound, *outbound} - {""}


def known_refs(connection: Connection) -> list[str]:
    return list(connection.execute(sa.select(TICKET.c.ref)).scalars())


def ref_of(connection: Connection, ticket_id: int) -> str:
    found = connection.execute(sa.select(TICKET.c.ref).where(TICKET.c.id == ticket_id)).scalar()
    return str(found or "")


def ticket_id_of(connection: Connection, ref: str) -> int | None:
    found = connection.execute(sa.select(TICKET.c.id).where(TICKET.c.ref == ref)).scalar()
    return int(found) if found is not None else None


def next_replayed_uid(connection: Connection, mailbox: str) -> int:
    highest = connection.execute(
        sa.select(sa.func.max(INBOUND.c.uid))
        .where(INBOUND.c.mailbox == mailbox)
        .where(INBOUND.c.uidvalidity == REPLAYED_UIDVALIDITY)
    ).scalar()
    return int(highest or 0) + 1


def counter_value(connection: Connection, prefix: str, year: int) -> int:
    found = connection.execute(
        sa.select(COUNTER.c.last).where(COUNTER.c.prefix == prefix).where(COUNTER.c.year == year)
    ).scalar()
    return int(found or 0)


def set_counter(connection: Connection, prefix: str, year: int, last: int) -> None:
    updated = connection.execute(
        sa.update(COUNTER)
        .where(COUNTER.c.prefix == prefix)
        .where(COUNTER.c.year == year)
        .values(last=last)
    )
    if updated.rowcount == 0:
        connection.execute(sa.insert(COUNTER).values(prefix=prefix, year=year, last=last))


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    ticket_id: int | None
    purpose: str
    dedupe_key: str
    message_id: str
    recipient: str
    raw: bytes
    created_at: datetime


def pending_rows(connection: Connection, after_id: int = 0) -> list[PendingRow]:
    rows = connection.execute(
        sa.select(
            OUTBOX.c.id,
            OUTBOX.c.ticket_id,
            OUTBOX.c.purpose,
            OUTBOX.c.dedupe_key,
            OUTBOX.c.message_id,
            OUTBOX.c.recipient,
            OUTBOX.c.raw,
            OUTBOX.c.created_at,
        )
        .where(OUTBOX.c.state == OutboxState.PENDING.value)
        .where(OUTBOX.c.id > after_id)
        .order_by(OUTBOX.c.id)
    )
    return [PendingRow(**row._mapping) for row in rows]


def highest_outbox_id(connection: Connection) -> int:
    return int(connection.execute(sa.select(sa.func.max(OUTBOX.c.id))).scalar() or 0)


def lease_for(connection: Connection, row_id: int, owner: str, until: datetime) -> None:
    connection.execute(
        sa.update(OUTBOX).where(OUTBOX.c.id == row_id).values(lease_owner=owner, lease_until=until)
    )


def mark_journalled(connection: Connection, row_id: int, message_id: str, now: datetime) -> None:
    """The row's message is the one found in the Sent folder: same Message-ID, copy kept."""
    connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == row_id)
        .values(message_id=message_id, sent_copy_at=now, lease_owner=None, lease_until=None)
    )


def outbox_has_message_id(connection: Connection, message_id: str) -> bool:
    found = connection.execute(
        sa.select(OUTBOX.c.id).where(OUTBOX.c.message_id == message_id).limit(1)
    ).first()
    return found is not None


def insert_sent_copy(connection: Connection, values: dict[str, object]) -> None:
    """A row for a message found only in the Sent folder (a reminder, a digest, ...): sent,
    so its dedupe key keeps it from being sent again."""
    connection.execute(insert_ignoring(connection, OUTBOX, "dedupe_key").values(**values))
