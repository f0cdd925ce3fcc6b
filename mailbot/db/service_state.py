"""What mailbot knows outside tickets: correspondents' addresses, alert episodes, and facts
about the database itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import ADDRESS, ALERT, META
from mailbot.db.store import insert_ignoring


def mark_undeliverable(connection: Connection, address: str, reason: str, now: datetime) -> None:
    address = address.lower()
    updated = connection.execute(
        sa.update(ADDRESS)
        .where(ADDRESS.c.address == address)
        .values(undeliverable=True, reason=reason, updated_at=now)
    )
    if updated.rowcount == 0:
        connection.execute(
            sa.insert(ADDRESS).values(
                address=address, undeliverable=True, reason=reason, updated_at=now
            )
        )


def clear_undeliverable(connection: Connection, address: str) -> None:
    """The person wrote again: automatic mail may go to the address again."""
    connection.execute(_CLEAR_UNDELIVERABLE, {"of_address": address.lower()})


_CLEAR_UNDELIVERABLE = (
    sa.update(ADDRESS)
    .where(ADDRESS.c.address == sa.bindparam("of_address"))
    .where(ADDRESS.c.undeliverable.is_(True))
    .values(undeliverable=False, reason="")
)


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    started_at: datetime
    detail: str


def open_alert(connection: Connection, name: str) -> Alert | None:
    row = connection.execute(
        sa.select(ALERT)
        .where(ALERT.c.name == name)
        .where(ALERT.c.started_at.is_not(None))
        .where(ALERT.c.resolved_at.is_(None))
    ).first()
    return Alert(row.name, row.started_at, row.detail) if row is not None else None


def open_alerts(connection: Connection, prefix: str) -> list[Alert]:
    """The open episodes whose name starts with `prefix`."""
    rows = connection.execute(
        sa.select(ALERT)
        .where(ALERT.c.name.startswith(prefix, autoescape=True))
        .where(ALERT.c.started_at.is_not(None))
        .where(ALERT.c.resolved_at.is_(None))
    ).all()
    return [Alert(row.name, row.started_at, row.detail) for row in rows]


def start_alert(connection: Connection, name: str, now: datetime, detail: str) -> bool:
    """Open an episode of `name`; False when one is already open (another instance won)."""
    updated = connection.execute(
        sa.update(ALERT)
        .where(ALERT.c.name == name)
        .where(sa.or_(ALERT.c.started_at.is_(None), ALERT.c.resolved_at.is_not(None)))
        .values(started_at=now, resolved_at=None, detail=detail[:2000])
    )
    if updated.rowcount:
        return True
    # RETURNING says whether the row was made: SQLAlchemy keeps the rowcount of UPDATE and
    # DELETE only, and an INSERT's reads -1 on PostgreSQL (psycopg), which is true.
    inserted = connection.execute(
        insert_ignoring(connection, ALERT, "name")
        .values(name=name, started_at=now, resolved_at=None, detail=detail[:2000])
        .returning(ALERT.c.name)
    ).first()
    return inserted is not None


def resolve_alert(connection: Connection, name: str, now: datetime) -> bool:
    """Close the open episode of `name`; False when none was open."""
    updated = connection.execute(
        sa.update(ALERT)
        .where(ALERT.c.name == name)
        .where(ALERT.c.started_at.is_not(None))
        .where(ALERT.c.resolved_at.is_(None))
        .values(resolved_at=now)
    )
    return bool(updated.rowcount)


def claim_meta(connection: Connection, key: str, value: str) -> str:
    """The stored value of `key`, which becomes `value` if the key was never set."""
    connection.execute(insert_ignoring(connection, META, "key").values(key=key, value=value))
    return str(connection.execute(sa.select(META.c.value).where(META.c.key == key)).scalar_one())


def meta_value(connection: Connection, key: str) -> str | None:
    found = connection.execute(sa.select(META.c.value).where(META.c.key == key)).scalar()
    return None if found is None else str(found)


def set_meta(connection: Connection, key: str, value: str) -> None:
    """`key` holds `value` from now on (written only when it changes)."""
    if meta_value(connection, key) == value:
        return
    claim_meta(connection, key, value)
    connection.execute(sa.update(META).where(META.c.key == key).values(value=value))


def drop_meta(connection: Connection, key: str) -> None:
    connection.execute(sa.delete(META).where(META.c.key == key))
