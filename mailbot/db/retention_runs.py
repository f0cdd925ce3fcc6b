"""The record of retention runs: each run started, what each batch did, when it finished
(SQLAlchemy Core, on the caller's connection)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import RETENTION_RUN, UtcDateTime


def start_run(
    connection: Connection,
    trigger: str,
    actor: str,
    now: datetime,
    *,
    dry_run: bool,
    ledger_key: str = "",
) -> int:
    run_id: int = connection.execute(
        sa.insert(RETENTION_RUN)
        .values(
            started_at=now,
            trigger=trigger,
            actor=actor,
            dry_run=dry_run,
            refs="",
            ledger_key=ledger_key,
        )
        .returning(RETENTION_RUN.c.id)
    ).scalar_one()
    return run_id


def add_to_run(
    connection: Connection,
    run_id: int,
    *,
    raw_destroyed: int = 0,
    anonymised: int = 0,
    unlinked: int = 0,
    refs: Sequence[str] = (),
) -> None:
    """Counted in the batch's own transaction: a run killed halfway says what it did."""
    added = " ".join(refs)
    connection.execute(
        sa.update(RETENTION_RUN)
        .where(RETENTION_RUN.c.id == run_id)
        .values(
            raw_destroyed=RETENTION_RUN.c.raw_destroyed + raw_destroyed,
            anonymised=RETENTION_RUN.c.anonymised + anonymised,
            unlinked=RETENTION_RUN.c.unlinked + unlinked,
            refs=sa.case(
                (RETENTION_RUN.c.refs == "", added),
                else_=RETENTION_RUN.c.refs + (" " + added if added else ""),
            ),
        )
    )


def finish_run(connection: Connection, run_id: int, now: datetime) -> None:
    connection.execute(
        sa.update(RETENTION_RUN).where(RETENTION_RUN.c.id == run_id).values(finished_at=now)
    )


def last_finished_run(connection: Connection, trigger: str) -> datetime | None:
    """When the last completed run of `trigger` started (dry runs aside)."""
    latest = sa.type_coerce(sa.func.max(RETENTION_RUN.c.started_at), UtcDateTime())
    value: datetime | None = connection.execute(
        sa.select(latest).where(
            RETENTION_RUN.c.trigger == trigger,
            RETENTION_RUN.c.finished_at.is_not(None),
            RETENTION_RUN.c.dry_run.is_(False),
        )
    ).scalar()
    return value


def runs(connection: Connection) -> list[sa.RowMapping]:
    return list(
        connection.execute(sa.select(RETENTION_RUN).order_by(RETENTION_RUN.c.id)).mappings().all()
    )
