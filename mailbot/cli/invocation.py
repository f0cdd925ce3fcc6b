"""What a command is (its name, help, arguments, handler and needs) and what its handler is
given."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mailbot.app import App
    from mailbot.clock import Clock
    from mailbot.settings import Settings

# What a command needs before its handler runs, each level adding to the one before:
#   nothing   the arguments and the clock (the configuration may not even exist yet)
#   settings  the configuration, loaded and checked; logging in its configured format
#   database  and the database held, shared, for the command's whole life (never under a restore)
#   app       and the application built on it: the database migrated, the calendar, the effects
Needs = Literal["nothing", "settings", "database", "app"]


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a handler is given: the parsed arguments, the clock, and what its command needs."""

    args: argparse.Namespace
    clock: Clock
    loaded: Settings | None = None
    started: App | None = None

    @property
    def settings(self) -> Settings:
        if self.loaded is None:
            raise AssertionError("this command does not load the configuration")
        return self.loaded

    @property
    def app(self) -> App:
        if self.started is None:
            raise AssertionError("this command does not build the application")
        return self.started


Handler = Callable[[Invocation], int]
Arguments = Callable[[argparse.ArgumentParser], None]


def no_arguments(_parser: argparse.ArgumentParser) -> None:
    """A command (or action) that takes only the global options."""


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a command that has several (`mailbot quarantine list`)."""

    name: str
    help: str
    arguments: Arguments = no_arguments


@dataclass(frozen=True, slots=True)
class Subcommand:
    """One line of the command table: `mailbot NAME`, its help (also its description), its
    arguments or its actions, the handler that runs it and what it needs."""

    name: str
    help: str
    run: Handler
    needs: Needs
    arguments: Arguments = no_arguments
    actions: tuple[Action, ...] = ()
    quiet: bool = False  # it prints results: the log keeps to warnings

    def holder(self, args: argparse.Namespace) -> str:
        """The command as typed, for the database lock's holder file (`mailbot retention
        run`)."""
        return f"{self.name} {args.action}" if self.actions else self.name
