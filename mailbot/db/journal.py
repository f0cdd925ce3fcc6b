"""The rows of the journal: sent messages whose copy is not yet in the Sent folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.models import OUTBOX
from mailbot.states import OutboxState


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
