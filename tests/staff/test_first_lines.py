"""The first lines of staff replies, as a table (tests/staff/first_lines.toml), through the
pure parser: ordinary lines reach the citizen unchanged and apply nothing, commands meant but
left unmarked reach no citizen, unknown or malformed marked commands are refused.

The checking code is scripts/first_lines.py's, which prints the rates:
    .venv/bin/python scripts/first_lines.py
The same lines against the real servers: tests/staff/test_first_lines_server.py.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_first_lines() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "staff_first_lines", REPO / "scripts" / "first_lines.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


first_lines = _load_first_lines()
TABLE = first_lines.load_table()


@pytest.mark.parametrize("entry", TABLE.ordinary, ids=lambda entry: entry.line)
def test_an_ordinary_first_line_reaches_the_citizen_unchanged(entry: Any) -> None:
    assert first_lines.ordinary_problem(entry.line) is None


@pytest.mark.parametrize("entry", TABLE.meant, ids=lambda entry: entry.line)
def test_a_command_meant_reaches_no_citizen(entry: Any) -> None:
    assert first_lines.meant_problem(entry) is None


@pytest.mark.parametrize("entry", TABLE.refused, ids=lambda entry: entry.text)
def test_an_unknown_or_malformed_marked_command_is_refused(entry: Any) -> None:
    assert first_lines.refused_problem(entry) is None


def test_the_table_is_large_enough_and_covers_every_shape() -> None:
    shapes = Counter(entry.shape for entry in TABLE.ordinary)
    assert len(TABLE.ordinary) >= 100 and len(TABLE.meant) >= 50
    assert min(shapes[shape] for shape in ("greetings", "labels", "references", "sentences")) >= 10
    lines = {entry.line for entry in TABLE.ordinary}
    # Greetings with and without a name, ending with a comma or a colon; labels that are
    # command words, followed by a sentence.
    for required in (
        "Bonjour,",
        "Bonjour Jean-François :",
        "Madame Tremblay :",
        "Dear John:",
        "Note : nos bureaux seront fermés le 24 décembre.",
        "Attente : nous attendons la réponse du consulat.",
        "English: please find the answer below.",
        "Dossier MRI-2026-15",
    ):
        assert required in lines
    meant = {entry.line: entry for entry in TABLE.meant}
    assert meant["Note interne"].below  # with the note below it
    assert any(entry.marked and " " in entry.marked for entry in TABLE.meant)  # with arguments
    commands = {entry.command for entry in TABLE.meant}
    assert {"close", "note", "hold", "assign", "merge", "refer", "canned"} <= commands


def test_the_script_prints_both_rates_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert first_lines.main(["first_lines.py"]) == 0
    out = capsys.readouterr().out
    assert f"relayed unchanged, nothing applied: {len(TABLE.ordinary)}/{len(TABLE.ordinary)}" in out
    assert f"kept back (held, command named): {len(TABLE.meant)}/{len(TABLE.meant)}" in out


def _staff_guide() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Pour le personnel")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_staff_guide_and_the_help_show_every_command_marked() -> None:
    from mailbot.staff.unmarked_commands import unmarked_command

    # The lines staff copy: the guide's indented examples and the help every notice carries.
    guide = [
        line.strip()
        for line in _staff_guide().splitlines()
        if line.startswith("      ") and not line.startswith("       ")
    ]
    help_text = (REPO / "templates" / "command_help.txt").read_text(encoding="utf-8")
    helped = [
        line.split("  ")[1]
        for line in help_text.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert len(guide) > 20 and len(helped) > 15
    for line in [*guide, *helped]:
        column = re.split(r" {2,}", line)[0]  # a table's first column, or the whole line
        if unmarked_command(column) is not None:
            assert column.startswith("#"), line
    # The table of first lines in the guide says what the parser does.
    seen = 0
    for row in _staff_guide().splitlines():
        if not row.startswith("  | `"):
            continue
        lines, outcome = (cell.strip() for cell in row.strip().strip("|").split(" | "))
        examples = [part.strip("`") for part in lines.split("`, `")]
        held = outcome.startswith("retenue")
        assert held or outcome == "transmise telle quelle"
        for example in examples:
            example = example.split("` (")[0]
            problem = (
                first_lines.meant_problem(first_lines.Meant(example, command=""))
                if held
                else first_lines.ordinary_problem(example)
            )
            assert problem is None or problem.startswith("held as"), (example, problem)
            seen += 1
    assert seen > 20


# Whole replies, as an insider, a tired staff member or an attacker would write them.
WHOLE_REPLIES = [
    # (text, commands applied, error codes, lines held, body relayed or None)
    (
        "Bonjour,\n\nVoici le lien : https://www.mri.gouv.qc.ca/stages\n\n#MRIF #Québec\n"
        "/Sophie Lavoie/\n-- \nSophie Lavoie",
        [],
        [],
        [],
        "Bonjour,\n\nVoici le lien : https://www.mri.gouv.qc.ca/stages\n\n#MRIF #Québec\n"
        "/Sophie Lavoie/\n-- \nSophie Lavoie",
    ),
    ("/s/ Sophie Lavoie", [], [], [], "/s/ Sophie Lavoie"),
    ("#MRIF vous remercie de votre message.", [], ["unknown_command"], [], None),
    ("/Sophie Lavoie", [], ["unknown_command"], [], None),
    # A command below the text is refused, never applied nor sent as text.
    ("Bonjour,\n\nVotre dossier est complet.\n\n#fermer", [], ["misplaced_command"], [], None),
    # Commands at the top, then a first line that looks like a forgotten one.
    ("#assigner agent.info@mri.gouv.qc.ca\nfermer\n\nMerci.", ["assign"], [], ["fermer"], None),
    # An internal note sends nothing: nothing to hold.
    ("#note\nNote interne\nLe citoyen a rappelé.", ["note"], [], [], None),
    # "texte :" still takes the line after it as written.
    ("texte : Fermer\n\nle dossier n'est pas nécessaire.", [], [], [], None),
]


@pytest.mark.parametrize(("text", "applied", "codes", "held", "body"), WHOLE_REPLIES)
def test_whole_replies(
    text: str, applied: list[str], codes: list[str], held: list[str], body: str | None
) -> None:
    from mailbot.staff.parse_commands import parse_commands

    parsed = parse_commands(text)
    assert [command.name.value for command in parsed.commands] == applied
    assert [error.code for error in parsed.errors] == codes
    assert [item.line for item in parsed.unmarked] == held
    if body is not None:
        assert parsed.body == body
