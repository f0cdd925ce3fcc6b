"""The daemon loop (APScheduler wakes the passes) and the server check.

The scheduler only wakes code up; what is due is decided by the database. SIGTERM and SIGINT
set a flag that the pass reads between messages, so the message in hand is finished and
stored before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FrameType

import aiosmtplib
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailbot.app import guard_clock, run_pass
from mailbot.context import App
from mailbot.errors import ConfigError, ImapError, SmtpError, TokenError
from mailbot.logins import Login, Logins, OAuthLogin
from mailbot.mailbox import ImapMailbox
from mailbot.sender import connect_smtp, smtp_client
from mailbot.settings import Settings

log = logging.getLogger(__name__)


def run_once(app: App) -> int:
    """One full pass; exit code 1 when a server could not be reached."""
    report = run_pass(app)
    log.info("pass done: %s", report.summary())
    return 0 if report.ok else 1


def run_daemon(app: App) -> int:
    """Poll every mailbox on the configured interval until SIGTERM or SIGINT."""
    guard_clock(app)
    stop = threading.Event()
    scheduler = BlockingScheduler(timezone=UTC)

    passing = threading.Lock()

    def one_pass() -> None:
        if stop.is_set():
            return
        with passing:  # the poll and the wake-ups below never run two passes at once
            try:
                report = run_pass(app, should_stop=stop.is_set)
            except Exception:  # keep the daemon alive; the next pass retries
                log.exception("pass failed")
                return
        log.info("pass done: %s", report.summary())

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the message in hand", signum)
        stop.set()
        # Not from inside the handler: it interrupts the main thread, which may be holding
        # one of the scheduler's locks at that instant.
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}, daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    scheduler.add_job(
        one_pass,
        IntervalTrigger(seconds=app.settings.daemon.poll_seconds, timezone=UTC),
        id="pass",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    # Reminders and digests are due by the database; these wake a pass at their office times
    # on weekdays, so a long poll interval never delays them.
    reminders = app.settings.reminders
    for name, at in (("reminders", reminders.reminder_time), ("digest", reminders.digest_time)):
        scheduler.add_job(
            one_pass,
            CronTrigger(
                day_of_week="mon-fri",
                hour=at.hour,
                minute=at.minute,
                second=at.second,
                timezone=app.settings.organisation.zone,
            ),
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    log.info(
        "mailbot daemon started: %d mailbox(es), every %.0f s",
        len(app.settings.mailboxes),
        app.settings.daemon.poll_seconds,
    )
    scheduler.start()
    log.info("mailbot daemon stopped")
    return 0


def check_servers(
    settings: Settings,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    now: datetime,
    logins: Logins | None = None,
) -> bool:
    """Validate secrets, obtain each OAuth2 token and log in to every server; one line per
    step, with the reason on failure (never a secret or a token)."""
    logins = logins or Logins(settings, environ)
    ok = True
    say(
        f"ok   configuration: {len(settings.mailboxes)} mailbox(es), "
        f"database {settings.database_url.split('://')[0]}"
    )
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
        ok = False
        say(f"FAIL {where}: {exc}")
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
