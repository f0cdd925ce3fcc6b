"""`incomplet` / `complet` as staff write them: the command line parser, table-tested (pure)."""

from __future__ import annotations

import pytest

from mailbot.staff.command_table import Command, CommandError, CommandName
from mailbot.staff.parse_commands import parse_commands, read_command_line

INCOMPLETE, COMPLETE = CommandName.INCOMPLETE, CommandName.COMPLETE

READ = [
    ("#incomplet : il manque votre attestation", (INCOMPLETE, "il manque votre attestation")),
    ("/Incomplet: il manque votre attestation", (INCOMPLETE, "il manque votre attestation")),
    ("#incomplète : relevé de notes", (INCOMPLETE, "relevé de notes")),
    ("/incomplete: missing your transcript", (INCOMPLETE, "missing your transcript")),
    ("#INCOMPLETE : transcript", (INCOMPLETE, "transcript")),
    ("#complet", (COMPLETE, "")),
    ("#Complet.", (COMPLETE, "")),
    ("#complète", (COMPLETE, "")),
    ("/complete", (COMPLETE, "")),
    ("# Complete", (COMPLETE, "")),
]


@pytest.mark.parametrize(("line", "expected"), READ)
def test_reads(line: str, expected: tuple[CommandName, str]) -> None:
    read = read_command_line(line)
    assert isinstance(read, Command)
    assert (read.name, read.argument) == expected


ERRORS = [
    ("#incomplet", ("missing_argument", "incomplete")),
    ("#incomplete", ("missing_argument", "incomplete")),
    ("#incomplet :", ("missing_argument", "incomplete")),
    ("#complet maintenant", ("takes_no_argument", "complete")),
    ("/complet : merci", ("takes_no_argument", "complete")),
]


@pytest.mark.parametrize(("line", "expected"), ERRORS)
def test_errors(line: str, expected: tuple[str, str]) -> None:
    read = read_command_line(line)
    assert isinstance(read, CommandError)
    assert (read.code, read.command) == expected


PROSE = [
    "Incomplet depuis le début, votre dossier avance.",
    "Complete the attached form, please.",
    "Complet. Merci de votre patience",
    "Incomplete files are returned.",
    "incomplet : il manque votre attestation",  # unmarked: text, never a command
    "Complet",
]


@pytest.mark.parametrize("line", PROSE)
def test_prose_is_not_a_command(line: str) -> None:
    assert read_command_line(line) is None


def test_incomplete_then_body_and_note() -> None:
    message = parse_commands(
        "#incomplet : votre relevé de notes\r\n\r\nBonjour Madame,\r\nMerci.\r\n"
    )
    assert [(c.name, c.argument) for c in message.commands] == [
        (INCOMPLETE, "votre relevé de notes")
    ]
    assert message.body == "Bonjour Madame,\nMerci."
    message = parse_commands("#complet\n#note\n\nReçu par la poste.")
    assert [c.name for c in message.commands] == [COMPLETE, CommandName.NOTE]
