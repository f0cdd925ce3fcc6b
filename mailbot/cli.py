"""The commands; the only place that exits the process or configures logging."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from mailbot import __version__
from mailbot.app import App
from mailbot.clock import Clock, FixedClock, SystemClock, parse_instant
from mailbot.db.store import reading
from mailbot.errors import (
    ConfigError,
    MailbotError,
    MissingDependency,
    NotFound,
    ServerError,
    StoreAhead,
)
from mailbot.logformat import LIBRARY_LOGGERS, JsonFormatter, OwnRecordsOnly, TextFormatter
from mailbot.settings import LoggingSettings, Settings, config_path, load_settings

log = logging.getLogger("mailbot")
# Names the handler mailbot installs, so that loading the configuration can replace it.
LOG_HANDLER = "mailbot-stderr"

# The exit codes, as documented in the README ("Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1  # a server failed in a pass, a check failed, something named was not found
EXIT_CONFIG = 2  # usage or configuration error
EXIT_DEPENDENCY = 3  # an optional package is missing (the message names the extra)
EXIT_INTERNAL = 4  # a bug: one line here, the traceback with -v
EXIT_BEHIND = 5  # the database lacks mail the mail store holds: run `mailbot reconcile`
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_PIPE = 141  # the reader of the output went away (`mailbot tickets --json | head`)

# The optional packages and the extras that bring them.
EXTRAS = {"aiosmtpd": "sandbox", "psycopg": "postgres", "msal": "microsoft", "google": "google"}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line that says where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _global_options(parser: argparse.ArgumentParser, *, after: bool) -> None:
    """--config, --now and -v, before the command and (`after`) after it too: there they
    default to nothing, so a value given before the command stays."""
    default: dict[str, object] = {"default": argparse.SUPPRESS} if after else {}
    parser.add_argument(
        "--config",
        help="configuration file (default: $MAILBOT_CONFIG, else config/mailbot.toml)",
        **default,  # type: ignore[arg-type]
    )
    parser.add_argument(
        "--now",
        help="act as of this ISO-8601 instant (e.g. "
        "2025-11-03T10:00-05:00); for tests, audits and replays",
        **default,  # type: ignore[arg-type]
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging (and the traceback of an internal error)",
        **default,  # type: ignore[arg-type]
    )
    parser.add_argument(
        "--actor",
        help="who is acting, for the access trail (default: the operating-system user)",
        **default,  # type: ignore[arg-type]
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (write YYYY-MM-DD)") from None


def _year(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year (write e.g. 2026)") from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mailbot",
        description="Email ticketing daemon that keeps a public body's service standards.",
        epilog="Exit codes: 0 ok, 1 a server or check failed or something named was not "
        "found, 2 usage or configuration error, 3 optional package missing, 4 internal "
        "error, 5 the database lacks mail the mail store holds (run mailbot reconcile), "
        "130 interrupted, 141 output closed.",
    )
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    _global_options(parser, after=False)
    common = _Parser(add_help=False)
    _global_options(common, after=True)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[common])

    json_help = "print JSON instead of text"
    run = command("run", "the daemon: watch the mailboxes, send, run jobs")
    run.add_argument(
        "--once",
        action="store_true",
        help="one full pass, then exit (non-zero if a server was unreachable)",
    )

    tickets = command("tickets", "list tickets")
    tickets.add_argument(
        "--status", choices=["open", "on_hold", "answered", "closed"], help="only this status"
    )
    tickets.add_argument("--mailbox", help="only the tickets that arrived in this mailbox")
    tickets.add_argument("--json", action="store_true", help=json_help)

    show = command("show", "one ticket with its deadlines, messages, events")
    show.add_argument("ref", help="the ticket's reference, e.g. MRI-2025-00001")
    show.add_argument("--json", action="store_true", help=json_help)

    check = command(
        "check",
        "validate the configuration, log in to each server, and check that mail to each "
        "queue's notes address arrives",
    )
    check.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for each check message to arrive (default 60)",
    )

    answers = command("answers", "the canned answers staff can use (#réponse type : NOM)")
    answers.add_argument("action", choices=["list"], help="list: each name and its languages")
    answers.add_argument("--json", action="store_true", help=json_help)

    due = command("due", "receipt day and deadlines for a receipt instant")
    due.add_argument("received", help="ISO-8601 instant; without an offset it is office time")
    due.add_argument(
        "--standard", action="append", help="a commitment id (repeatable; default: all)"
    )
    due.add_argument("--json", action="store_true", help=json_help)

    holidays = command("holidays", "the public-service holidays of a year")
    holidays.add_argument("year", type=_year, nargs="+", help="one or more years, e.g. 2026")
    holidays.add_argument("--json", action="store_true", help=json_help)

    report = command(
        "report", "compliance per commitment and queue over a period (published figures)"
    )
    report.add_argument(
        "--since", required=True, type=_day, help="first day, YYYY-MM-DD (clock start)"
    )
    report.add_argument("--until", required=True, type=_day, help="last day, YYYY-MM-DD, included")
    report.add_argument("--queue", help="one queue (mailbox name)")
    report.add_argument(
        "--format",
        default="table",
        choices=["table", "json", "csv", "html"],
        help="output format (default: table)",
    )
    report.add_argument("--output", help="write to this file instead of standard output")
    report.add_argument("--details", action="store_true", help="list every case behind it")

    command("report-rules", "how the report counts, in full (the text shipped with mailbot)")

    quarantine = command("quarantine", "messages that could not be processed")
    quarantine_actions = quarantine.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=_Parser
    )
    quarantine_list = quarantine_actions.add_parser(
        "list", help="list quarantined messages", parents=[common]
    )
    quarantine_list.add_argument("--json", action="store_true", help=json_help)
    quarantine_retry = quarantine_actions.add_parser(
        "retry", help="process a quarantined message again (after a fix)", parents=[common]
    )
    quarantine_retry.add_argument("id", type=int, help="the message number from `list`")

    export = command("export", "everything held about one requester, as JSON (access requests)")
    export.add_argument("--requester", required=True, help="the requester's email address")
    export.add_argument("--output", help="write to this file instead of standard output")
    export.add_argument(
        "--messages",
        metavar="ZIP",
        help="also write a zip: the JSON index, every message as its original .eml, and "
        "the attachments",
    )

    retention = command(
        "retention", "destroy and anonymise what the retention schedule says is due"
    )
    retention_actions = retention.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=_Parser
    )
    retention_run = retention_actions.add_parser(
        "run", help="run it now (as of --now)", parents=[common]
    )
    retention_run.add_argument("--dry-run", action="store_true", help="list, change nothing")
    retention_run.add_argument("--json", action="store_true", help=json_help)
    retention_history = retention_actions.add_parser(
        "history", help="the runs so far", parents=[common]
    )
    retention_history.add_argument("--json", action="store_true", help=json_help)

    hold = command("legal-hold", "keep a ticket whole whatever the schedule (litigation, inquiry)")
    hold.add_argument("ref", help="the ticket reference (e.g. MRI-2025-00042)")
    hold_what = hold.add_mutually_exclusive_group(required=True)
    hold_what.add_argument("--reason", help="why it must be kept (a file number, not a name)")
    hold_what.add_argument("--release", action="store_true", help="lift the legal hold")

    erase = command("erase", "anonymise one requester's tickets now (a justified erasure request)")
    erase.add_argument("--requester", required=True, help="the requester's email address")
    erase.add_argument("--reason", required=True, help="the justification (a file number)")
    erase.add_argument("--json", action="store_true", help=json_help)

    held_acts = command(
        "held-acts", "staff acts held past a person's hourly limit ([staff] actions_per_hour)"
    )
    held_acts.add_argument(
        "--release",
        metavar="ADDRESS",
        help="release this person's held acts: the next pass applies them, checked again",
    )
    held_acts.add_argument("--json", action="store_true", help=json_help)

    audit = command("audit", "the access trail: who saw or changed what, when")
    audit.add_argument("ref", nargs="?", help="one ticket reference")
    audit.add_argument("--since", help="from this day (YYYY-MM-DD, office time) or instant")
    audit.add_argument("--json", action="store_true", help=json_help)

    backup = command("backup", "a consistent copy of the SQLite database, while mailbot runs")
    backup.add_argument("path", help="the file to write (must not exist)")
    restore = command("restore", "put a backup in place of the database (mailbot stopped)")
    restore.add_argument("path", help="a file written by `mailbot backup`")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore even over a database holding newer data than the backup",
    )
    restore.add_argument(
        "--other-instance",
        action="store_true",
        help="restore a backup of another instance (its queued mail is held, not sent)",
    )

    command(
        "reconcile",
        "bring back from the mail store (processed, quarantine, Sent) what the database lacks",
    )

    sandbox = command("sandbox", "a throwaway Dovecot + SMTP for trying mailbot")
    sandbox.add_argument(
        "action",
        choices=["demo", "serve", "send"],
        help="demo: two sample emails, one pass, the answers; serve: keep the servers "
        "running; send: put a message into the running sandbox (through its SMTP)",
    )
    sandbox.add_argument(
        "file", nargs="?", help="send: the message to send (FILE.eml; default: a short request)"
    )
    sandbox.add_argument(
        "--dir",
        help="where `serve` keeps the sandbox and `send` finds it (default: .sandbox here; "
        "for root in a folder other users cannot enter, a folder under /tmp)",
    )
    sandbox.add_argument(
        "--from",
        dest="sender",
        default="lea.roy@example.org",
        help="send: who writes (default: lea.roy@example.org)",
    )
    sandbox.add_argument(
        "--to",
        default="renseignements",
        help="send: a mailbox's name (renseignements, plaintes...) or an address",
    )
    sandbox.add_argument("--subject", help="send: the subject")
    sandbox.add_argument("--body", help="send: the text, when no FILE is given")
    return parser


def _configure_logging(args: argparse.Namespace, chosen: LoggingSettings | None = None) -> None:
    """One handler on standard error, in the configured format and level.

    Called once before the configuration is read (text, INFO) and again with its `[logging]`
    section. Commands that print results keep the log to warnings; `-v` gives DEBUG. When
    something else already configured logging (a program embedding mailbot, pytest), it is
    left as it is.
    """
    chosen = chosen or LoggingSettings()
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if handler.get_name() == LOG_HANDLER]
    # Migrations and the scheduler say what they do at INFO on every start; keep it for -v.
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    # Protocol traffic and SQL parameters carry mail: never logged, even with -v.
    for library in LIBRARY_LOGGERS:
        logging.getLogger(library).setLevel(logging.WARNING)
    if root.handlers and not ours:
        return
    level = logging.getLevelNamesMapping()[chosen.level]
    if args.command in ("sandbox", "due", "holidays"):
        level = max(level, logging.WARNING)
    if args.verbose:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(LOG_HANDLER)
    handler.setFormatter(JsonFormatter() if chosen.format == "json" else TextFormatter())
    handler.addFilter(OwnRecordsOnly())
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _clock(now: str | None) -> Clock:
    return FixedClock(parse_instant(now)) if now else SystemClock()


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(args.config, os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever happens, one line on standard error and a documented exit
    code, never a traceback (except with -v, for an internal error)."""
    verbose = False
    try:
        args = _parser().parse_args(argv)
        verbose = args.verbose
        _configure_logging(args)
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not after main has returned
        return code
    except KeyboardInterrupt:
        print("mailbot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): say so in one line, and keep Python from
        # complaining when it flushes standard output at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        with contextlib.suppress(OSError):
            print("mailbot: output closed by its reader; stopped", file=sys.stderr)
        return EXIT_PIPE
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        extra = EXTRAS.get(package)
        if extra is None:
            return _internal_error(exc, verbose)
        print(
            f"mailbot: the optional package {package} is not installed: "
            f'pip install "mailbot[{extra}]"',
            file=sys.stderr,
        )
        return EXIT_DEPENDENCY
    except Exception as exc:
        if _is_database_unreachable(exc):
            print(f"mailbot: database: {_first_line(getattr(exc, 'orig', exc))}", file=sys.stderr)
            return EXIT_FAILURE
        return _internal_error(exc, verbose)


def _first_line(exc: object) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _is_database_unreachable(exc: BaseException) -> bool:
    """The database server is down or refuses us (a server failure, not a bug)."""
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)


def _internal_error(exc: BaseException, verbose: bool) -> int:
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(
        f"mailbot: internal error: {type(exc).__name__}: {_first_line(exc)}"
        + ("" if verbose else " (run again with -v for the details)"),
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _run(args: argparse.Namespace) -> int:
    try:
        clock = _clock(args.now)
    except ValueError as exc:
        print(f"mailbot: --now: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return _dispatch(args, clock)
    except MissingDependency as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_DEPENDENCY
    except ConfigError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreAhead as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_BEHIND
    except (NotFound, ServerError, MailbotError) as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace, clock: Clock) -> int:
    command = args.command
    if command == "sandbox":
        from mailbot.sandbox.cli import SendRequest, run_sandbox_command

        if args.file is not None and args.action != "send":
            raise ConfigError(f"sandbox {args.action}: unexpected argument {args.file!r}")
        request = SendRequest(
            sender=args.sender,
            to=args.to,
            subject=args.subject,
            body=args.body,
            file=Path(args.file) if args.file else None,
        )
        directory = Path(args.dir) if args.dir else None
        return run_sandbox_command(args.action, directory, clock, args.config, request)
    if command == "report-rules":
        from mailbot.reporting.report import rules_text

        sys.stdout.write(rules_text())
        return EXIT_OK
    settings = _settings(args)
    _configure_logging(args, settings.logging)
    if command == "due":
        return _due(settings, args)
    if command == "holidays":
        return _holidays(settings, args)
    if command == "answers":
        return _answers(settings, args)
    if command == "check":
        from mailbot.ops.daemon import check_servers
        from mailbot.staff.answers import load_answers

        # A bad canned answer is a configuration error: named here, exit 2.
        found = load_answers(settings.answers.dir, settings.templates_dir)
        print(f"ok   answers: {len(found.names)} canned answer(s) in {found.folder or '(none)'}")
        ok = check_servers(settings, os.environ, print, clock.now(), wait_seconds=args.wait)
        return EXIT_OK if ok else EXIT_FAILURE
    if command == "restore":
        return _restore(settings, args, clock)
    from mailbot.db.backup import running_lock

    # Every command that opens the database holds it (shared: they may run together, two
    # daemons included) for its whole life, so that a restore never replaces it under them.
    with running_lock(settings.database_url, _command_name(args)):
        if command == "backup":
            return _backup(settings, args, clock)
        if command == "run" and not args.once:
            return _daemon(settings, args, clock)
        app = _start(settings, clock, daemon=command == "run")
        return _on_app(app, args)


class _StoppedWhileStarting(BaseException):
    """SIGTERM before the daemon's loop took over the signal: nothing is in hand yet."""


def _stop_while_starting(_signum: int, _frame: object) -> None:
    raise _StoppedWhileStarting


def _daemon(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    """`mailbot run`: a SIGTERM while it starts (migrations, the start-up check, waiting for
    another mailbot's turn) stops it at once with 0, as it does later (the service manager
    may stop it at any moment); the daemon's loop then takes the signal over."""
    import signal

    signal.signal(signal.SIGTERM, _stop_while_starting)
    try:
        app = _start(settings, clock, daemon=True)
        return _on_app(app, args)
    except _StoppedWhileStarting:
        log.info("signal %s while starting: stopped", signal.SIGTERM.value)
        return EXIT_OK


def _command_name(args: argparse.Namespace) -> str:
    """The command as typed, for the lock's holder file (`mailbot retention run`)."""
    action = getattr(args, "action", None)
    return (
        f"{args.command} {action}" if args.command in ("retention", "quarantine") else args.command
    )


# How long a command waits out a SQLite database another process holds locked as it starts.
STARTUP_PATIENCE_SECONDS = 120.0


def _start(settings: Settings, clock: Clock, *, daemon: bool) -> App:
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
                    _refuse_if_behind(app)
                return app
        except Exception as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            log.warning(
                "database busy at start-up (%s); trying again in %.0f s",
                _first_line(getattr(exc, "orig", exc)),
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _on_app(app: App, args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":
        from mailbot.ops.daemon import run_daemon, run_once

        return run_once(app) if args.once else run_daemon(app)
    if command == "reconcile":
        return _reconcile(app)
    if command == "tickets":
        return _tickets(app, args)
    if command == "show":
        return _show(app, args)
    if command == "report":
        return _report(app, args)
    if command == "quarantine":
        return _quarantine(app, args)
    if command == "export":
        return _export(app, args)
    if command == "retention":
        return _retention(app, args)
    if command == "legal-hold":
        return _legal_hold(app, args)
    if command == "erase":
        return _erase(app, args)
    if command == "audit":
        return _audit(app, args)
    if command == "held-acts":
        return _held_acts(app, args)
    raise AssertionError(command)


def _backup(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    from mailbot.db import backup

    path = Path(args.path)
    facts = backup.take_backup(settings.database_url, path, clock.now())
    until = facts.data_until.isoformat() if facts.data_until else "empty"
    print(
        f"backup written to {path}: schema {facts.schema}, data up to {until}, instance "
        f"{facts.instance or 'unknown'}, checksum sha256:{facts.checksum}"
    )
    return EXIT_OK


def _restore(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    from mailbot.app import build_app
    from mailbot.recovery.restore import restore

    report = restore(
        settings.database_url,
        Path(args.path),
        clock.now(),
        lambda engine: build_app(settings, clock, engine=engine),
        force=args.force,
        other_instance=args.other_instance,
    )
    for line in report.lines():
        print(line)
    return EXIT_OK


def _refuse_if_behind(app: App) -> None:
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


def _reconcile(app: App) -> int:
    from mailbot.app import guard_clock
    from mailbot.recovery.reconcile import reconcile

    guard_clock(app)
    report = reconcile(app)
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILURE


def _actor(args: argparse.Namespace) -> str:
    """Who is acting: `--actor`, else the operating-system user."""
    import getpass

    return str(args.actor or getpass.getuser())


def _trail(app: App, args: argparse.Namespace, action: str, ref: str | None, detail: str) -> None:
    """One entry in the access trail for a command that displayed personal information."""
    from mailbot.db import access

    with app.engine.begin() as connection:
        access.record(connection, app.clock.now(), _actor(args), action, ref, detail)


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _tickets(app: App, args: argparse.Namespace) -> int:
    from mailbot.db.report_rows import queue_has_tickets
    from mailbot.db.ticket_rows import ticket_records
    from mailbot.reporting.views import ticket_json

    with reading(app.engine) as connection:
        configured = [mailbox.name for mailbox in app.settings.mailboxes]
        # A mailbox no longer configured is known by its tickets; any other name is a typo.
        if (
            args.mailbox is not None
            and args.mailbox not in configured
            and not queue_has_tickets(connection, args.mailbox)
        ):
            raise NotFound(f"no mailbox {args.mailbox!r} (configured: {', '.join(configured)})")
        records = ticket_records(connection, status=args.status, mailbox=args.mailbox)
    rows = [ticket_json(record) for record in records]
    _trail(
        app,
        args,
        "tickets",
        None,
        f"{len(rows)} ticket(s) listed (status={args.status or 'any'}, "
        f"mailbox={args.mailbox or 'any'})",
    )
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no tickets")
        return EXIT_OK
    print(
        f"{'ref':<16} {'mailbox':<15} {'category':<12} {'status':<9} {'received':<10} "
        f"{'due':<10} requester"
    )
    for row in rows:
        print(
            f"{row['ref']:<16} {row['mailbox']:<15} {row['category']:<12} {row['status']:<9} "
            f"{row['receipt_date']:<10} {row['due_date'] or '-':<10} {row['requester']}"
        )
    return EXIT_OK


def _show(app: App, args: argparse.Namespace) -> int:
    from mailbot.db.ticket_rows import ticket_history, ticket_record
    from mailbot.reporting.views import office_minute, ticket_detail_json

    with reading(app.engine) as connection:
        record = ticket_record(connection, args.ref)
        if record is None:
            raise NotFound(f"no ticket {args.ref}")
        data = ticket_detail_json(record, ticket_history(connection, record["id"]))
    _trail(app, args, "show", data["ref"], "")
    if args.json:
        _print_json(data)
        return EXIT_OK
    zone = app.settings.organisation.zone
    instants = ("received_at", "acknowledged_at", "answered_at", "closed_at")
    for key in (
        "ref",
        "mailbox",
        "category",
        "status",
        "requester",
        "language",
        "subject",
        *instants,
        "receipt_date",
        "due_date",
        "assignee",
    ):
        value = office_minute(data[key], zone) if key in instants else data[key]
        print(f"{key + ':':<17}{value if value is not None else '-'}")
    if data["closed_reason"] is not None:
        into = f" into {data['merged_into']}" if data["merged_into"] else ""
        print(f"{'closed as:':<17}{data['closed_reason']}{into}")
    hold = data["legal_hold"]
    if hold is not None:
        print(f"{'legal hold:':<17}since {office_minute(hold['since'], zone)}: {hold['reason']}")
    if data["anonymised_at"] is not None:
        print(f"{'anonymised:':<17}{office_minute(data['anonymised_at'], zone)}")
    elif data["raw_destroyed_at"] is not None:
        print(f"{'raw destroyed:':<17}{office_minute(data['raw_destroyed_at'], zone)}")
    print(f"(times are office time, {zone.key})")
    _show_clocks(data, zone)
    print("messages:")
    for m in data["messages"]:
        print(
            f"  #{m['id']} {office_minute(m['received_at'], zone)} {m['kind']} ({m['state']}) "
            f"rules: {', '.join(m['rules']) or '-'}"
        )
    print("events:")
    for e in data["events"]:
        detail = f": {e['detail']}" if e["detail"] else ""
        print(f"  {office_minute(e['at'], zone)} {e['kind']} by {e['actor']}{detail}")
    return EXIT_OK


def _show_clocks(data: dict[str, Any], zone: ZoneInfo) -> None:
    """The deadlines with the day each clock counts from, then the waits: each `attente`, and
    each time the request was declared incomplete and completed (first receipt: receipt_date)."""
    from mailbot.reporting.views import office_minute

    print("deadlines:")
    for d in data["deadlines"]:
        met = office_minute(d["met_at"], zone) if d["met_at"] else "not yet"
        print(f"  {d['commitment']:<20} from {d['clock_start']}  due {d['due_date']}  met: {met}")
    if data["holds"]:
        print("waits:")
    for h in data["holds"]:
        what = "incomplete" if h["kind"] == "incomplete" else "on hold"
        ended = "completed" if h["kind"] == "incomplete" else "ended"
        until = (
            f"{ended} {office_minute(h['ended_at'], zone)} by {h['ended_by']}"
            if h["ended_at"]
            else f"not {ended} yet"
        )
        print(
            f"  {what} since {office_minute(h['started_at'], zone)} by {h['started_by']}: "
            f"{h['reason']} ({until})"
        )


def _report(app: App, args: argparse.Namespace) -> int:
    from mailbot.reporting.report import ReportRequest, build_report, render_report

    try:
        request = ReportRequest(
            since=args.since, until=args.until, queue=args.queue, details=args.details
        )
    except ValueError as exc:
        raise ConfigError(f"report: {exc}") from exc
    report = build_report(app.engine, app.settings, app.calendar, request, as_of=app.clock.now())
    text = render_report(report, args.format, app.settings.templates_dir)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8", newline="")
        print(f"report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _requester(command: str, given: str) -> str:
    """--requester as an address; anything else is a usage error (exit 2), never an empty
    answer that looks like "we hold nothing about this person"."""
    from mailbot.mail.addresses import normalise_address

    address = normalise_address(given)
    if address is None:
        raise ConfigError(f"{command}: --requester {given!r} is not an email address")
    return address


def _export(app: App, args: argparse.Namespace) -> int:
    from mailbot.privacy.export import export_requester

    args.requester = _requester("export", args.requester)
    data = export_requester(app.engine, args.requester)
    refs = [ticket["ref"] for ticket in data["tickets"]]
    _trail(app, args, "export", None, f"access request: {len(refs)} ticket(s) {' '.join(refs)}")
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.messages:
        from mailbot.privacy.export import write_messages_zip

        count = write_messages_zip(app.engine, args.requester, data, Path(args.messages))
        print(f"{count} message(s) written to {args.messages}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"{len(data['tickets'])} ticket(s) written to {args.output}", file=sys.stderr)
    else:
        print(text)
    return EXIT_OK


def _quarantine(app: App, args: argparse.Namespace) -> int:
    from mailbot.intake.quarantine import list_quarantine, retry_quarantined
    from mailbot.reporting.views import instant, office_minute

    if args.action == "list":
        rows = list_quarantine(app)
        _trail(app, args, "quarantine_list", None, f"{len(rows)} message(s) listed")
        if args.json:
            _print_json(
                [
                    {
                        "id": row.id,
                        "mailbox": row.mailbox,
                        "received_at": instant(row.received_at),
                        "size": row.size,
                        "message_id": row.message_id,
                        "reason": row.reason,
                    }
                    for row in rows
                ]
            )
        elif not rows:
            print("quarantine is empty")
        else:
            for row in rows:
                print(
                    f"#{row.id:<6} {row.mailbox:<15} "
                    f"{office_minute(row.received_at, app.settings.organisation.zone)} "
                    f"{row.size:>9} bytes  {row.reason}"
                )
        return EXIT_OK
    state = retry_quarantined(app, args.id)
    print(f"message #{args.id}: {state}")
    return EXIT_OK if state != "quarantined" else EXIT_FAILURE


def _retention(app: App, args: argparse.Namespace) -> int:
    from mailbot.app import guard_clock
    from mailbot.db.retention_runs import runs
    from mailbot.privacy.retention import run_retention
    from mailbot.reporting.views import instant, office_minute

    if args.action == "history":
        with reading(app.engine) as connection:
            found = runs(connection)
        rows = [
            {
                "run": row["id"],
                "started_at": instant(row["started_at"]),
                "finished_at": instant(row["finished_at"]),
                "trigger": row["trigger"],
                "actor": row["actor"],
                "dry_run": row["dry_run"],
                "raw_destroyed": row["raw_destroyed"],
                "anonymised": row["anonymised"],
                "unlinked": row["unlinked"],
                "refs": row["refs"].split(),
            }
            for row in found
        ]
        if args.json:
            _print_json(rows)
            return EXIT_OK
        zone = app.settings.organisation.zone
        for row in rows:
            print(
                f"#{row['run']:<5} {office_minute(row['started_at'], zone)} {row['trigger']:<7} "
                f"{'dry run ' if row['dry_run'] else ''}raw={row['raw_destroyed']} "
                f"anonymised={row['anonymised']} unlinked={row['unlinked']} "
                f"{'' if row['finished_at'] else '(interrupted) '}{' '.join(row['refs'])}"
            )
        return EXIT_OK
    if not args.dry_run:
        guard_clock(app)  # never destroy as of an invented instant on a live database
    report = run_retention(app, trigger="cli", actor=_actor(args), dry_run=args.dry_run)
    if args.json:
        _print_json(report.as_json())
    else:
        print(report.summary())
    return EXIT_OK


def _legal_hold(app: App, args: argparse.Namespace) -> int:
    from mailbot.app import guard_clock
    from mailbot.privacy.retention import set_legal_hold_by_ref

    if args.reason is not None and not args.reason.strip():
        raise ConfigError("legal-hold: --reason must not be empty")
    reason = None if args.release else args.reason.strip()
    guard_clock(app)
    set_legal_hold_by_ref(app, args.ref, reason, _actor(args))
    print(f"{args.ref}: legal hold {'released' if reason is None else 'placed'}")
    return EXIT_OK


def _erase(app: App, args: argparse.Namespace) -> int:
    from mailbot.app import guard_clock
    from mailbot.privacy.retention import erase_requester

    args.requester = _requester("erase", args.requester)
    guard_clock(app)
    report = erase_requester(app, args.requester, args.reason, _actor(args))
    # Over Graph, what erasure could do to the mail store's copies depends on the deployment.
    note = None
    if app.settings.graph is not None:
        from mailbot.transport.graph_check import erasure_note

        note = erasure_note(app.settings.graph)
    if args.json:
        found = report.as_json()
        if note is not None:
            found["mail_store_note"] = note
        _print_json(found)
    else:
        print(report.summary())
        if note is not None:
            print(f"mail store: {note}")
    return EXIT_OK if not report.held else EXIT_FAILURE


def _held_acts(app: App, args: argparse.Namespace) -> int:
    from mailbot.app import guard_clock
    from mailbot.reporting.views import instant
    from mailbot.staff.release import held_acts, release_by_command_line

    if args.release:
        guard_clock(app)
        count = release_by_command_line(app, args.release.strip().lower(), _actor(args))
        if not count:
            raise NotFound(f"no act of {args.release} is held")
        print(f"{count} act(s) of {args.release} released: the next pass applies them")
        return EXIT_OK
    found = held_acts(app)
    rows = [
        {"person": act.person, "ref": act.ref, "acts": act.acts, "at": instant(act.at)}
        for act in found
    ]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for row in rows:
        print(f"{row['at']}  {row['ref']:<16} {row['acts']:<12} {row['person']}")
    if not rows:
        print("no act held")
    return EXIT_OK


def _audit(app: App, args: argparse.Namespace) -> int:
    from mailbot.db.access import entries
    from mailbot.reporting.views import instant, office_minute

    since = None
    if args.since:
        try:
            since = _office_instant(args.since, app.settings.organisation.zone)
        except ValueError:
            raise ConfigError(
                f"audit: --since {args.since!r}: expected a day (YYYY-MM-DD, office time) or "
                "an instant (2025-11-03T10:00-05:00)"
            ) from None
    with reading(app.engine) as connection:
        found = entries(connection, ref=args.ref, since=since)
        if args.ref and not found:
            from mailbot.db.ticket_rows import ticket_record

            if ticket_record(connection, args.ref) is None:
                raise NotFound(f"no ticket {args.ref}")
    rows = [
        {
            "at": instant(row["at"]),
            "actor": row["actor"],
            "action": row["action"],
            "ref": row["ref"],
            "detail": row["detail"],
        }
        for row in found
    ]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no entries")
        return EXIT_OK
    zone = app.settings.organisation.zone
    print(f"{'when':<16} {'who':<24} {'action':<18} {'ticket':<16} detail")
    for row in rows:
        print(
            f"{office_minute(row['at'], zone)} {row['actor']:<24} {row['action']:<18} "
            f"{row['ref'] or '-':<16} {row['detail']}"
        )
    print(f"(times are office time, {zone.key})")
    return EXIT_OK


def _office_instant(text: str, zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _due(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.standards.business_calendar import (
        build_calendar,
        due_report,
        due_report_json,
        format_due_text,
    )

    calendar = build_calendar(settings.calendar, settings.organisation.timezone)
    try:
        received = _office_instant(args.received, settings.organisation.zone)
    except ValueError as exc:
        raise ConfigError(f"due: {args.received!r} is not an ISO-8601 instant ({exc})") from exc
    commitments = list(settings.commitments)
    if args.standard:
        known = {c.id for c in commitments}
        unknown = [s for s in args.standard if s not in known]
        if unknown:
            raise ConfigError(f"due: unknown commitment(s) {unknown}; known: {sorted(known)}")
        commitments = [c for c in commitments if c.id in args.standard]
    report = due_report(calendar, received, commitments)
    if args.json:
        _print_json(due_report_json(report))
    else:
        print(format_due_text(report))
    return EXIT_OK


def _answers(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.staff.answers import load_answers

    found = load_answers(settings.answers.dir, settings.templates_dir)
    rows = [{"name": name, "languages": list(found.languages(name))} for name in found.names]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        where = found.folder or "no [answers] dir configured"
        print(f"no canned answers ({where})")
    for row in rows:
        print(f"{row['name']:<32} {' '.join(row['languages'])}")
    return EXIT_OK


def _holidays(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.standards.business_calendar import build_calendar

    calendar = build_calendar(settings.calendar, settings.organisation.timezone)
    try:
        result = {year: calendar.holidays_in(year) for year in args.year}
    except ValueError as exc:
        raise ConfigError(f"holidays: {exc}") from exc
    if args.json:
        _print_json(
            {
                str(y): [{"date": d.isoformat(), "name": n} for d, n in days]
                for y, days in result.items()
            }
        )
        return EXIT_OK
    for days in result.values():
        for day, name in days:
            print(f"{day.isoformat()}  {day.strftime('%a')}  {name}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
