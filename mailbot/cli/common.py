"""What several handlers share: who is acting, the access trail, printing, and reading the
addresses and instants people type."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from mailbot.app import App
from mailbot.errors import ConfigError


def actor(args: argparse.Namespace) -> str:
    """Who is acting: `--actor`, else the operating-system user."""
    import getpass

    return str(args.actor or getpass.getuser())


def trail(app: App, args: argparse.Namespace, action: str, ref: str | None, detail: str) -> None:
    """One entry in the access trail for a command that displayed personal information."""
    from mailbot.db import access

    with app.engine.begin() as connection:
        access.record(connection, app.clock.now(), actor(args), action, ref, detail)


def print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def requester(command: str, given: str) -> str:
    """--requester as an address; anything else is a usage error (exit 2), never an empty
    answer that looks like "we hold nothing about this person"."""
    from mailbot.mail.addresses import normalise_address

    address = normalise_address(given)
    if address is None:
        raise ConfigError(f"{command}: --requester {given!r} is not an email address")
    return address


def office_instant(text: str, zone: ZoneInfo) -> datetime:
    """A day or an instant as typed; without an offset it is office time."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
