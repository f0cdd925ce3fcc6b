"""Fixtures: a real Dovecot and SMTP server per test (marked `server`), or in-memory ones for
the fast suite; a real database (SQLite, or PostgreSQL in CI); a fixed clock."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from mailbot.app import App, build_app
from mailbot.clock import FixedClock, parse_instant
from mailbot.sandbox.cli import sandbox_environ, sandbox_settings
from mailbot.sandbox.servers import Sandbox, make_sandbox_dir
from mailbot.settings import DatabaseSettings, Settings, load_settings
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.graph_server import GraphServer

REPO = Path(__file__).resolve().parent.parent
TEST_SIGNING_KEY = "test-signing-key-0123456789abcdef"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """Dovecot + SMTP in a fresh directory on free ports. Never skipped: no Dovecot = error."""
    root = make_sandbox_dir("mailbot-test-")
    box = Sandbox(root=root)
    box.start()
    try:
        yield box
    finally:
        box.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def base_settings() -> Settings:
    return load_settings(REPO / "config" / "mailbot.toml", environ={})


@contextlib.contextmanager
def fresh_database(sqlite_path: Path) -> Iterator[str]:
    """SQLite at `sqlite_path`; or, with MAILBOT_TEST_POSTGRES_URL set (an admin URL, e.g.
    postgresql+psycopg://postgres@127.0.0.1:5432/postgres), a fresh PostgreSQL database,
    dropped afterwards."""
    admin_url = os.environ.get("MAILBOT_TEST_POSTGRES_URL")
    if not admin_url:
        yield f"sqlite:///{sqlite_path}"
        return
    with postgres_database(admin_url) as url:
        yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database made with the admin URL; dropped afterwards."""
    import sqlalchemy as sa

    name = f"mailbot_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """The test's database, one per test: see `fresh_database`."""
    with fresh_database(tmp_path / "data" / "mailbot.db") as url:
        yield url


@pytest.fixture
def settings(
    base_settings: Settings, sandbox: Sandbox, tmp_path: Path, database_url: str
) -> Settings:
    chosen = sandbox_settings(base_settings, sandbox, tmp_path / "data")
    return chosen.model_copy(update={"database": DatabaseSettings(url=database_url)})


class AppFactory(Protocol):
    def __call__(self, now: str, custom: Settings | None = None) -> App: ...


def write_sandbox_config(
    path: Path, sandbox: Sandbox, data_dir: Path, **sections: dict[str, object]
) -> Path:
    """The example configuration pointed at `sandbox`, as a TOML file a subprocess can read."""
    import tomllib

    import tomli_w

    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["imap"].update(port=sandbox.imap_port)
    document["smtp"].update(port=sandbox.smtp_port)
    document["data_dir"] = str(data_dir)
    document["templates_dir"] = str(REPO / "templates")
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(document))
    return path


def subprocess_environ(settings: Settings) -> dict[str, str]:
    """The environment of a mailbot subprocess: the sandbox's passwords, the test signing key,
    and the test's database when it is PostgreSQL (a SQLite database is in data_dir)."""
    environ = sandbox_environ(settings, {**os.environ, "MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
    environ.pop("MAILBOT_DATABASE_URL", None)
    if not settings.database_url.startswith("sqlite"):
        environ["MAILBOT_DATABASE_URL"] = settings.database_url
    return environ


# The real Dovecot and SMTP servers, and the local Microsoft Graph (an HTTP server in a thread).
SERVER_FIXTURES = frozenset({"sandbox", "graph"})
# The fixture that chooses the test's database (SQLite, or PostgreSQL with
# MAILBOT_TEST_POSTGRES_URL); every fixture that opens the database depends on it.
DATABASE_FIXTURES = frozenset({"database_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the real servers is a `server` test: marked so, whatever its file
    says (`pytest -m "not server"` is the fast suite). A test that uses the test database,
    directly or through another fixture, is a `db` test: scripts/test runs them all again on
    PostgreSQL (`pytest -m db`)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SERVER_FIXTURES & fixtures:
            item.add_marker(pytest.mark.server)
        # `make_app` in a server test asks for `settings` (and so the database) at run time,
        # which the fixture closure does not show.
        if DATABASE_FIXTURES & fixtures or {"make_app", "sandbox"} <= fixtures:
            item.add_marker(pytest.mark.db)


@pytest.fixture
def memory() -> MemoryMailboxes:
    """The IMAP server, in memory."""
    return MemoryMailboxes()


@pytest.fixture
def relay() -> RecordingSender:
    """The SMTP relay, in memory."""
    return RecordingSender()


@pytest.fixture
def fast_settings(base_settings: Settings, tmp_path: Path) -> Settings:
    return base_settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "database": DatabaseSettings(url=f"sqlite:///{tmp_path / 'data' / 'mailbot.db'}"),
        }
    )


@pytest.fixture
def make_app(request: pytest.FixtureRequest) -> Iterator[AppFactory]:
    """Build the application as of an instant, the way `mailbot --now T` does.

    The one app fixture. In a test that starts the real servers (it asks for `sandbox`, or
    for `settings`, which does), the app talks to them through IMAP and SMTP; in any other
    test it gets the in-memory mailboxes and relay (`memory`, `relay`, the same objects the
    test asks for) and a SQLite file in the test's folder. `custom` replaces the settings.
    """
    built: list[App] = []
    if "sandbox" in request.fixturenames:
        settings: Settings = request.getfixturevalue("settings")

        def build(chosen: Settings, clock: FixedClock) -> App:
            environ = sandbox_environ(chosen, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
            return build_app(chosen, clock, environ)

    else:
        settings = request.getfixturevalue("fast_settings")
        memory: MemoryMailboxes = request.getfixturevalue("memory")
        relay: RecordingSender = request.getfixturevalue("relay")

        def build(chosen: Settings, clock: FixedClock) -> App:
            environ = {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY}
            return build_app(chosen, clock, environ, open_mailbox=memory, sender=relay)

    def factory(now: str, custom: Settings | None = None) -> App:
        app = build(custom or settings, FixedClock(parse_instant(now)))
        built.append(app)
        return app

    yield factory
    for app in built:
        app.parse_ahead.close()
        app.engine.dispose()


# --- the local Microsoft Graph (tests/graph_server.py) ------------------------------------------

# The environment variable that holds the Graph application's secret in these tests.
GRAPH_SECRET_ENV = "MAILBOT_TEST_GRAPH_SECRET"


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    """A local Graph server on a free loopback port (a `server` fixture)."""
    with GraphServer() as server:
        yield server


@pytest.fixture
def graph_app(settings_graph: Settings) -> Iterator[AppFactory]:
    """Build the application over the local Graph as of an instant; each test module that
    uses it says how in its own `settings_graph` fixture."""
    built: list[App] = []

    def factory(now: str, custom: Settings | None = None) -> App:
        app = build_app(
            custom or settings_graph,
            FixedClock(parse_instant(now)),
            {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY, GRAPH_SECRET_ENV: "graph-secret"},
        )
        built.append(app)
        return app

    yield factory
    for app in built:
        app.parse_ahead.close()
        app.engine.dispose()
