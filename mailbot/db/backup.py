"""Backup and restore of a SQLite database, and the lock every mailbot command holds on it.

`take_backup` copies the database with SQLite's online backup API (a consistent snapshot even
while the daemon writes: the copy is the database as of one committed transaction) and writes
into the copy a small table, `mailbot_backup`, saying when it was taken, from which schema
(the Alembic head), up to which instant the data goes, which instance it belongs to (the id
the database got when it was created) and a checksum of its content (SHA-256 over every row
of every other table). `restore_backup` puts such a copy in place of the database, only when
no other mailbot command holds the database (`DatabaseLock`, which names the holders), only
when the copy passes its checksum and SQLite's integrity check, and, unless forced, only when
the database in place holds nothing newer than the copy; the database it replaces is kept
beside it (`mailbot.db.before-restore-<instant>`). PostgreSQL is refused: its own tools
(pg_dump, continuous archiving) are the right ones.

A restored database is marked so that the first pass reconciles it with the mail store
(mailbot/recovery/reconcile.py) before anything else; mailbot/recovery/restore.py adds what
the mail store's ledger says on the copy before it is put in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import logging
import os
import secrets
import sqlite3
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

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


# The service_meta key of the instance id a database gets when it is created (migration 0009).
INSTANCE_KEY = "instance_id"


class BackupRefused(ConfigError):
    """A backup or restore that cannot be done as asked (the message says what to do)."""


class DatabaseInUse(MailbotError):
    """Another mailbot command holds the database (the message names it and its pid)."""


@dataclass(frozen=True, slots=True)
class BackupFacts:
    """What a backup copy says of itself; `checksum` is empty in a copy made before mailbot
    recorded one, `instance` in a copy of a database older than instance ids."""

    taken_at: datetime
    schema: str
    data_until: datetime | None
    source: str
    instance: str = ""
    checksum: str = ""


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


def holders_path(database: Path) -> Path:
    """The folder where each holder of the lock says who it is (one file each)."""
    return database.with_name(database.name + ".holders")


class DatabaseLock:
    """An advisory lock on a file beside the database: every mailbot command that opens the
    database holds it shared (several may work at once, two daemons included), a restore
    takes it exclusive and is refused while any other holds it. The operating system
    releases it when the process ends, even by kill -9.

    Each shared holder also writes who it is (the command, its pid and user) in a file of
    its own under `mailbot.db.holders/`, which it keeps locked while it holds the database:
    a refused restore names every holder still alive, and a file left by a process that died
    is no longer locked and is removed."""

    def __init__(self, database: Path, command: str = "") -> None:
        self._database = database
        self._path = lock_path(database)
        self._command = command
        self._fd: int | None = None
        self._holder: tuple[int, Path] | None = None

    def hold_shared(self) -> DatabaseLock:
        self._take(fcntl.LOCK_SH | fcntl.LOCK_NB)
        self._announce()
        return self

    def hold_exclusive(self) -> DatabaseLock:
        self._take(fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self

    def _take(self, mode: int) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(self._refusal(exclusive=bool(mode & fcntl.LOCK_EX))) from None
        self._fd = fd

    def _refusal(self, *, exclusive: bool) -> str:
        database = self._database
        if not exclusive:
            return (
                f"database {database}: a restore is replacing it; run the command again once "
                "it is done"
            )
        holders = living_holders(database)
        if not holders:
            return f"database {database}: another mailbot command holds it; try again"
        named = "; ".join(holders)
        daemon = any(holder.startswith("mailbot run ") for holder in holders)
        return (
            f"database {database}: {named} "
            f"{'is' if len(holders) == 1 else 'are'} running on it; "
            + (
                "stop the daemon first (systemctl stop mailbot)"
                if daemon
                else "wait until it is done, then restore"
            )
        )

    def _announce(self) -> None:
        folder = holders_path(self._database)
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        who = f"mailbot {self._command or 'command'} (pid {os.getpid()}, user {_user()})"
        os.write(fd, who.encode())
        self._holder = (fd, path)

    def release(self) -> None:
        if self._holder is not None:
            fd, path = self._holder
            path.unlink(missing_ok=True)
            os.close(fd)
            self._holder = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid())


def living_holders(database: Path) -> list[str]:
    """Who holds the database now, as each holder wrote it; the files of holders that died
    (their lock went with them) are removed."""
    folder = holders_path(database)
    if not folder.is_dir():
        return []
    found: list[str] = []
    for path in sorted(folder.iterdir()):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # released meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                found.append(os.read(fd, 500).decode("utf-8", "replace").strip())
            else:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return found


@contextlib.contextmanager
def running_lock(url: str, command: str = "run") -> Iterator[None]:
    """Held by every mailbot command for its life, on a SQLite database (nothing on
    PostgreSQL, which mailbot never restores)."""
    try:
        database = sqlite_path(url)
    except BackupRefused:
        yield
        return
    lock = DatabaseLock(database, command).hold_shared()
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


def _instance(connection: sqlite3.Connection) -> str:
    try:
        row = connection.execute(
            "SELECT value FROM service_meta WHERE key = ?", (INSTANCE_KEY,)
        ).fetchone()
    except sqlite3.OperationalError:
        return ""
    return str(row[0]) if row else ""


def content_checksum(connection: sqlite3.Connection) -> str:
    """SHA-256 over every row of every table but the backup's own facts, in table-name and
    rowid order, each value with its type: the same content gives the same sum whatever the
    file's page layout, and a changed byte anywhere in the data gives another."""
    digest = hashlib.sha256()
    tables = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != ? ORDER BY name",
            (BACKUP_TABLE,),
        )
    ]
    for table in tables:
        digest.update(b"T" + table.encode() + b"\0")
        for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
            for value in row:
                digest.update(_value_bytes(value))
            digest.update(b"\n")
    return digest.hexdigest()


def _value_bytes(value: object) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bytes):
        return b"B" + struct.pack(">Q", len(value)) + value
    if isinstance(value, int):
        return b"I" + str(value).encode() + b"\0"
    if isinstance(value, float):
        return b"F" + struct.pack(">d", value)
    text = str(value).encode("utf-8", "surrogatepass")
    return b"S" + struct.pack(">Q", len(text)) + text


def take_backup(url: str, target: Path, now: datetime) -> BackupFacts:
    """A consistent copy of the database at `target` (written beside it, then renamed into
    place), with its facts and its checksum recorded inside it."""
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
        copy.execute("PRAGMA journal_mode=DELETE")
        facts = BackupFacts(
            taken_at=now,
            schema=_schema(copy),
            data_until=_data_until(copy),
            source=str(database),
            instance=_instance(copy),
            checksum=content_checksum(copy),
        )
        copy.execute(f"CREATE TABLE {BACKUP_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        copy.executemany(
            f"INSERT INTO {BACKUP_TABLE} VALUES (?, ?)",
            [
                ("taken_at", facts.taken_at.astimezone(UTC).isoformat()),
                ("schema", facts.schema),
                ("data_until", facts.data_until.isoformat() if facts.data_until else ""),
                ("source", facts.source),
                ("instance", facts.instance),
                ("checksum", facts.checksum),
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
        return BackupFacts(
            taken_at=datetime.fromisoformat(rows["taken_at"]),
            schema=rows["schema"],
            data_until=datetime.fromisoformat(rows["data_until"]) if rows["data_until"] else None,
            source=rows["source"],
            instance=rows.get("instance", ""),
            checksum=rows.get("checksum", ""),
        )
    except (sqlite3.DatabaseError, KeyError, ValueError):
        raise BackupRefused(
            f"{path} is not a mailbot backup (made by `mailbot backup`), or it is damaged"
        ) from None
    finally:
        connection.close()


def verify_backup(path: Path, facts: BackupFacts) -> None:
    """Refused unless SQLite finds the file sound (`PRAGMA integrity_check`: every page,
    index and link) and its content gives the checksum it carries."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        problems = [str(row[0]) for row in connection.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise BackupRefused(
                f"{path} is damaged (SQLite's integrity check: {'; '.join(problems)[:300]}): "
                "nothing was changed; restore another backup"
            )
        if facts.checksum and content_checksum(connection) != facts.checksum:
            raise BackupRefused(
                f"{path} is damaged (its content no longer matches the checksum it carries): "
                "nothing was changed; restore another backup"
            )
    except sqlite3.DatabaseError as exc:
        raise BackupRefused(
            f"{path} is damaged ({exc}): nothing was changed; restore another backup"
        ) from None
    finally:
        connection.close()


def database_data_until(database: Path) -> datetime | None:
    """How far the data of the database in place goes (None: no database, an empty one, or
    one too damaged to read: a restore is what it needs)."""
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return _data_until(connection)
    except sqlite3.DatabaseError as exc:
        log.warning("the database in place cannot be read (%s): it is kept as it is", exc)
        return None
    finally:
        connection.close()


def database_instance(database: Path) -> str:
    """The instance id of the database in place ("" when there is none, or it has none)."""
    if not database.exists():
        return ""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return _instance(connection)
    except sqlite3.DatabaseError:
        return ""  # damaged: there is nothing to compare with
    finally:
        connection.close()


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Restored(Generic[T]):
    """A restore done: what the backup said, where the database it replaced was kept (None:
    there was none), and what the preparation of the copy found."""

    facts: BackupFacts
    kept: Path | None
    prepared: T


def restore_backup(
    url: str,
    backup: Path,
    now: datetime,
    *,
    force: bool,
    known_schemas: frozenset[str],
    prepare: Callable[[Path, BackupFacts], T],
) -> Restored[T]:
    """Put the copy at `backup` in place of the database: refused while another mailbot
    command holds it (named), when the copy is damaged (checksum, integrity check), when the
    database in place holds newer data (unless `force`), or when the copy comes from a newer
    mailbot (its schema is unknown here). The copy is first written beside the database and
    handed to `prepare` with the backup's facts (which may refuse by raising: then nothing
    has changed); it is then
    compacted (VACUUM: no freed page keeps what `prepare` erased), the database in place is
    kept beside it as `<name>.before-restore-<instant>`, and the copy takes its place, marked
    for reconciliation with the mail store."""
    database = sqlite_path(url)
    facts = backup_facts(backup)
    if facts.schema and facts.schema not in known_schemas:
        raise BackupRefused(
            f"{backup} has schema {facts.schema}, which this mailbot does not know "
            "(it was taken by a newer version): restore it with that version"
        )
    lock = DatabaseLock(database, "restore").hold_exclusive()
    partial = database.with_name(f".{database.name}.restoring")
    try:
        verify_backup(backup, facts)
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
        _remove_with_logs(partial)
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
        prepared = prepare(partial, facts)
        _compact(partial)
        kept = _keep_replaced(database, now)
        os.replace(partial, database)
        log.warning("database %s restored from %s", database, backup)
        return Restored(facts, kept, prepared)
    finally:
        _remove_with_logs(partial)
        lock.release()


def _compact(path: Path) -> None:
    """Rewrite the copy whole in rollback-journal mode: no free page, no write-ahead log."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("VACUUM")
    finally:
        connection.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def replaced_name(database: Path, now: datetime) -> Path:
    return database.with_name(
        f"{database.name}.before-restore-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    )


def _keep_replaced(database: Path, now: datetime) -> Path | None:
    """The database in place, its write-ahead log folded in, renamed beside it."""
    if not database.exists():
        for suffix in ("-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        return None
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError:
        pass  # a damaged database is kept as it is
    finally:
        connection.close()
    kept = replaced_name(database, now)
    n = 1
    while kept.exists():
        kept = kept.with_name(f"{replaced_name(database, now).name}-{n}")
        n += 1
    os.replace(database, kept)
    for suffix in ("-wal", "-shm"):
        log_file = database.with_name(database.name + suffix)
        if suffix == "-wal" and log_file.exists() and log_file.stat().st_size:
            os.replace(log_file, kept.with_name(kept.name + suffix))
        else:
            log_file.unlink(missing_ok=True)
    return kept


def _remove_with_logs(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
