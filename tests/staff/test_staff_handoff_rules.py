"""Merge, canned answers, referral and unmarked commands as specifications (pure tables).

The same features against the real servers are in tests/staff/test_staff_handoff.py.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import jinja2
import pytest
import tomli_w

from mailbot.cli import main
from mailbot.db.ticket_rows import TicketRow
from mailbot.errors import ConfigError
from mailbot.mail.canned import load_answers, may_write_english, ticket_values
from mailbot.settings import LanguageSettings, Settings
from mailbot.staff.apply_commands import Refusal, combination_refusal
from mailbot.staff.command_table import Command, CommandError, CommandName
from mailbot.staff.handoff_rules import is_own_address, merge_problem, referral_problem
from mailbot.staff.parse_commands import parse_commands, read_command_line
from mailbot.staff.unmarked_commands import UnmarkedCommand, unmarked_command
from mailbot.standards.authority import may_act

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
MERGE, CANNED, REFER = CommandName.MERGE, CommandName.CANNED, CommandName.REFER

# --- the command lines ----------------------------------------------------------------------

COMMAND_LINES = [
    ("#fusionner MRI-2025-00001", Command(MERGE, "MRI-2025-00001", "#fusionner MRI-2025-00001")),
    (
        "#Fusionner : mri-2025-00001.",
        Command(MERGE, "MRI-2025-00001", "#Fusionner : mri-2025-00001."),
    ),
    ("/merge MRI-2025-00042", Command(MERGE, "MRI-2025-00042", "/merge MRI-2025-00042")),
    ("#réponse type : passeport", Command(CANNED, "passeport", "#réponse type : passeport")),
    ("#Réponse type passeport", Command(CANNED, "passeport", "#Réponse type passeport")),
    ("#canned: Visa-Etudiant", Command(CANNED, "visa-etudiant", "#canned: Visa-Etudiant")),
    (
        "#référer : accueil@autre.example.org",
        Command(REFER, "accueil@autre.example.org", "#référer : accueil@autre.example.org"),
    ),
    (
        "#referer à Accueil@Autre.example.org",
        Command(REFER, "accueil@autre.example.org", "#referer à Accueil@Autre.example.org"),
    ),
    ("/refer: x@y.example", Command(REFER, "x@y.example", "/refer: x@y.example")),
    ("#fusionner", CommandError("#fusionner", "missing_argument", "", "merge")),
    (
        "#fusionner : le dossier de mardi",
        CommandError(
            "#fusionner : le dossier de mardi", "bad_reference", "le dossier de mardi", "merge"
        ),
    ),
    (
        "#fusionner le dossier",
        CommandError("#fusionner le dossier", "bad_reference", "le dossier", "merge"),
    ),
    (
        "#merge: 2025-00001",
        CommandError("#merge: 2025-00001", "bad_reference", "2025-00001", "merge"),
    ),
    (
        "#réponse type : deux mots",
        CommandError("#réponse type : deux mots", "bad_name", "deux mots", "canned"),
    ),
    ("#canned:", CommandError("#canned:", "missing_argument", "", "canned")),
    ("#référer : accueil", CommandError("#référer : accueil", "bad_address", "accueil", "refer")),
    # Without the mark, never a command (the safety net looks at the first line of the text).
    ("fusionner MRI-2025-00001", None),
    ("réponse type : passeport", None),
    ("référer : accueil@autre.example.org", None),
    ("Fusionner les deux demandes serait utile.", None),
    ("Référer à un collègue prend du temps.", None),
    ("Réponse type de notre ministère.", None),
]


@pytest.mark.parametrize(("line", "expected"), COMMAND_LINES)
def test_the_new_command_lines(line: str, expected: Command | CommandError | None) -> None:
    assert read_command_line(line) == expected


# --- no command to a citizen by mistake (the whole table: tests/staff/test_first_lines.py) ------

REPLIES = [
    # (reply text, error codes, lines held as unmarked commands, body)
    ("fermé\n\nMerci, votre dossier est complet.", [], ["fermé"], None),
    ("#fermer\nattente\nvotre formulaire", [], ["attente"], None),
    ("Objet : votre demande\n\nLa bourse est offerte.", [], [], None),
    ("texte : Objet : votre demande\n\nSuite.", [], [], "Objet : votre demande\n\nSuite."),
    ("TEXTE :\nfermé\nmerci", [], [], "fermé\nmerci"),
    ("\n\ntext:\nObjet : x", [], [], "Objet : x"),
    ("#note\nfermer\nrappel interne", [], [], "fermer\nrappel interne"),
    ("Bonjour Madame,\n\nfermer", [], [], None),
    ("Bonjour Madame,\n\n#fermer", ["misplaced_command"], [], None),
    ("Bonjour Madame,\n\n#MRIF vous remercie.", [], [], None),
    ("Bonjour,\nréponse type : visa\nSophie", [], ["réponse type : visa"], None),
]


@pytest.mark.parametrize(("text", "codes", "held", "body"), REPLIES)
def test_the_text_is_checked(
    text: str, codes: list[str], held: list[str], body: str | None
) -> None:
    parsed = parse_commands(text)
    assert [error.code for error in parsed.errors] == codes
    assert [item.line for item in parsed.unmarked] == held
    if body is not None:
        assert parsed.body == body


def test_the_marked_form_meant_is_suggested() -> None:
    assert unmarked_command("fusioner MRI-2025-00001") == UnmarkedCommand(
        "fusioner MRI-2025-00001", "merge", "#fusionner MRI-2025-00001"
    )


def test_canned_answers_keep_their_place_in_the_text() -> None:
    parsed = parse_commands(
        "#réponse type : accueil\n\nBonjour,\n\n#réponse type : bourses\n\nSophie Lavoie"
    )
    accueil = Command(CANNED, "accueil", "#réponse type : accueil")
    bourses = Command(CANNED, "bourses", "#réponse type : bourses")
    assert parsed.commands == (accueil, bourses)
    assert parsed.pieces == (accueil, "Bonjour,", bourses, "Sophie Lavoie")
    assert parsed.body == "Bonjour,\n\nSophie Lavoie"
    assert parsed.unmarked == ()


def test_in_the_text_only_a_marked_line_is_a_canned_answer() -> None:
    parsed = parse_commands("Bonjour,\nCanned goods are not accepted.\n/canned visa")
    assert [c.argument for c in parsed.commands] == ["visa"]
    assert parsed.pieces[0] == "Bonjour,\nCanned goods are not accepted."


def test_a_malformed_canned_line_in_the_text_is_an_error() -> None:
    parsed = parse_commands("Bonjour,\n#réponse type : deux mots\nSophie")
    assert [e.code for e in parsed.errors] == ["bad_name"]


def test_a_reply_without_canned_answers_has_no_pieces() -> None:
    assert parse_commands("#fermer\n\nMerci.").pieces == ()


# --- combinations, queues, the ministry's own addresses ---------------------------------------


def command(name: CommandName, argument: str = "") -> Command:
    return Command(name, argument, f"{name.value} {argument}".strip())


@pytest.mark.parametrize(
    ("commands", "code"),
    [
        ([command(MERGE, "MRI-2025-00001")], None),
        ([command(REFER, "x@y.example")], None),
        ([command(CommandName.CLOSE), command(MERGE, "MRI-2025-00001")], "must_stand_alone"),
        ([command(REFER, "x@y.example"), command(CommandName.NOTE)], "must_stand_alone"),
        ([command(CommandName.CLOSE), command(CANNED, "bourses")], None),
        ([command(CommandName.NOTE), command(CANNED, "bourses")], "canned_in_note"),
    ],
)
def test_commands_that_cannot_go_together(commands: list[Command], code: str | None) -> None:
    refusal = combination_refusal(commands)
    assert (refusal.code if refusal else None) == code


def settings() -> Settings:
    from mailbot.settings import load_settings

    return load_settings(REPO / "config" / "mailbot.toml", environ={})


@pytest.mark.parametrize(
    ("queue", "address", "works"),
    [
        ("renseignements", "agent.info@mri.gouv.qc.ca", True),
        ("renseignements", "SUPERVISEUR@mri.gouv.qc.ca", True),
        ("renseignements", "agent.plaintes@mri.gouv.qc.ca", False),
        ("plaintes", "agent.info@mri.gouv.qc.ca", False),
        ("plaintes", "agent.plaintes@mri.gouv.qc.ca", True),
    ],
)
def test_works_on_queue(queue: str, address: str, works: bool) -> None:
    """A merge's sender must work on both queues: the one rule of `mailbot.standards.authority`."""
    chosen = settings()
    assert may_act(address, chosen.mailbox(queue), chosen).allowed is works


@pytest.mark.parametrize(
    ("address", "own"),
    [
        ("collegue@mri.gouv.qc.ca", True),
        ("renseignements@mri.gouv.qc.ca", True),
        ("agent.info@mri.gouv.qc.ca", True),
        ("accueil@autre-organisme.example.org", False),
        ("info@mri.gouv.qc.ca.example.net", False),
        # The ministry's domains and their subdomains are inside; look-alikes are not.
        ("direction@interne.mri.gouv.qc.ca", True),
        ("x@a.b.mri.gouv.qc.ca", True),
        ("x@MRI.GOUV.QC.CA", True),
        ("x@xmri.gouv.qc.ca", False),
        ("x@gouv.qc.ca.evil.example", False),
        ("accueil@mifi.gouv.qc.ca", False),  # another ministry: a referral's usual target
    ],
)
def test_a_referral_leaves_the_ministry(address: str, own: bool) -> None:
    assert is_own_address(settings(), address) is own


def ticket(**values: object) -> TicketRow:
    fields: dict[str, object] = {
        "id": 1,
        "ref": "MRI-2025-00002",
        "mailbox": "renseignements",
        "category": "information",
        "status": "open",
        "requester": "josee.tremblay@example.org",
        "requester_name": "Josée Tremblay",
        "language": "fr",
        "subject": "Bourses",
        "received_at": datetime(2025, 11, 4, 15, tzinfo=UTC),
        "receipt_date": date(2025, 11, 4),
        "due_date": date(2025, 11, 18),
        "english_allowed": False,
    }
    fields.update(values)
    return TicketRow(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kept", "problem"),
    [
        (ticket(id=2, ref="MRI-2025-00001"), None),
        (None, ("no_such_ticket", "MRI-2025-00001")),
        (ticket(), ("merge_same_ticket", "MRI-2025-00001")),
        (
            ticket(id=2, ref="MRI-2025-00001", requester="autre@example.org"),
            ("merge_other_requester", "MRI-2025-00001"),
        ),
    ],
)
def test_merge_problems(kept: TicketRow | None, problem: tuple[str, str] | None) -> None:
    assert merge_problem(ticket(), kept, "MRI-2025-00001") == problem


def test_a_closed_duplicate_is_not_merged_again() -> None:
    merged = ticket(closed_reason="merged", merged_into="MRI-2025-00001")
    assert merge_problem(merged, ticket(id=3, ref="MRI-2025-00003"), "MRI-2025-00003") == (
        "ticket_closed_as",
        "merged",
    )


@pytest.mark.parametrize(
    ("address", "note", "problem"),
    [
        ("accueil@autre.example.org", "Relève de l'Immigration.", None),
        ("accueil@autre.example.org", "  ", ("refer_needs_note", "")),
        ("x@mri.gouv.qc.ca", "note", ("refer_own_domain", "x@mri.gouv.qc.ca")),
    ],
)
def test_referral_problems(address: str, note: str, problem: tuple[str, str] | None) -> None:
    assert referral_problem(settings(), ticket(), address, note) == problem


# --- the refusals, worded for the sender --------------------------------------------------------

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined
)
ENVIRONMENT.globals["answer_names"] = ("bourses", "stages")  # as mailbot.mail.render sets it
REFUSAL = ENVIRONMENT.from_string(
    '{% from "_refusal.j2" import refusal_fr %}{{ refusal_fr(problem) }}'
)


@pytest.mark.parametrize(
    ("problem", "french"),
    [
        (
            CommandError("#fermer", "misplaced_command", command="close"),
            "cette ligne commence par « # » ou « / » comme une commande, mais elle suit le "
            "texte : les commandes se placent tout en haut de la réponse, avant le texte (seule "
            "« #réponse type : NOM » peut figurer dans le texte). Si c'est du texte pour le "
            "citoyen, retirez le « # ».",
        ),
        (
            Refusal("#réponse type : visa", "unknown_answer", "visa", "canned"),
            "aucune réponse type « visa ». Réponses types : bourses, stages.",
        ),
        (
            CommandError("#fusionner", "missing_argument", "", "merge"),
            "La commande « #fusionner » demande le numéro du dossier à conserver (ex. : "
            "MRI-2025-00001). Syntaxe : « #fusionner RÉFÉRENCE ».",
        ),
        (
            Refusal("#fermer", "must_stand_alone", command="merge"),
            "« #fusionner » doit être la seule commande de la réponse (hors réponse type)",
        ),
        (
            Refusal("#référer : x@mri.gouv.qc.ca", "refer_own_domain", "x@mri.gouv.qc.ca", "refer"),
            "« x@mri.gouv.qc.ca » est une adresse du ministère : pour confier le dossier à un "
            "collègue, utilisez « #assigner »",
        ),
    ],
)
def test_every_refusal_says_why(problem: object, french: str) -> None:
    assert REFUSAL.render(problem=problem) == french


# --- canned answers: the folder, checked at start-up --------------------------------------------


def answers_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "answers"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_answers_are_rendered_with_the_ticket_values_as_variables(tmp_path: Path) -> None:
    folder = answers_folder(
        tmp_path,
        {
            "bourses.fr.txt": "Bonjour {{ name }}, dossier {{ ref }} reçu le {{ receipt_date }}, "
            "réponse au plus tard le {{ due_date }}.",
            "bourses.en.txt": "Hello {{ name }}, file {{ ref }} received on {{ receipt_date }}.",
            "README.md": "not an answer",
        },
    )
    found = load_answers(folder, TEMPLATES)
    assert found.names == ("bourses",)
    assert found.languages("bourses") == ("fr", "en")
    sly = ticket(requester_name="{{ 7 * 7 }} {% raw %}")  # citizen text is never template source
    values = ticket_values(settings(), sly, date(2025, 11, 5))
    text = found.render("bourses", values, english=True)
    assert text.french == (
        "Bonjour {{ 7 * 7 }} {% raw %}, dossier MRI-2025-00002 reçu le mardi 4 novembre 2025, "
        "réponse au plus tard le mardi 18 novembre 2025."
    )
    assert text.english == (
        "Hello {{ 7 * 7 }} {% raw %}, file MRI-2025-00002 received on Tuesday, November 4, 2025."
    )
    assert found.render("bourses", values, english=False).english is None


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"bourses.fr.txt": "Bonjour {{ nom }}"}, "bourses.fr.txt: 'nom' is undefined"),
        ({"bourses.fr.txt": "Bonjour {% if %}"}, "bourses.fr.txt: line 1:"),
        ({"bourses.en.txt": "Hello"}, "bourses.en.txt: no French text bourses.fr.txt"),
        ({"Bourses.fr.txt": "Bonjour"}, "Bourses.fr.txt: a canned answer is named"),
        ({"bourses.txt": "Bonjour"}, "bourses.txt: a canned answer is named"),
        ({"x.fr.txt": "{{ ref.__class__.__mro__ }}"}, "x.fr.txt: access to attribute '__class__'"),
    ],
)
def test_a_bad_answer_is_refused_at_start_up_naming_the_file(
    tmp_path: Path, files: dict[str, str], named: str
) -> None:
    folder = answers_folder(tmp_path, files)
    with pytest.raises(ConfigError) as raised:
        load_answers(folder, TEMPLATES)
    assert named in str(raised.value)


def test_the_example_answers_load() -> None:
    found = load_answers(REPO / "config" / "answers", TEMPLATES)
    assert found.languages("bourses") == ("fr", "en")


def test_no_folder_no_answers() -> None:
    assert load_answers(None, TEMPLATES).names == ()


def test_english_only_where_the_ticket_allows_it() -> None:
    chosen = settings()
    detected = chosen.model_copy(
        update={"language": LanguageSettings(english_policy="detected_english")}
    )
    assert not may_write_english(chosen, ticket(language="en"))
    assert may_write_english(detected, ticket(language="en"))
    assert not may_write_english(detected, ticket(language="fr"))
    assert may_write_english(chosen, ticket(english_allowed=True))


def config_with_answers(tmp_path: Path, folder: Path) -> Path:
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["answers"] = {"dir": str(folder)}
    document["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def test_answers_list_prints_each_name_and_its_languages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = answers_folder(
        tmp_path, {"bourses.fr.txt": "a", "bourses.en.txt": "b", "stages.fr.txt": "c"}
    )
    assert main(["--config", str(config_with_answers(tmp_path, folder)), "answers", "list"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == [
        f"{'bourses':<32} fr en",
        f"{'stages':<32} fr",
    ]


def test_check_names_a_bad_answer_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = answers_folder(tmp_path, {"bourses.fr.txt": "Bonjour {{ nom }}"})
    assert main(["--config", str(config_with_answers(tmp_path, folder)), "check"]) == 2
    error = capsys.readouterr().err
    assert "bourses.fr.txt" in error and "'nom' is undefined" in error


def test_a_referred_ticket_is_referred_again_only_once_the_citizen_reopened_it() -> None:
    referred = ticket(status="closed", closed_reason="referred")
    reopened = ticket(status="open", closed_reason="referred")
    assert referral_problem(settings(), referred, "x@autre.example.org", "note") == (
        "ticket_closed_as",
        "referred",
    )
    assert referral_problem(settings(), reopened, "x@autre.example.org", "note") is None


def test_a_referred_ticket_is_never_merged_either_way() -> None:
    """The referral answered the request it carried, and only that one: a request merged
    into a referred ticket would be counted as answered by a referral made without it."""
    reopened = ticket(status="open", closed_reason="referred")
    other = ticket(id=3, ref="MRI-2025-00003")
    assert merge_problem(reopened, other, other.ref) == ("merge_referred", reopened.ref)
    assert merge_problem(other, reopened, reopened.ref) == ("merge_referred", reopened.ref)
