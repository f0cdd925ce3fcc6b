"""The database: engine, migrations at start-up, sessions, and dialect-specific helpers.

Every SQL statement mailbot runs lives in the `mailbot.db` package: this module, `models.py`
(the tables) and one module per room (tickets, inbound mail, outbox, clocks, service state,
jobs, report, export). The rest of mailbot calls their functions.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


# How long a statement waits for another process's lock before SQLite gives up.
BUSY_TIMEOUT_SECONDS = 30.0
# `PRAGMA journal_mode=WAL` on a database another process is creating at the same instant
# fails at once ("database is locked") without waiting: SQLite does not call the busy handler
# for it. It is tried again for this long.
WAL_SWITCH_SECONDS = 30.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The wait first: every statement after it, the journal mode's included, waits for a
    # lock held by another process instead of failing.
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
    # WAL lets readers (the CLI) work while the daemon writes; NORMAL is durable in WAL mode
    # across process crashes, which is the failure we must survive.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten content is zeroed, not left in free pages (retention).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see make_engine).
    dbapi_connection.isolation_level = None


def _switch_to_wal(cursor: Any) -> None:
    """WAL, waiting out another process that is creating the same database: two mailbots
    started together on a new file both switch it, and the second is refused at once."""
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def is_busy(exc: BaseException) -> bool:
    """A lock another process holds for a moment (SQLite's SQLITE_BUSY or SQLITE_LOCKED): the
    same statement succeeds when tried again."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    text = str(orig).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def is_transient(exc: BaseException) -> bool:
    """A database error that waiting may cure: a SQLite lock held by another process, or a
    PostgreSQL server that went away or refused the connection (it may come back)."""
    if is_busy(exc):
        return True
    orig = getattr(exc, "orig", None)
    module = type(orig).__module__ if orig is not None else ""
    return isinstance(exc, sa.exc.OperationalError) and module.startswith("psycopg")


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite the file's folder is created and safe pragmas set."""
    database = sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    on_sqlite = url.startswith("sqlite")
    engine = create_engine(
        url,
        pool_pre_ping=not on_sqlite,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS} if on_sqlite else {},
    )
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN so
        # two processes never both read a counter and then both write it. Readers (`reading`)
        # take no lock: a long report never holds the daemon up.
        event.listen(engine, "begin", _begin)
    return engine


def _begin(connection: sa.Connection) -> None:
    read_only = connection.get_execution_options().get("mailbot_read_only", False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, or one in memory)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url.removeprefix("sqlite:///"))
    return None


@contextmanager
def one_at_a_time(url: str) -> Iterator[None]:
    """Held while a mailbot opens a SQLite database and checks it (migrations, the start-up
    check): processes started together take turns instead of meeting on the same locks. An
    operating-system lock on a file beside the database, released when the process ends,
    even by kill -9. On PostgreSQL the migrations take turns by an advisory lock
    (`migrate`), and the rest needs none."""
    database = sqlite_file(url)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(database.with_name(database.name + ".start"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another mailbot is starting on %s: waiting for its turn", database)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def scrub_freed_pages(engine: Engine) -> None:
    """After destroying data on SQLite: copy the write-ahead log into the database file and
    empty it, so no old page image stays in the `-wal` file (secure_delete zeroes the freed
    content in the file itself). PostgreSQL keeps dead rows until VACUUM (autovacuum)."""
    if engine.dialect.name != "sqlite":
        return
    connection = engine.raw_connection()  # outside any transaction: a checkpoint needs it
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        connection.close()


@contextmanager
def reading(engine: Engine) -> Iterator[sa.Connection]:
    """A connection for reads only: on SQLite it takes no write lock (WAL readers see the
    last commit and never block the writer)."""
    with engine.connect() as connection:
        yield connection.execution_options(mailbot_read_only=True)


# Held while migrating on PostgreSQL: instances starting together migrate one after the other.
MIGRATION_LOCK = 0x6D61696C626F74  # "mailbot"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; run at every start-up). Two
    instances starting at once take turns: SQLite's write lock (BEGIN IMMEDIATE), or a
    PostgreSQL advisory lock held until the migration's transaction ends."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


_Item = TypeVar("_Item")


def chunks(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    """`items` in consecutive slices of `size` (the last may be shorter): a statement or a
    command names a bounded number of values."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignoring(connection: sa.Connection, table: sa.Table, key: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING, in the dialect of the connection."""
    return insert_ignoring_for(connection.dialect.name, table, key)


def insert_ignoring_for(dialect: str, table: sa.Table, key: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING, in `dialect` (postgresql, else sqlite)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])


def known_revisions() -> frozenset[str]:
    """Every schema revision this mailbot's migrations know."""
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(
        script.revision for script in ScriptDirectory.from_config(config).walk_revisions()
    )
