"""The rows of the journal: sent messages whose copy is not yet in the Sent folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import COUNTER, INBOUND, MESSAGE_ALIAS, OUTBOX, TICKET
from mailbot.db.store import insert_ignoring
from mailbot.states import OutboxState


@dataclass(frozen=True, slots=True)
class SentCopy:
    """A sent message whose copy is still to be kept."""

    id: int
    message_id: str
    envelope_from: str
    raw: bytes
    sent_at: datetime


def copies_to_keep(connection: Connection, limit: int, after_id: int = 0) -> list[SentCopy]:
    rows = connection.execute(
        sa.select(
            OUTBOX.c.id, OUTBOX.c.message_id, OUTBOX.c.envelope_from, OUTBOX.c.raw, OUTBOX.c.sent_at
        )
        .where(OUTBOX.c.state == OutboxState.SENT.value)
        .where(OUTBOX.c.sent_copy_at.is_(None))
        .where(OUTBOX.c.id > after_id)
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )
    return [SentCopy(r.id, r.message_id, r.envelope_from, r.raw, r.sent_at) for r in rows]


def oldest_copy_to_keep(connection: Connection) -> datetime | None:
    """When the longest-waiting sent message not yet journalled was sent."""
    found = connection.execute(
        sa.select(sa.func.min(OUTBOX.c.sent_at))
        .where(OUTBOX.c.state == OutboxState.SENT.value)
        .where(OUTBOX.c.sent_copy_at.is_(None))
    ).scalar()
    if found is None:
        return None
    instant = datetime.fromisoformat(found) if isinstance(found, str) else found
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def record_copies(connection: Connection, ids: Sequence[int], now: datetime) -> None:
    if ids:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(list(ids)))
            .where(OUTBOX.c.sent_copy_at.is_(None))
            .values(sent_copy_at=now)
        )


# --- reconciliation with the mail store (mailbot/recovery/reconcile.py)
# -----------------------------
# The statements a replay runs for every message are built once, with bound parameters.

# Messages brought back from the processed and quarantine folders are stored under this
# UIDVALIDITY (never a real one: RFC 3501 makes it non-zero), with their own sequence as UID,
# so they can never be taken for a message of a watched folder.
REPLAYED_UIDVALIDITY = 0


def known_hashes(connection: Connection) -> set[str]:
    return set(connection.execute(sa.select(INBOUND.c.sha256)).scalars())


def newest_arrival(connection: Connection) -> datetime | None:
    """The arrival instant of the newest message the database holds (None: it holds none)."""
    found = connection.execute(sa.select(sa.func.max(INBOUND.c.internal_date))).scalar()
    if found is None:
        return None
    instant = datetime.fromisoformat(found) if isinstance(found, str) else found
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def known_message_ids(connection: Connection) -> set[str]:
    """Message-IDs of stored inbound mail and of mail we queued, under ours and under those
    the transport sent it with (Graph: Exchange may give our mail a Message-ID of its own)."""
    inbound = connection.execute(sa.select(INBOUND.c.message_id)).scalars()
    return {*inbound, *outbox_message_ids(connection)} - {""}


def known_refs(connection: Connection) -> list[str]:
    return list(connection.execute(sa.select(TICKET.c.ref)).scalars())


_REF_OF = sa.select(TICKET.c.ref).where(TICKET.c.id == sa.bindparam("of_id"))
_ID_OF = sa.select(TICKET.c.id).where(TICKET.c.ref == sa.bindparam("of_ref"))


def ref_of(connection: Connection, ticket_id: int) -> str:
    return str(connection.execute(_REF_OF, {"of_id": ticket_id}).scalar() or "")


def ticket_id_of(connection: Connection, ref: str) -> int | None:
    found = connection.execute(_ID_OF, {"of_ref": ref}).scalar()
    return int(found) if found is not None else None


_LAST_REPLAYED = (
    sa.select(sa.func.max(INBOUND.c.uid))
    .where(INBOUND.c.mailbox == sa.bindparam("of_mailbox"))
    .where(INBOUND.c.uidvalidity == REPLAYED_UIDVALIDITY)
)


def next_replayed_uid(connection: Connection, mailbox: str) -> int:
    return int(connection.execute(_LAST_REPLAYED, {"of_mailbox": mailbox}).scalar() or 0) + 1


_COUNTER = (
    sa.select(COUNTER.c.last)
    .where(COUNTER.c.prefix == sa.bindparam("of_prefix"))
    .where(COUNTER.c.year == sa.bindparam("of_year"))
)
_SET_COUNTER = (
    sa.update(COUNTER)
    .where(COUNTER.c.prefix == sa.bindparam("of_prefix"))
    .where(COUNTER.c.year == sa.bindparam("of_year"))
    .values(last=sa.bindparam("new_last"))
)


def counter_value(connection: Connection, prefix: str, year: int) -> int:
    return int(connection.execute(_COUNTER, {"of_prefix": prefix, "of_year": year}).scalar() or 0)


def set_counter(connection: Connection, prefix: str, year: int, last: int) -> None:
    updated = connection.execute(
        _SET_COUNTER, {"of_prefix": prefix, "of_year": year, "new_last": last}
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
    envelope_from: str
    recipient: str
    raw: bytes
    attempts: int
    created_at: datetime


_PENDING = (
    sa.select(
        OUTBOX.c.id,
        OUTBOX.c.ticket_id,
        OUTBOX.c.purpose,
        OUTBOX.c.dedupe_key,
        OUTBOX.c.message_id,
        OUTBOX.c.envelope_from,
        OUTBOX.c.recipient,
        OUTBOX.c.raw,
        OUTBOX.c.attempts,
        OUTBOX.c.created_at,
    )
    .where(OUTBOX.c.state == OutboxState.PENDING.value)
    .where(OUTBOX.c.id > sa.bindparam("after_id"))
    .order_by(OUTBOX.c.id)
)
_HIGHEST_OUTBOX = sa.select(sa.func.max(OUTBOX.c.id))


def pending_rows(connection: Connection, after_id: int = 0) -> list[PendingRow]:
    rows = connection.execute(_PENDING, {"after_id": after_id})
    return [PendingRow(**row._mapping) for row in rows]


def highest_outbox_id(connection: Connection) -> int:
    return int(connection.execute(_HIGHEST_OUTBOX).scalar() or 0)


_LEASE = (
    sa.update(OUTBOX)
    .where(OUTBOX.c.id == sa.bindparam("row"))
    .values(lease_owner=sa.bindparam("owner"), lease_until=sa.bindparam("until"))
)
_JOURNALLED = (
    sa.update(OUTBOX)
    .where(OUTBOX.c.id == sa.bindparam("row"))
    .values(message_id=sa.bindparam("new_message_id"), sent_copy_at=sa.bindparam("at"))
)


def lease_for(connection: Connection, row_id: int, owner: str, until: datetime) -> None:
    connection.execute(_LEASE, {"row": row_id, "owner": owner, "until": until})


def mark_journalled(connection: Connection, row_id: int, message_id: str, now: datetime) -> None:
    """The row's message is the one found in the Sent folder: same Message-ID, copy kept."""
    connection.execute(_JOURNALLED, {"row": row_id, "new_message_id": message_id, "at": now})


def outbox_has_message_id(connection: Connection, message_id: str) -> bool:
    found = connection.execute(
        sa.select(OUTBOX.c.id).where(OUTBOX.c.message_id == message_id).limit(1)
    ).first()
    return found is not None


def outbox_message_ids(connection: Connection) -> set[str]:
    """The Message-IDs of the mail we queued, and those Exchange sent it with (`message_alias`)."""
    ours = connection.execute(sa.select(OUTBOX.c.message_id)).scalars()
    assigned = connection.execute(sa.select(MESSAGE_ALIAS.c.assigned)).scalars()
    return {*ours, *assigned}


def insert_sent_copy(connection: Connection, values: dict[str, object]) -> None:
    """A row for a message found only in the Sent folder (a reminder, a digest, ...): sent,
    so its dedupe key keeps it from being sent again."""
    connection.execute(insert_ignoring(connection, OUTBOX, "dedupe_key").values(**values))
