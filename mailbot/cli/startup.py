"""The application built for a command: its database migrated, one process at a time on
SQLite, a busy database waited out; for the daemon, checked against the mail store first."""

from __future__ import annotations

import logging

from mailbot.app import App
from mailbot.cli.exits import first_line
from mailbot.clock import Clock
from mailbot.errors import StoreAhead
from mailbot.settings import Settings

# The command line logs as `mailbot`, the name its handler is installed on.
log = logging.getLogger("mailbot")

# How long a command waits out a SQLite database another process holds locked as it starts.
STARTUP_PATIENCE_SECONDS = 120.0


def start_app(settings: Settings, clock: Clock, *, daemon: bool) -> App:
    """The application, its database migrated; for the daemon, checked against the mail
    store first. One process at a time on SQLite (mailbots started together take turns), and
    a SQLite database another process holds locked for a moment is waited out; any other
    database error (a PostgreSQL server that does not answer, a damaged file) ends the
    command at once, naming it."""
    import time

    from mailbot.app import build_app
    from mailbot.db.store import is_busy, one_at_a_time

    deadline = time.monotonic() + STARTUP_PATIENCE_SECONDS
    delay = 0.5
    while True:
        try:
            with one_at_a_time(settings.database_url):
                app = build_app(settings, clock)
                if daemon:
                    from mailbot.app import guard_clock

                    guard_clock(app)
                    refuse_if_behind(app)
                return app
        except Exception as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            log.warning(
                "database busy at start-up (%s); trying again in %.0f s",
                first_line(getattr(exc, "orig", exc)),
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def refuse_if_behind(app: App) -> None:
    """A daemon on an empty or older database whose mail store holds mail it marked stops
    here (a restored database reconciles at its first pass instead)."""
    from mailbot.app import reconcile_pending
    from mailbot.recovery.reconcile import store_ahead

    if reconcile_pending(app):
        return
    ahead = store_ahead(app)
    if ahead:
        raise StoreAhead(
            f"the mail store holds mail this database does not know ({', '.join(ahead)}): "
            "it is empty, older than the mail, or not the right one. Run `mailbot reconcile` "
            "to bring it back from the mail store (or point MAILBOT_DATABASE_URL at the right "
            "database)"
        )
