"""The database: engine, migrations at start-up, sessions, and dialect-specific helpers.

Every SQL statement mailbot runs lives in the database modules: this one, `models.py` (the
tables) and the `mailbot.db` package (one module per room: tickets, inbound mail, outbox,
clocks, service state, jobs, report, export). The rest of mailbot calls their functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the CLI) work while the daemon writes; NORMAL is durable in WAL mode
    # across process crashes, which is the failure we must survive.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed, not left in free pages (retention).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see make_engine).
    dbapi_connection.isolation_level = None


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite the file's folder is created and safe pragmas set."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
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
