"""The argument parser, built from the command table; the global options and argument types."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import date
from typing import NoReturn

from mailbot import __version__
from mailbot.cli.exits import EXIT_CONFIG
from mailbot.cli.invocation import Subcommand

JSON_HELP = "print JSON instead of text"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line that says where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def global_options(parser: argparse.ArgumentParser, *, after: bool) -> None:
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


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (write YYYY-MM-DD)") from None


def year(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year (write e.g. 2026)") from None


def build_parser(commands: Iterable[Subcommand]) -> argparse.ArgumentParser:
    """`mailbot [global options] COMMAND [ACTION] [arguments]`, one sub-command per line of
    the table, in its order (the order `mailbot --help` lists them)."""
    parser = Parser(
        prog="mailbot",
        description="Email ticketing daemon that keeps a public body's service standards.",
        epilog="Exit codes: 0 ok, 1 a server or check failed or something named was not "
        "found, 2 usage or configuration error, 3 optional package missing, 4 internal "
        "error, 5 the database lacks mail the mail store holds (run mailbot reconcile), "
        "130 interrupted, 141 output closed.",
    )
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    global_options(parser, after=False)
    common = Parser(add_help=False)
    global_options(common, after=True)
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for command in commands:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.help, parents=[common]
        )
        command.arguments(sub)
        if not command.actions:
            continue
        actions = sub.add_subparsers(
            dest="action", required=True, metavar="ACTION", parser_class=Parser
        )
        for action in command.actions:
            action.arguments(actions.add_parser(action.name, help=action.help, parents=[common]))
    return parser
