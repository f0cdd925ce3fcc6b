"""Fixtures: a real Dovecot and SMTP server per test, a real SQLite database, a fixed clock."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbot.app import App, build_app
from mailbot.clock import FixedClock, parse_instant
from mailbot.sandbox import Sandbox, make_sandbox_dir
from mailbot.sandbox_cli import sandbox_environ, sandbox_settings
from mailbot.settings import Settings, load_settings

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


@pytest.fixture
def settings(base_settings: Settings, sandbox: Sandbox, tmp_path: Path) -> Settings:
    return sandbox_settings(base_settings, sandbox, tmp_path / "data")


AppFactory = Callable[[str], App]


@pytest.fixture
def make_app(settings: Settings) -> Iterator[AppFactory]:
    """Build the application as of an instant, the way `mailbot --now T` does."""
    built: list[App] = []

    def factory(now: str, custom: Settings | None = None) -> App:
        chosen = custom or settings
        environ = sandbox_environ(chosen, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
        app = build_app(chosen, FixedClock(parse_instant(now)), environ)
        built.append(app)
        return app

    yield factory
    for app in built:
        app.engine.dispose()


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
    import os

    return sandbox_environ(settings, {**os.environ, "MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
