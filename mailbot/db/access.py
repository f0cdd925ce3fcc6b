"""The access trail: who displayed, exported or changed personal information, and when
(SQLAlchemy Core). Entries carry references, never addresses, names or texts."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import ACCESS


def record(
    connection: Connection,
    at: datetime,
    actor: str,
    action: str,
    ref: str | None = None,
    detail: str = "",
) -> None:
    connection.execute(
        sa.insert(ACCESS).values(
            at=at, actor=actor[:320], action=action[:32], ref=ref, detail=detail[:2000]
        )
    )


def entries(
    connection: Connection, *, ref: str | None = None, since: datetime | None = None
) -> list[sa.RowMapping]:
    query = sa.select(ACCESS).order_by(ACCESS.c.at, ACCESS.c.id)
    if ref is not None:
        query = query.where(ACCESS.c.ref == ref)
    if since is not None:
        query = query.where(ACCESS.c.at >= since)
    return list(connection.execute(query).mappings().all())
