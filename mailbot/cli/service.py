"""The commands that run and keep the service: run, check, reconcile, backup, restore, and the
sandbox to try it on."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from mailbot.cli.exits import EXIT_FAILURE, EXIT_OK
from mailbot.cli.invocation import Invocation
from mailbot.cli.startup import start_app
from mailbot.cli.views import answers_check_line, backup_line
from mailbot.errors import ConfigError

# The command line logs as `mailbot`, the name its handler is installed on.
log = logging.getLogger("mailbot")


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="one full pass, then exit (non-zero if a server was unreachable)",
    )


def run(call: Invocation) -> int:
    """`mailbot run`: the daemon, or one pass (`--once`); either is checked against the mail
    store before it touches anything."""
    from mailbot.ops.daemon import run_once

    if not call.args.once:
        return _daemon(call)
    return run_once(start_app(call.settings, call.clock, daemon=True))


class _StoppedWhileStarting(BaseException):
    """SIGTERM before the daemon's loop took over the signal: nothing is in hand yet."""


def _stop_while_starting(_signum: int, _frame: object) -> None:
    raise _StoppedWhileStarting


def _daemon(call: Invocation) -> int:
    """`mailbot run`: a SIGTERM while it starts (migrations, the start-up check, waiting for
    another mailbot's turn) stops it at once with 0, as it does later (the service manager
    may stop it at any moment); the daemon's loop then takes the signal over."""
    import signal

    from mailbot.ops.daemon import run_daemon

    signal.signal(signal.SIGTERM, _stop_while_starting)
    try:
        return run_daemon(start_app(call.settings, call.clock, daemon=True))
    except _StoppedWhileStarting:
        log.info("signal %s while starting: stopped", signal.SIGTERM.value)
        return EXIT_OK


def check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for each check message to arrive (default 60)",
    )


def check(call: Invocation) -> int:
    """`mailbot check`: the canned answers, then each server (its lines printed as it goes)."""
    from mailbot.mail.canned import load_answers
    from mailbot.ops.daemon import check_servers

    settings = call.settings
    # A bad canned answer is a configuration error: named here, exit 2.
    found = load_answers(settings.answers.dir, settings.templates_dir)
    print(answers_check_line(len(found.names), found.folder))
    ok = check_servers(settings, os.environ, print, call.clock.now(), wait_seconds=call.args.wait)
    return EXIT_OK if ok else EXIT_FAILURE


def reconcile(call: Invocation) -> int:
    from mailbot.app import guard_clock
    from mailbot.recovery.reconcile import reconcile as rebuild

    guard_clock(call.app)
    report = rebuild(call.app)
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILURE


def backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="the file to write (must not exist)")


def backup(call: Invocation) -> int:
    from mailbot.db.backup import take_backup

    path = Path(call.args.path)
    facts = take_backup(call.settings.database_url, path, call.clock.now())
    print(backup_line(path, facts))
    return EXIT_OK


def restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a file written by `mailbot backup`")
    parser.add_argument(
        "--force",
        action="store_true",
        help="restore even over a database holding newer data than the backup",
    )
    parser.add_argument(
        "--other-instance",
        action="store_true",
        help="restore a backup of another instance (its queued mail is held, not sent)",
    )


def restore(call: Invocation) -> int:
    from mailbot.app import build_app
    from mailbot.recovery.restore import restore as put_back

    settings, clock = call.settings, call.clock
    report = put_back(
        settings.database_url,
        Path(call.args.path),
        clock.now(),
        lambda engine: build_app(settings, clock, engine=engine),
        force=call.args.force,
        other_instance=call.args.other_instance,
    )
    for line in report.lines():
        print(line)
    return EXIT_OK


def sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["demo", "serve", "send"],
        help="demo: two sample emails, one pass, the answers; serve: keep the servers "
        "running; send: put a message into the running sandbox (through its SMTP)",
    )
    parser.add_argument(
        "file",
        nargs="?",
        help="send: the message to send, right after `send` (FILE.eml; default: a short request)",
    )
    parser.add_argument(
        "--dir",
        help="where `serve` keeps the sandbox and `send` finds it (default: .sandbox here; "
        "for root in a folder other users cannot enter, a folder under /tmp)",
    )
    parser.add_argument(
        "--from",
        dest="sender",
        default="lea.roy@example.org",
        help="send: who writes (default: lea.roy@example.org)",
    )
    parser.add_argument(
        "--to",
        default="renseignements",
        help="send: a mailbox's name (renseignements, plaintes...) or an address",
    )
    parser.add_argument("--subject", help="send: the subject")
    parser.add_argument("--body", help="send: the text, when no FILE is given")


def sandbox(call: Invocation) -> int:
    """`mailbot sandbox`: run by `mailbot/sandbox/cli.py`, which reads the configuration
    itself (the example one when none is given) and prints what it does."""
    from mailbot.sandbox.cli import SendRequest, run_sandbox_command

    args = call.args
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
    return run_sandbox_command(args.action, directory, call.clock, args.config, request)
