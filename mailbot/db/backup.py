"""Backup and restore of a SQLite database, and the lock a running mailbot holds on it.

`take_backup` copies the database with SQLite's online backup API (a consistent snapshot even
while the daemon writes: the copy is the database as of one committed transaction) and writes
into the copy a small table, `mailbot_backup`, saying when it was taken, from which schema
(the Alembic head) and up to which instant the data goes. `restore_backup` puts such a copy in
place of the database, only when no mailbot holds the database (`DatabaseLock`) and, unless
forced, only when the database in place holds nothing newer than the copy. PostgreSQL is
refused: its own tools (pg_dump, continuous archiving) are the right ones.

A restored database is marked so that the first pass reconciles it with the mail store
(mailbot/recovery/reconcile.py) before anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailbot.errors import ConfigError, MailbotError

log = logging.getLogger(__name__)

BACKUP_TABLE = "mailbot_backup"
# The service_meta key a restore leaves: the next pass reconciles, then removes it.
RECONCILE_PENDING = "reconcile_pending"
# The instants that say how far a database's data goes.
_LAST_WRITES = (
    ("inbound_message", "stored_at"),
    ("outbox", "created_at"),
    ("outbox", "sent_at"),
    ("ticket", "updated_at"),
    ("ticket_event", "at"),
)


class BackupRefused(ConfigError):
    """A backup or restore that cannot be done as asked (the message says what to do)."""


class DatabaseInUse(MailbotError):
    """A running mailbot holds the database."""


@dataclass(frozen=True, slots=True)
class BackupFacts:
    """What a backup copy says of itself."""

    taken_at: datetime
    schema: str
    data_until: datetime | None
    source: str


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; a PostgreSQL (or other) database is refused."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url.removeprefix("sqlite:///"))
    scheme = url.split("://", 1)[0]
    raise BackupRefused(
        f"backup and restore copy a SQLite database; this one is {scheme}: use pg_dump "
        "(pg_dump -Fc, restored with pg_restore) or the server's continuous archiving "
        "(WAL archiving and base backups) instead"
    )


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """An advisory lock on a file beside the database: running mailbots hold it shared (two
    daemons may share a database), a restore takes it exclusive and is refused while any
    mailbot runs. The operating system releases it when the process ends, even by kill -9."""

    def __init__(self, database: Path) -> None:
        self._path = lock_path(database)
        self._fd: int | None = None

    def hold_shared(self) -> DatabaseLock:
        self._take(fcntl.LOCK_SH | fcntl.LOCK_NB, "another command holds it for a restore")
        return self

    def hold_exclusive(self) -> DatabaseLock:
        self._take(
            fcntl.LOCK_EX | fcntl.LOCK_NB,
            "a mailbot is running on it (stop the daemon first: systemctl stop mailbot)",
        )
        return self

    def _take(self, mode: int, busy: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(f"database {self._path.with_suffix('')}: {busy}") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def running_lock(url: str) -> Iterator[None]:
    """Held by `mailbot run` for its life, on a SQLite database (nothing on PostgreSQL)."""
    try:
        database = sqlite_path(url)
    except BackupRefused:
        yield
        return
    lock = DatabaseLock(database).hold_shared()
    try:
        yield
    finally:
        lock.release()


def _data_until(connection: sqlite3.Connection) -> datetime | None:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    found: list[datetime] = []
    for table, column in _LAST_WRITES:
        if table not in tables:
            continue
        value = connection.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]
        if value:
            instant = datetime.fromisoformat(str(value))
            found.append(instant if instant.tzinfo else instant.replace(tzinfo=UTC))
    return max(found) if found else None


def _schema(connection: sqlite3.Connection) -> str:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return ""
    return str(row[0]) if row else ""


def take_backup(url: str, target: Path, now: datetime) -> BackupFacts:
    """A consistent copy of the database at `target` (written beside it, then renamed into
    place), with its facts recorded inside it."""
    database = sqlite_path(url)
    if not database.exists():
        raise BackupRefused(f"no database at {database}")
    if target.exists():
        raise BackupRefused(f"{target} exists; give a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(partial)
    try:
        source.execute("PRAGMA busy_timeout=30000")
        source.backup(copy)
        facts = BackupFacts(
            taken_at=now,
            schema=_schema(copy),
            data_until=_data_until(copy),
            source=str(database),
        )
        copy.execute("PRAGMA journal_mode=DELETE")
        copy.execute(f"CREATE TABLE {BACKUP_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        copy.executemany(
            f"INSERT INTO {BACKUP_TABLE} VALUES (?, ?)",
            [
                ("taken_at", facts.taken_at.astimezone(UTC).isoformat()),
                ("schema", facts.schema),
                ("data_until", facts.data_until.isoformat() if facts.data_until else ""),
                ("source", facts.source),
            ],
        )
        copy.commit()
    finally:
        copy.close()
        source.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    log.info("backup of %s written to %s (schema %s)", database, target, facts.schema)
    return facts


def backup_facts(path: Path) -> BackupFacts:
    """What the backup at `path` says of itself; a file that is not one is refused."""
    if not path.is_file():
        raise BackupRefused(f"no backup at {path}")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = dict(connection.execute(f"SELECT key, value FROM {BACKUP_TABLE}").fetchall())
    except sqlite3.DatabaseError:
        raise BackupRefused(f"{path} is not a mailbot backup (made by `mailbot backup`)") from None
    finally:
        connection.close()
    return BackupFacts(
        taken_at=datetime.fromisoformat(rows["taken_at"]),
        schema=rows["schema"],
        data_until=datetime.fromisoformat(rows["data_until"]) if rows["data_until"] else None,
        source=rows["source"],
    )


def database_data_until(database: Path) -> datetime | None:
    """How far the data of the database in place goes (None: no database, or an empty one)."""
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return _data_until(connection)
    finally:
        connection.close()


def restore_backup(
    url: str, backup: Path, now: datetime, *, force: bool, known_schemas: frozenset[str]
) -> BackupFacts:
    """Put the copy at `backup` in place of the database: refused while a mailbot runs on it,
    when the database in place holds newer data (unless `force`), or when the copy comes from
    a newer mailbot (its schema is unknown here). The restored database is marked for
    reconciliation with the mail store."""
    database = sqlite_path(url)
    facts = backup_facts(backup)
    if facts.schema and facts.schema not in known_schemas:
        raise BackupRefused(
            f"{backup} has schema {facts.schema}, which this mailbot does not know "
            "(it was taken by a newer version): restore it with that version"
        )
    lock = DatabaseLock(database).hold_exclusive()
    try:
        current = database_data_until(database)
        if (
            not force
            and current is not None
            and (facts.data_until is None or current > facts.data_until)
        ):
            raise BackupRefused(
                f"the database in place holds data up to {current.isoformat()}, newer than "
                f"the backup ({facts.data_until.isoformat() if facts.data_until else 'empty'}): "
                "restoring would lose it; run `mailbot reconcile` instead, or give --force"
            )
        partial = database.with_name(f".{database.name}.restoring")
        partial.unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
            copy.execute(f"DROP TABLE {BACKUP_TABLE}")
            copy.execute(
                "INSERT INTO service_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (RECONCILE_PENDING, f"restored {now.astimezone(UTC).isoformat()} from {backup}"),
            )
            copy.commit()
        finally:
            copy.close()
            source.close()
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        _retire_write_ahead_log(database)
        os.replace(partial, database)
        log.warning("database %s restored from %s", database, backup)
        return facts
    finally:
        lock.release()


def _retire_write_ahead_log(database: Path) -> None:
    """Fold the old database's write-ahead log into it and remove it: a log left beside the
    restored file would be replayed into it."""
    if database.exists():
        connection = sqlite3.connect(database)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
