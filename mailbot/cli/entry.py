"""`mailbot COMMAND`: parse, configure logging, give the command what it needs, run it, and
end with one documented exit code; the only place that exits the process."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from mailbot.cli.commands import COMMANDS
from mailbot.cli.exits import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    exit_code_of,
    first_line,
    internal_error,
    is_database_unreachable,
    missing_package,
)
from mailbot.cli.invocation import Invocation, Subcommand
from mailbot.cli.logs import configure_logging
from mailbot.cli.parser import build_parser
from mailbot.clock import Clock, FixedClock, SystemClock, parse_instant
from mailbot.errors import MailbotError
from mailbot.settings import config_path, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever happens, one line on standard error and a documented exit
    code, never a traceback (except with -v, for an internal error)."""
    verbose = False
    try:
        args = build_parser(COMMANDS.values()).parse_args(argv)
        verbose = args.verbose
        command = COMMANDS[args.command]
        configure_logging(verbose=verbose, quiet=command.quiet)
        code = _run(command, args)
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
        return missing_package(exc, verbose)
    except Exception as exc:
        if is_database_unreachable(exc):
            print(f"mailbot: database: {first_line(getattr(exc, 'orig', exc))}", file=sys.stderr)
            return EXIT_FAILURE
        return internal_error(exc, verbose)


def _run(command: Subcommand, args: argparse.Namespace) -> int:
    try:
        clock = _clock(args.now)
    except ValueError as exc:
        print(f"mailbot: --now: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return _dispatch(command, args, clock)
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return exit_code_of(exc)


def _clock(now: str | None) -> Clock:
    return FixedClock(parse_instant(now)) if now else SystemClock()


def _dispatch(command: Subcommand, args: argparse.Namespace, clock: Clock) -> int:
    """Give the command what its line of the table says it needs, then run it."""
    if command.needs == "nothing":
        return command.run(Invocation(args, clock))
    settings = load_settings(config_path(args.config, os.environ))
    configure_logging(verbose=args.verbose, quiet=command.quiet, chosen=settings.logging)
    if command.needs == "settings":
        return command.run(Invocation(args, clock, settings))
    from mailbot.cli.startup import start_app
    from mailbot.db.backup import running_lock

    # Every command that opens the database holds it (shared: they may run together, two
    # daemons included) for its whole life, so that a restore never replaces it under them.
    with running_lock(settings.database_url, command.holder(args)):
        if command.needs == "database":
            return command.run(Invocation(args, clock, settings))
        app = start_app(settings, clock, daemon=False)
        return command.run(Invocation(args, clock, settings, app))
