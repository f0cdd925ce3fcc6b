"""Microsoft Graph bookkeeping, on a connection: the number each message's immutable id
stands for, which of them are still in the watched folder, each folder's delta link, and the
Message-IDs the transport gave our messages in place of ours."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import GRAPH_FOLDER, GRAPH_MESSAGE, MESSAGE_ALIAS


@dataclass(frozen=True, slots=True)
class Seen:
    """One message a delta page listed in the folder (`removed`: it left the folder)."""

    immutable_id: str
    received_at: datetime | None
    removed: bool = False


def delta_link(connection: Connection, mailbox: str, folder: str) -> str:
    """Where the next delta query of the folder starts ("" for a full listing)."""
    value = connection.execute(
        sa.select(GRAPH_FOLDER.c.delta_link)
        .where(GRAPH_FOLDER.c.mailbox == mailbox)
        .where(GRAPH_FOLDER.c.folder == folder)
    ).scalar()
    return str(value or "")


def save_delta_link(
    connection: Connection, mailbox: str, folder: str, link: str, now: datetime, *, resync: bool
) -> None:
    updated = connection.execute(
        sa.update(GRAPH_FOLDER)
        .where(GRAPH_FOLDER.c.mailbox == mailbox)
        .where(GRAPH_FOLDER.c.folder == folder)
        .values(
            delta_link=link,
            updated_at=now,
            resyncs=GRAPH_FOLDER.c.resyncs + (1 if resync else 0),
        )
    )
    if updated.rowcount == 0:
        connection.execute(
            sa.insert(GRAPH_FOLDER).values(
                mailbox=mailbox, folder=folder, delta_link=link, resyncs=0, updated_at=now
            )
        )


def record_seen(connection: Connection, mailbox: str, seen: Iterable[Seen], now: datetime) -> None:
    """Upsert what a delta page said: listed messages present, removed ones absent. An
    immutable id seen before keeps its number (its UID): a resync never makes a new one."""
    for item in seen:
        updated = connection.execute(
            sa.update(GRAPH_MESSAGE)
            .where(GRAPH_MESSAGE.c.mailbox == mailbox)
            .where(GRAPH_MESSAGE.c.immutable_id == item.immutable_id)
            .values(present=not item.removed, seen_at=now)
        )
        if updated.rowcount == 0 and not item.removed:
            connection.execute(
                sa.insert(GRAPH_MESSAGE).values(
                    mailbox=mailbox,
                    immutable_id=item.immutable_id,
                    present=True,
                    received_at=item.received_at,
                    seen_at=now,
                )
            )


def mark_absent_except(
    connection: Connection, mailbox: str, listed: Sequence[str], now: datetime
) -> int:
    """After a full listing: every message of the mailbox not in `listed` left the folder."""
    present = connection.execute(
        sa.select(GRAPH_MESSAGE.c.id, GRAPH_MESSAGE.c.immutable_id)
        .where(GRAPH_MESSAGE.c.mailbox == mailbox)
        .where(GRAPH_MESSAGE.c.present.is_(True))
    ).all()
    keep = set(listed)
    gone = [row.id for row in present if row.immutable_id not in keep]
    if gone:
        connection.execute(
            sa.update(GRAPH_MESSAGE)
            .where(GRAPH_MESSAGE.c.id.in_(gone))
            .values(present=False, seen_at=now)
        )
    return len(gone)


@dataclass(frozen=True, slots=True)
class Listed:
    uid: int
    immutable_id: str
    received_at: datetime | None


def present(connection: Connection, mailbox: str) -> list[Listed]:
    """The messages in the watched folder, oldest number first."""
    rows = connection.execute(
        sa.select(GRAPH_MESSAGE.c.id, GRAPH_MESSAGE.c.immutable_id, GRAPH_MESSAGE.c.received_at)
        .where(GRAPH_MESSAGE.c.mailbox == mailbox)
        .where(GRAPH_MESSAGE.c.present.is_(True))
        .order_by(GRAPH_MESSAGE.c.id)
    ).all()
    return [Listed(int(row.id), row.immutable_id, row.received_at) for row in rows]


def mark_moved(connection: Connection, uids: Sequence[int], now: datetime) -> None:
    if uids:
        connection.execute(
            sa.update(GRAPH_MESSAGE)
            .where(GRAPH_MESSAGE.c.id.in_(list(uids)))
            .values(present=False, seen_at=now)
        )


def record_alias(connection: Connection, assigned: str, ours: str, now: datetime) -> None:
    """`assigned` (what Exchange sent our message `ours` with) stands for `ours` from now on."""
    exists = connection.execute(
        sa.select(MESSAGE_ALIAS.c.message_id).where(MESSAGE_ALIAS.c.assigned == assigned)
    ).first()
    if exists is None:
        connection.execute(
            sa.insert(MESSAGE_ALIAS).values(assigned=assigned, message_id=ours, recorded_at=now)
        )


def our_message_ids(connection: Connection, cited: Sequence[str]) -> list[str]:
    """Our Message-IDs for those of `cited` that are ids the transport assigned to ours."""
    if not cited:
        return []
    rows = connection.execute(
        sa.select(MESSAGE_ALIAS.c.message_id).where(MESSAGE_ALIAS.c.assigned.in_(list(cited)[:50]))
    ).scalars()
    return list(rows)
