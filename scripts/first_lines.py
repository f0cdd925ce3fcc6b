"""Run the table of staff first lines through the command parser and print both rates; exit 1
on any miss.

Usage: .venv/bin/python scripts/first_lines.py [TABLE]   (default: tests/staff/first_lines.toml)

Ordinary lines (greetings, labels followed by a sentence, reference lines, first sentences)
must reach the citizen unchanged and apply nothing; commands meant but left unmarked must
reach no citizen (held, the command meant named); unknown or malformed marked lines must be
refused. tests/staff/test_first_lines.py imports this module, so the test and the printed
rates never disagree.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from mailbot.staff.parse_commands import StaffMessage, parse_commands  # noqa: E402

DEFAULT_TABLE = REPO / "tests" / "staff" / "first_lines.toml"
# What follows an ordinary first line in its reply: the rest of an answer.
BELOW = "Votre demande a bien été reçue ; vous trouverez la réponse ci-dessous.\n\nSophie Lavoie"


@dataclass(frozen=True, slots=True)
class Ordinary:
    line: str
    shape: str  # greetings | labels | references | sentences | not_marks


@dataclass(frozen=True, slots=True)
class Meant:
    line: str
    command: str  # the CommandName value meant
    marked: str = ""  # the marked form mailbot must suggest, when given
    below: str = ""  # text under the line
    line_held: str = ""  # the line held, when it is not the first one

    @property
    def text(self) -> str:
        return f"{self.line}\n{self.below}" if self.below else self.line


@dataclass(frozen=True, slots=True)
class Refused:
    text: str
    code: str


@dataclass(frozen=True, slots=True)
class Table:
    ordinary: tuple[Ordinary, ...]
    meant: tuple[Meant, ...]
    refused: tuple[Refused, ...]


def load_table(path: Path = DEFAULT_TABLE) -> Table:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    return Table(
        ordinary=tuple(
            Ordinary(line, shape) for shape, lines in document["ordinary"].items() for line in lines
        ),
        meant=tuple(Meant(**entry) for entry in document["meant"]),
        refused=tuple(Refused(**entry) for entry in document["refused"]),
    )


def reply_of(line: str) -> str:
    """The reply an ordinary first line opens."""
    return f"{line}\n\n{BELOW}"


def ordinary_problem(line: str) -> str | None:
    """Why the reply `line` opens would not reach the citizen unchanged, or None."""
    text = reply_of(line)
    parsed = parse_commands(text)
    if parsed.commands:
        return f"applied {[command.line for command in parsed.commands]}"
    if parsed.errors:
        return f"refused ({', '.join(error.code for error in parsed.errors)})"
    if parsed.unmarked:
        return f"held as {parsed.unmarked[0].marked}"
    if parsed.body != text:
        return f"changed to {parsed.body[: len(line) + 20]!r}"
    return None


def kept_back(parsed: StaffMessage) -> bool:
    """Whether nothing of the reply can reach a citizen before its sender acts again."""
    return bool(parsed.unmarked or parsed.errors)


def meant_problem(entry: Meant) -> str | None:
    """Why a command meant would reach a citizen, or be held for the wrong command, or None."""
    parsed = parse_commands(entry.text)
    if not kept_back(parsed):
        return "sent to the citizen"
    if not parsed.unmarked:
        return f"refused ({', '.join(error.code for error in parsed.errors)}), not held"
    held = parsed.unmarked[0]
    if held.line != (entry.line_held or entry.line).strip():
        return f"held {held.line!r}"
    if held.command != entry.command:
        return f"held as {held.command}, meant {entry.command}"
    if entry.marked and held.marked != entry.marked:
        return f"suggested {held.marked!r}, expected {entry.marked!r}"
    return None


def refused_problem(entry: Refused) -> str | None:
    parsed = parse_commands(entry.text)
    codes = [error.code for error in parsed.errors]
    if entry.code not in codes:
        return f"not refused with {entry.code} (errors: {codes or 'none'})"
    return None


def main(argv: list[str]) -> int:
    table = load_table(Path(argv[1]) if len(argv) > 1 else DEFAULT_TABLE)
    misses = 0
    relayed = 0
    for ordinary in table.ordinary:
        problem = ordinary_problem(ordinary.line)
        if problem is None:
            relayed += 1
        else:
            misses += 1
            print(f"MISS ordinary ({ordinary.shape}) {ordinary.line!r}: {problem}")
    held = 0
    for meant in table.meant:
        problem = meant_problem(meant)
        if problem is None:
            held += 1
        else:
            misses += 1
            print(f"MISS meant {meant.line!r}: {problem}")
    refused = 0
    for entry in table.refused:
        problem = refused_problem(entry)
        if problem is None:
            refused += 1
        else:
            misses += 1
            print(f"MISS refused {entry.text!r}: {problem}")
    print(f"ordinary lines relayed unchanged, nothing applied: {relayed}/{len(table.ordinary)}")
    print(f"commands meant kept back (held, command named): {held}/{len(table.meant)}")
    print(f"unknown or malformed marked commands refused: {refused}/{len(table.refused)}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
