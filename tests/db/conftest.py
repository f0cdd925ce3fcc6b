"""Fixtures of the database contract tests: one migrated database for the directory (SQLite,
or PostgreSQL with MAILBOT_TEST_POSTGRES_URL), and each test in a transaction of its own,
rolled back at its end, so every test starts from the empty schema. Tests whose transactions
commit (two connections at once) get a second database, emptied after each of them.

`database_url` is the one of tests/conftest.py (`fresh_database`), made once for the whole
directory rather than once per test: on PostgreSQL a fresh database, its migration and its
drop cost 0.2 to 0.9 s, more than a test here takes. The name is kept, so tests/conftest.py
marks every test that uses these fixtures `db`, and `scripts/test` runs them again on
PostgreSQL (`-m db`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import mailbot.db.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from mailbot.db.store import make_engine, migrate
from tests.conftest import fresh_database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The directory's database: see tests/conftest.py `fresh_database`."""
    with fresh_database(tmp_path_factory.mktemp("db") / "mailbot.db") as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The directory's database, migrated once."""
    built = make_engine(database_url)
    migrate(built)
    yield built
    built.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """The test's transaction, rolled back at its end: nothing a test writes is seen by the
    next. (Sequences are not transactional on PostgreSQL: tests never expect a literal id.)"""
    with engine.connect() as opened:
        transaction = opened.begin()
        try:
            yield opened
        finally:
            transaction.rollback()


@pytest.fixture(scope="session")
def second_engine(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A second database of the same engine as `database_url` (asking for it also marks the
    tests that use this one `db`), migrated once, for the tests whose transactions commit."""
    with fresh_database(tmp_path_factory.mktemp("committed") / "mailbot.db") as url:
        built = make_engine(url)
        migrate(built)
        yield built
        built.dispose()


@pytest.fixture
def committing_engine(second_engine: Engine) -> Iterator[Engine]:
    """A database whose transactions commit (two connections at once, reads of their own),
    emptied of every row after the test."""
    yield second_engine
    with second_engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())
