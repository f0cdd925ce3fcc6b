"""The daemon loop and the server check.

IMAP IDLE watchers (mailbot/ops/watch.py) ask for a pass of their mailbox the moment mail
lands;
APScheduler asks for a full pass every `poll_seconds` and at the reminder and digest times;
one loop runs the passes, one at a time. What is due is decided by the database. SIGTERM and
SIGINT set a flag that the pass reads between messages, so the message in hand is finished
and stored before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import FrameType

import aiosmtplib
import sqlalchemy.exc
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailbot.app import App, guard_clock
from mailbot.db.store import is_transient
from mailbot.errors import (
    ConfigError,
    DatabaseFailed,
    GraphError,
    ImapError,
    SmtpError,
    TokenError,
)
from mailbot.ops.observe import Monitor, ObservabilityServer
from mailbot.ops.passes import run_pass
from mailbot.ops.watch import IdleWatcher, PassRequests
from mailbot.settings import Settings
from mailbot.transport.imap import ImapMailbox
from mailbot.transport.logins import Login, Logins, OAuthLogin
from mailbot.transport.neterrors import describe
from mailbot.transport.notes_check import check_notes_addresses
from mailbot.transport.smtp import connect_smtp, smtp_client

log = logging.getLogger(__name__)


def run_once(app: App) -> int:
    """One full pass; exit code 1 when a server could not be reached."""
    start_over_graph(app)
    report = run_pass(app)
    log.info("pass done: %s", report.summary())
    return 0 if report.ok else 1


EXIT_INTERRUPTED = 130  # the shell's code for SIGINT (cli.EXIT_INTERRUPTED)


def start_over_graph(app: App) -> None:
    """What a start over Microsoft Graph does first: name the settings [graph] ignores, and
    delete the drafts of mailbot's own older than the outbox lease, which no worker is making
    any more (mailbot/transport/graph_drafts.py). A mailbox that cannot be reached is
    skipped: the pass reports it."""
    if app.settings.graph is None:
        return
    for setting in app.settings.ignored_under_graph:
        log.warning("ignored under [graph]: %s", setting)
    if app.graph is None:
        return  # tests that pass in their own mailboxes and sender
    from mailbot.transport import graph_drafts

    lease = timedelta(seconds=app.settings.daemon.outbox_lease_seconds)
    now = app.clock.now()
    for mailbox in app.settings.mailboxes:
        try:
            deleted = graph_drafts.sweep(app.graph, mailbox.address, now, lease)
        except (GraphError, TokenError) as exc:
            log.warning("drafts of %s not swept: %s", mailbox.name, exc)
            continue
        if deleted:
            log.warning("%d unsent draft(s) of mailbot's own deleted in %s", deleted, mailbox.name)


def run_daemon(app: App) -> int:
    """Watch every mailbox (IMAP IDLE where offered, a poll always) and run the passes they
    ask for, one at a time, until SIGTERM or SIGINT."""
    guard_clock(app)
    stop = threading.Event()
    requests = PassRequests()
    scheduler = BackgroundScheduler(timezone=UTC)

    stopped_by: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the message in hand", signum)
        stopped_by.append(signum)
        stop.set()
        requests.wake()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    start_over_graph(app)
    daemon = app.settings.daemon
    scheduler.add_job(
        requests.everything,
        IntervalTrigger(seconds=daemon.poll_seconds, timezone=UTC),
        id="poll",
        next_run_time=datetime.now(UTC),
        coalesce=True,
        misfire_grace_time=None,
    )
    # Reminders, digests and the daily retention run are due by the database (retention:
    # mailbot/privacy/retention.py `due_today`); these wake a pass at their office times
    # on weekdays, so a long poll interval never delays them.
    reminders = app.settings.reminders
    for name, at in (
        ("reminders", reminders.reminder_time),
        ("digest", reminders.digest_time),
        ("retention", app.settings.retention.run_time),
    ):
        scheduler.add_job(
            requests.everything,
            CronTrigger(
                day_of_week="mon-fri",
                hour=at.hour,
                minute=at.minute,
                second=at.second,
                timezone=app.settings.organisation.zone,
            ),
            id=name,
            coalesce=True,
            misfire_grace_time=None,
        )
    graph = app.settings.graph
    if graph is not None:
        # Over Microsoft Graph, the delta poll takes IDLE's role: every few seconds each
        # mailbox's pass asks Graph what changed (one request when nothing did).
        names = [mailbox.name for mailbox in app.settings.mailboxes]
        scheduler.add_job(
            requests.mailboxes,
            IntervalTrigger(seconds=graph.poll_seconds, timezone=UTC),
            args=[names],
            id="delta",
            coalesce=True,
            misfire_grace_time=None,
        )
    monitor = Monitor(app)
    watchers = (
        [
            IdleWatcher(app, mailbox, requests.mailbox, stop, monitor.observed)
            for mailbox in app.settings.mailboxes
        ]
        if daemon.idle and graph is None
        else []
    )
    server = _observability_server(app, monitor)
    scheduler.start()
    for watcher in watchers:
        watcher.start()
    log.info(
        "mailbot daemon started: %d mailbox(es), %s, poll every %.0f s",
        len(app.settings.mailboxes),
        f"Microsoft Graph delta every {graph.poll_seconds:g} s"
        if graph is not None
        else f"IDLE {'on' if daemon.idle else 'off'}",
        daemon.poll_seconds,
    )
    try:
        _pass_loop(app, requests, stop, monitor)
    finally:
        stop.set()
        scheduler.shutdown(wait=False)
        for watcher in watchers:
            watcher.join(5)
        if server is not None:
            server.stop()
        app.parse_ahead.close()
    log.info("mailbot daemon stopped")
    # SIGTERM (systemd, docker stop) is the ordinary stop: 0. Ctrl-C (SIGINT) is an
    # interruption, 130 like every command (README, "Exit codes"); both stop cleanly.
    return EXIT_INTERRUPTED if signal.SIGINT in stopped_by else 0


def _observability_server(app: App, monitor: Monitor) -> ObservabilityServer | None:
    """The health and metrics server, when `[observability] listen` is set; a port that
    cannot be had is a configuration error."""
    settings = app.settings.observability
    if settings.listen is None:
        return None
    host, port = settings.address
    try:
        server = ObservabilityServer(monitor, host, port)
    except OSError as exc:
        raise ConfigError(
            f"[observability] listen = {settings.listen!r}: {exc.strerror or exc}"
        ) from exc
    server.start()
    log.info("health and metrics on http://%s:%d/healthz and /metrics", host, server.port)
    return server


# A database error that waiting does not cure stops the daemon after this many passes in a row.
UNRECOVERABLE_PASSES = 3
# The longest wait before a pass the database held busy is tried again.
MAX_BUSY_WAIT_SECONDS = 30.0


def _pass_loop(app: App, requests: PassRequests, stop: threading.Event, monitor: Monitor) -> None:
    """Run the requested passes, one at a time: a request that arrives during a pass is
    taken by the next one, so nothing waits for the poll. A pass the database held busy
    (another process's lock, a PostgreSQL server gone for a moment) is tried again after a
    wait, never left for the next poll; a database error waiting does not cure, pass after
    pass, stops the daemon (DatabaseFailed, naming it); anything else is logged and the next
    pass tries again."""
    by_name = {mailbox.name: mailbox for mailbox in app.settings.mailboxes}
    busy_wait = 1.0
    failing: list[str] = []
    while not stop.is_set():
        taken = requests.take(timeout=1.0)
        if taken is None:
            continue
        everything, names = taken
        mailboxes = None if everything else [by_name[name] for name in sorted(names)]
        started = time.perf_counter()
        try:
            report = run_pass(app, should_stop=stop.is_set, mailboxes=mailboxes)
        except Exception as exc:  # keep the daemon alive; the next pass retries
            if is_transient(exc):
                log.warning(
                    "pass not done, the database is busy (%s): tried again in %.0f s",
                    _first_line(exc),
                    busy_wait,
                )
                _ask_again(requests, everything, names)
                stop.wait(busy_wait)
                busy_wait = min(busy_wait * 2, MAX_BUSY_WAIT_SECONDS)
                continue
            if isinstance(exc, sqlalchemy.exc.DatabaseError):
                failing.append(_first_line(exc))
                log.exception("pass failed: database error (%d in a row)", len(failing))
                if len(failing) >= UNRECOVERABLE_PASSES:
                    raise DatabaseFailed(
                        f"database: {failing[-1]} ({len(failing)} passes in a row); the daemon "
                        "stops: check the database (disk, file, server), then start it again"
                    ) from exc
                continue
            log.exception("pass failed")
            continue
        busy_wait = 1.0
        failing.clear()
        log.info("pass done: %s", report.summary())
        try:
            monitor.after_pass(report, time.perf_counter() - started, full=everything)
        except Exception:  # watching must never stop the work
            log.exception("health, metrics or alerts failed")


def _ask_again(requests: PassRequests, everything: bool, names: frozenset[str]) -> None:
    if everything:
        requests.everything()
    else:
        requests.mailboxes(names)


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def check_servers(
    settings: Settings,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    now: datetime,
    logins: Logins | None = None,
    *,
    wait_seconds: float = 60.0,
) -> bool:
    """Validate secrets, obtain each OAuth2 token and log in to every server, then check that
    mail to each queue's notes address arrives in its watched folder
    (mailbot/transport/notes_check.py); one line per step, with the reason on failure (never
    a secret or a token)."""
    if settings.graph is not None:
        from mailbot.transport.graph_check import check_graph

        return check_graph(settings, environ, say, now, wait_seconds=wait_seconds)
    logins = logins or Logins(settings, environ)
    ok = True
    say(
        f"ok   configuration: {len(settings.mailboxes)} mailbox(es), "
        f"database {settings.database_url.split('://')[0]}"
    )
    reachable = []
    for mailbox in settings.mailboxes:
        try:
            login = logins.imap(mailbox)
            if not _check_token(login, f"imap {mailbox.name}", now, say):
                ok = False
                continue
            with ImapMailbox(settings.imap, login, now) as imap:
                uidvalidity = imap.select(mailbox.folder)
            say(
                f"ok   imap {mailbox.name}: logged in as {mailbox.login}{_how(login)}, "
                f"{mailbox.folder} UIDVALIDITY {uidvalidity}"
            )
            reachable.append(mailbox)
        except (ConfigError, ImapError) as exc:
            ok = False
            say(f"FAIL imap {mailbox.name}: {exc}")
    where = f"smtp {settings.smtp.host}:{settings.smtp.port}"
    try:
        smtp_login = logins.smtp()
        if smtp_login is not None and not _check_token(smtp_login, "smtp", now, say):
            return False
        asyncio.run(_check_smtp(settings, smtp_login, now))
        user = f": logged in as {smtp_login.user}{_how(smtp_login)}" if smtp_login else ""
        say(f"ok   {where}{user}")
    except (TimeoutError, ConfigError, aiosmtplib.SMTPException, OSError, SmtpError) as exc:
        say(f"FAIL {where}: {describe(exc)}")
        return False
    if reachable and not check_notes_addresses(
        settings, logins, reachable, say, now, wait_seconds=wait_seconds
    ):
        ok = False
    return ok


def _how(login: Login) -> str:
    return " with an OAuth2 token" if isinstance(login, OAuthLogin) else ""


def _check_token(login: Login, what: str, now: datetime, say: Callable[[str], None]) -> bool:
    """The token step of an OAuth2 login: which authority gave it, for which client."""
    if not isinstance(login, OAuthLogin):
        return True
    try:
        token = login.tokens.token(now)
    except TokenError as exc:
        say(f"FAIL token for {what}: {exc}")
        return False
    seconds = int((token.expires_at - now).total_seconds())
    say(f"ok   token for {what}: from {login.tokens.description}, valid {seconds} s")
    return True


async def _check_smtp(settings: Settings, login: Login | None, now: datetime) -> None:
    smtp = smtp_client(settings.smtp)
    await connect_smtp(smtp, login, now)
    await smtp.noop()
    await smtp.quit()
