"""Fixtures of the database contract tests: one migrated database for the directory (SQLite,
or PostgreSQL with MAILBOT_TEST_POSTGRES_URL), and each test in a transaction of its own,
rolled back at its end, so every test starts from the empty schema.

`database_url` is the one of tests/conftest.py (`fresh_database`), made once for the whole
directory rather than once per test: a fresh PostgreSQL database and its migration cost about
0.2 s, more than a test here takes. The name is kept, so tests/conftest.py marks every test
that uses these fixtures `db` and `scripts/test` runs them again on PostgreSQL (`-m db`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection, Engine

from mailbot.store import make_engine, migrate
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


@pytest.fixture
def own_engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A database of the test's own, migrated, for the tests whose transactions commit (two
    connections at once): the same engine as `database_url`, made fresh."""
    with fresh_database(tmp_path / "own.db") as url:
        built = make_engine(url)
        migrate(built)
        try:
            yield built
        finally:
            built.dispose()
