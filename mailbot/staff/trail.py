"""Refused staff acts in the access trail, on the caller's connection.

Every act refused by email (an unreadable or impossible command, a merge, a referral, a reply
by someone not on the ticket's queue, a reply naming several tickets) is an access-trail
entry `refused_<what>`, with the reason's code. Entries carry references, never addresses
or texts: an argument is kept only when it is a ticket reference or a queue's name, an
address only by its domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Connection

from mailbot.db import access
from mailbot.staff.command_table import REFERENCE

_QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class Problem(Protocol):
    """A refusal or an unreadable command line: what was refused, and why (its code)."""

    @property
    def code(self) -> str: ...

    @property
    def argument(self) -> str: ...

    @property
    def command(self) -> str: ...


def detail_of(problem: Problem) -> str:
    """`code` and, when it is safe to keep, the argument (a reference, a queue, a domain)."""
    argument = problem.argument.strip()
    if "@" in argument:
        argument = "@" + argument.rpartition("@")[2]
    elif not (REFERENCE.match(argument) or _QUEUE_NAME.match(argument)):
        argument = ""
    return f"{problem.code} ({argument})" if argument else problem.code


def record_refusals(
    connection: Connection, now: datetime, actor: str, ref: str | None, problems: Iterable[Problem]
) -> None:
    """One access-trail entry per refused line: `refused_<command>` (`refused_message` for
    a line that names no command, or a message refused as a whole)."""
    for problem in problems:
        record(connection, now, actor, ref, problem.command or "message", detail_of(problem))


def record(
    connection: Connection, now: datetime, actor: str, ref: str | None, what: str, detail: str
) -> None:
    """One refused act: `refused_<what>` with its reason (a code, never a text)."""
    access.record(connection, now, actor or "unknown", f"refused_{what}"[:32], ref, detail)
