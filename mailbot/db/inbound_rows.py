"""Inbound messages, as stored, and the IMAP bookkeeping around them, on a connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import CHECKPOINT, INBOUND, OUTBOX
from mailbot.db.store import chunks
from mailbot.states import MessageState

_INSERT_INBOUND = sa.insert(INBOUND).returning(INBOUND.c.id)


def insert_inbound(connection: Connection, values: Mapping[str, object]) -> int:
    return int(connection.execute(_INSERT_INBOUND, dict(values)).scalar_one())


def record_outcome(
    connection: Connection, inbound_id: int, *, state: str, reason: str, flags: str = ""
) -> None:
    """Write what became of a stored message, once, with its reason."""
    connection.execute(
        sa.update(INBOUND)
        .where(INBOUND.c.id == inbound_id)
        .values(state=state, reason=reason[:2000], flags=flags[:200])
    )


def stored_state(connection: Connection, mailbox: str, uidvalidity: int, uid: int) -> str | None:
    state: str | None = connection.execute(
        sa.select(INBOUND.c.state)
        .where(INBOUND.c.mailbox == mailbox)
        .where(INBOUND.c.uidvalidity == uidvalidity)
        .where(INBOUND.c.uid == uid)
    ).scalar()
    return state


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The first stored copy of a message delivered again."""

    inbound_id: int
    mailbox: str
    ticket_id: int | None


def duplicate_of(connection: Connection, fingerprint: str, digest: str) -> Duplicate | None:
    """The first stored copy with this fingerprint (parse.request_fingerprint), in any of our
    mailboxes, or (rows stored before fingerprints existed) with the same bytes; a quarantined
    copy does not count (processing it failed: try again)."""
    row = connection.execute(_DUPLICATE, {"fingerprint": fingerprint, "digest": digest}).first()
    return Duplicate(row.id, row.mailbox, row.ticket_id) if row is not None else None


_DUPLICATE = (
    sa.select(INBOUND.c.id, INBOUND.c.mailbox, INBOUND.c.ticket_id)
    .where(
        sa.or_(
            INBOUND.c.fingerprint == sa.bindparam("fingerprint"),
            sa.and_(INBOUND.c.fingerprint == "", INBOUND.c.sha256 == sa.bindparam("digest")),
        )
    )
    .where(INBOUND.c.state != MessageState.QUARANTINED.value)
    .order_by(INBOUND.c.id)
    .limit(1)
)


def known_uidvalidities(connection: Connection, mailbox: str) -> set[int]:
    return set(
        connection.execute(
            sa.select(CHECKPOINT.c.uidvalidity).where(CHECKPOINT.c.mailbox == mailbox)
        ).scalars()
    )


def advance_checkpoint(
    connection: Connection, mailbox: str, uidvalidity: int, uid: int, now: datetime
) -> None:
    """Record the highest UID stored for (mailbox, UIDVALIDITY), in the message's transaction."""
    updated = connection.execute(
        sa.update(CHECKPOINT)
        .where(CHECKPOINT.c.mailbox == mailbox)
        .where(CHECKPOINT.c.uidvalidity == uidvalidity)
        .where(CHECKPOINT.c.last_uid < uid)
        .values(last_uid=uid, updated_at=now)
    )
    if updated.rowcount == 0:
        exists = connection.execute(
            sa.select(CHECKPOINT.c.last_uid)
            .where(CHECKPOINT.c.mailbox == mailbox)
            .where(CHECKPOINT.c.uidvalidity == uidvalidity)
        ).first()
        if exists is None:
            connection.execute(
                sa.insert(CHECKPOINT).values(
                    mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid, updated_at=now
                )
            )


def stored_outcomes(
    connection: Connection, mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, tuple[str, str]]:
    """The messages of `uids` already stored: uid -> (state, flags)."""
    found: dict[int, tuple[str, str]] = {}
    for batch in chunks(sorted(uids), 500):
        rows = connection.execute(
            sa.select(INBOUND.c.uid, INBOUND.c.state, INBOUND.c.flags)
            .where(INBOUND.c.mailbox == mailbox)
            .where(INBOUND.c.uidvalidity == uidvalidity)
            .where(INBOUND.c.uid.in_(batch))
        ).all()
        found.update({int(row.uid): (row.state, row.flags) for row in rows})
    return found


def record_moves(
    connection: Connection,
    mailbox: str,
    uidvalidity: int,
    uids: Sequence[int],
    folder: str,
    now: datetime,
) -> None:
    for batch in chunks(sorted(uids), 500):
        connection.execute(
            sa.update(INBOUND)
            .where(INBOUND.c.mailbox == mailbox)
            .where(INBOUND.c.uidvalidity == uidvalidity)
            .where(INBOUND.c.uid.in_(batch))
            .values(moved_at=now, folder=folder)
        )


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A stored inbound message with its raw bytes (quarantine retry, confirmations)."""

    id: int
    mailbox: str
    uidvalidity: int
    uid: int
    internal_date: datetime
    size: int
    raw: bytes
    state: str
    message_id: str


def stored_message(connection: Connection, inbound_id: int) -> StoredMessage | None:
    row = connection.execute(sa.select(INBOUND).where(INBOUND.c.id == inbound_id)).first()
    if row is None:
        return None
    return StoredMessage(
        row.id,
        row.mailbox,
        row.uidvalidity,
        row.uid,
        row.internal_date,
        row.size,
        row.raw,
        row.state,
        row.message_id,
    )


def delete_message(connection: Connection, inbound_id: int) -> None:
    connection.execute(sa.delete(INBOUND).where(INBOUND.c.id == inbound_id))


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    id: int
    mailbox: str
    received_at: datetime
    size: int
    message_id: str
    reason: str


def quarantined(connection: Connection) -> list[QuarantinedMessage]:
    """Quarantined messages, oldest first."""
    rows = connection.execute(
        sa.select(
            INBOUND.c.id,
            INBOUND.c.mailbox,
            INBOUND.c.internal_date,
            INBOUND.c.size,
            INBOUND.c.message_id,
            INBOUND.c.reason,
        )
        .where(INBOUND.c.state == MessageState.QUARANTINED.value)
        .order_by(INBOUND.c.id)
    ).all()
    return [QuarantinedMessage(*row) for row in rows]


def first_request(connection: Connection, ticket_id: int) -> StoredMessage | None:
    """The message that opened the ticket (its first `new_request`; never one a merge brought
    from a duplicate), if still stored."""
    first = connection.execute(
        sa.select(sa.func.min(INBOUND.c.id))
        .where(INBOUND.c.ticket_id == ticket_id)
        .where(INBOUND.c.merged_from.is_(None))
        .where(INBOUND.c.kind == "new_request")
    ).scalar()
    return None if first is None else stored_message(connection, first)


def held_for_confirmation(connection: Connection, ticket_id: int) -> list[StoredMessage]:
    """Staff replies on a ticket held for their sender's confirmation, because their cut was
    doubtful or a line looked like a command left unmarked, newest first."""
    rows = connection.execute(
        sa.select(INBOUND.c.id)
        .where(INBOUND.c.ticket_id == ticket_id)
        .where(INBOUND.c.state == MessageState.HELD.value)
        .where(
            sa.or_(
                INBOUND.c.flags.contains("uncertain_cut"),
                INBOUND.c.flags.contains("unmarked_command"),
            )
        )
        .order_by(INBOUND.c.id.desc())
    ).scalars()
    return [message for i in rows if (message := stored_message(connection, i)) is not None]


def staff_replies_after(
    connection: Connection, ticket_id: int, after_id: int, before_id: int
) -> list[StoredMessage]:
    """The staff messages stored on a ticket between two inbound ids (exclusive), oldest
    first: what a held reply's sender wrote on the ticket since."""
    rows = connection.execute(
        sa.select(INBOUND.c.id)
        .where(INBOUND.c.ticket_id == ticket_id)
        .where(INBOUND.c.kind == "staff_reply")
        .where(INBOUND.c.id > after_id)
        .where(INBOUND.c.id < before_id)
        .order_by(INBOUND.c.id)
    ).scalars()
    return [message for i in rows if (message := stored_message(connection, i)) is not None]


def citizen_thread(connection: Connection, ticket_id: int) -> tuple[list[str], list[str]]:
    """Message-IDs of the citizen's messages on the ticket and of ours to the citizen."""
    citizen = [
        row.message_id
        for row in connection.execute(
            sa.select(INBOUND.c.message_id)
            .where(INBOUND.c.ticket_id == ticket_id)
            .where(INBOUND.c.kind.in_(("new_request", "follow_up")))
            .order_by(INBOUND.c.id)
        )
        if row.message_id
    ]
    ours = [
        row.message_id
        for row in connection.execute(
            sa.select(OUTBOX.c.message_id)
            .where(OUTBOX.c.ticket_id == ticket_id)
            .where(
                OUTBOX.c.purpose.in_(
                    ("acknowledgement", "reply", "hold_request", "incomplete_request")
                )
            )
            .order_by(OUTBOX.c.id)
        )
    ]
    return citizen, ours
