"""Staff command lines as a specification: a marked line in, a command or a named error out;
prose stays prose; commands at the top of a reply, then the body."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from mailbot.mail.quotes import extract_new_text
from mailbot.mail.text import fold
from mailbot.staff.command_table import COMMANDS, Command, CommandError, CommandName, parse_date
from mailbot.staff.parse_commands import StaffMessage, parse_commands, read_command_line
from tests.mail.test_quotes import MARKERS

RECOGNISED = (
    "#fermer, #attente, #note, #assigner, #catégorie, #anglais, #entrevue, #comité, "
    "#conservation légale, #fin conservation légale, #incomplet, #complet, #fusionner, "
    "#réponse type, #référer, #libérer"
)
UNKNOWN_TAIL = (
    "Une ligne qui commence par « # » ou « / » en haut de la réponse est une commande : "
    "pour du texte, retirez le « # »."
)
DATE_FORMATS = "2025-11-20, 20/11/2025 ou 20 novembre 2025"
CATEGORIES = "renseignements, plainte, stage, coopération"
ASSIGN_EXAMPLE = "Exemple : « #assigner sophie.lavoie@mri.gouv.qc.ca »."


def command(name: CommandName, argument: str, line: str) -> Command:
    return Command(name=name, argument=argument, line=line)


COMMAND_LINES = [
    # fermer / close: marked by '#' or '/', any case, accents and punctuation
    ("#Fermer", command(CommandName.CLOSE, "", "#Fermer")),
    ("#fermer.", command(CommandName.CLOSE, "", "#fermer.")),
    ("#close", command(CommandName.CLOSE, "", "#close")),
    ("/FERMER", command(CommandName.CLOSE, "", "/FERMER")),
    ("# fermer", command(CommandName.CLOSE, "", "# fermer")),
    ("#Close:", command(CommandName.CLOSE, "", "#Close:")),
    ("  #fermer  ", command(CommandName.CLOSE, "", "#fermer")),
    # attente / hold: the reason is free text, with or without ':'
    (
        "#attente: il manque votre formulaire",
        command(
            CommandName.HOLD, "il manque votre formulaire", "#attente: il manque votre formulaire"
        ),
    ),
    (
        "#Attente\u00a0: il manque votre formulaire",
        command(
            CommandName.HOLD,
            "il manque votre formulaire",
            "#Attente\u00a0: il manque votre formulaire",
        ),
    ),
    (
        "#hold waiting for your signed form",
        command(
            CommandName.HOLD, "waiting for your signed form", "#hold waiting for your signed form"
        ),
    ),
    (
        "/attente pièce manquante",
        command(CommandName.HOLD, "pièce manquante", "/attente pièce manquante"),
    ),
    # note
    ("#Note", command(CommandName.NOTE, "", "#Note")),
    ("/note", command(CommandName.NOTE, "", "/note")),
    (
        "#note : le citoyen a appelé",
        command(CommandName.NOTE, "le citoyen a appelé", "#note : le citoyen a appelé"),
    ),
    # assigner / assign: an address, lower-cased; Outlook's "<mailto:...>" and "à" understood
    (
        "#assigner Marc.Gagnon@MRI.gouv.qc.ca",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#assigner Marc.Gagnon@MRI.gouv.qc.ca",
        ),
    ),
    (
        "#Assign: <marc.gagnon@mri.gouv.qc.ca>",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#Assign: <marc.gagnon@mri.gouv.qc.ca>",
        ),
    ),
    (
        "#assigner à marc.gagnon@mri.gouv.qc.ca",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#assigner à marc.gagnon@mri.gouv.qc.ca",
        ),
    ),
    (
        "#assign marc.gagnon@mri.gouv.qc.ca<mailto:marc.gagnon@mri.gouv.qc.ca>",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#assign marc.gagnon@mri.gouv.qc.ca<mailto:marc.gagnon@mri.gouv.qc.ca>",
        ),
    ),
    # catégorie / category: one word, normalised to a Category value
    ("#Catégorie : plainte", command(CommandName.CATEGORY, "complaint", "#Catégorie : plainte")),
    (
        "#categorie renseignements",
        command(CommandName.CATEGORY, "information", "#categorie renseignements"),
    ),
    ("#category internship", command(CommandName.CATEGORY, "internship", "#category internship")),
    ("#CATÉGORIE: Stage", command(CommandName.CATEGORY, "internship", "#CATÉGORIE: Stage")),
    (
        "#catégorie coopération",
        command(CommandName.CATEGORY, "cooperation", "#catégorie coopération"),
    ),
    ("/category: Complaint", command(CommandName.CATEGORY, "complaint", "/category: Complaint")),
    (
        "#category information",
        command(CommandName.CATEGORY, "information", "#category information"),
    ),
    (
        "#Catégorie : cooperation.",
        command(CommandName.CATEGORY, "cooperation", "#Catégorie : cooperation."),
    ),
    # anglais / english: the legal basis is free text
    (
        "#anglais: art. 22 de la Charte, demande d'une personne morale",
        command(
            CommandName.ENGLISH,
            "art. 22 de la Charte, demande d'une personne morale",
            "#anglais: art. 22 de la Charte, demande d'une personne morale",
        ),
    ),
    (
        "#english Charter s. 22",
        command(CommandName.ENGLISH, "Charter s. 22", "#english Charter s. 22"),
    ),
    # entrevue / interview and comité / committee: a date, normalised to ISO
    (
        "#entrevue 2025-11-20",
        command(CommandName.INTERVIEW, "2025-11-20", "#entrevue 2025-11-20"),
    ),
    (
        "#Interview: 20/11/2025",
        command(CommandName.INTERVIEW, "2025-11-20", "#Interview: 20/11/2025"),
    ),
    (
        "#Entrevue le 20 novembre 2025",
        command(CommandName.INTERVIEW, "2025-11-20", "#Entrevue le 20 novembre 2025"),
    ),
    (
        "#comité 1er décembre 2025",
        command(CommandName.COMMITTEE, "2025-12-01", "#comité 1er décembre 2025"),
    ),
    (
        "#Comite : 3 fevr. 2026",
        command(CommandName.COMMITTEE, "2026-02-03", "#Comite : 3 fevr. 2026"),
    ),
    (
        "/committee 2026-01-15",
        command(CommandName.COMMITTEE, "2026-01-15", "/committee 2026-01-15"),
    ),
]


@pytest.mark.parametrize(("line", "expected"), COMMAND_LINES)
def test_command_lines(line: str, expected: Command) -> None:
    assert read_command_line(line) == expected


# line, (code, argument, command), and the French the sender reads (templates/_refusal.j2).
COMMAND_ERRORS = [
    (
        "#fermerr",
        ("unknown_command", "fermerr", ""),
        f"Commande inconnue : « fermerr ». Commandes reconnues : {RECOGNISED}. {UNKNOWN_TAIL}",
    ),
    (
        "/urgent",
        ("unknown_command", "urgent", ""),
        f"Commande inconnue : « urgent ». Commandes reconnues : {RECOGNISED}. {UNKNOWN_TAIL}",
    ),
    (
        "#MRIF",
        ("unknown_command", "MRIF", ""),
        f"Commande inconnue : « MRIF ». Commandes reconnues : {RECOGNISED}. {UNKNOWN_TAIL}",
    ),
    (
        "#fermer maintenant",
        ("takes_no_argument", "maintenant", "close"),
        "La commande « #fermer » ne prend pas d'argument.",
    ),
    (
        "#Fermer : merci",
        ("takes_no_argument", "merci", "close"),
        "La commande « #fermer » ne prend pas d'argument.",
    ),
    (
        "#attente",
        ("missing_argument", "", "hold"),
        "La commande « #attente » demande un motif (il est transmis au "
        "citoyen). Syntaxe : « #attente : MOTIF ».",
    ),
    (
        "#hold:",
        ("missing_argument", "", "hold"),
        "La commande « #attente » demande un motif (il est transmis au "
        "citoyen). Syntaxe : « #attente : MOTIF ».",
    ),
    (
        "/anglais",
        ("missing_argument", "", "english"),
        "La commande « #anglais » demande le fondement légal de la réponse en "
        "anglais. Syntaxe : « #anglais : FONDEMENT ».",
    ),
    (
        "#assigner marc.gagnon",
        ("bad_address", "marc.gagnon", "assign"),
        f"Adresse illisible : « marc.gagnon ». {ASSIGN_EXAMPLE}",
    ),
    (
        "#assign x@y@mri.gouv.qc.ca",
        ("bad_address", "x@y@mri.gouv.qc.ca", "assign"),
        f"Adresse illisible : « x@y@mri.gouv.qc.ca ». {ASSIGN_EXAMPLE}",
    ),
    (
        "#assigner",
        ("missing_argument", "", "assign"),
        "La commande « #assigner » demande l'adresse du collègue. Syntaxe : « #assigner ADRESSE ».",
    ),
    (
        "#catégorie urgente",
        ("bad_category", "urgente", "category"),
        f"Catégorie inconnue : « urgente ». Catégories : {CATEGORIES}.",
    ),
    (
        "#Catégorie : plainte grave",
        ("bad_category", "plainte grave", "category"),
        f"Catégorie inconnue : « plainte grave ». Catégories : {CATEGORIES}.",
    ),
    (
        "#entrevue 2025-02-30",
        ("bad_date", "2025-02-30", "interview"),
        f"Date illisible : « 2025-02-30 ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#entrevue 20/11/25",
        ("bad_date", "20/11/25", "interview"),
        f"Date illisible : « 20/11/25 ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#comité 2025-11-20 à 14 h",
        ("bad_date", "2025-11-20 à 14 h", "committee"),
        f"Date illisible : « 2025-11-20 à 14 h ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#entrevue jeudi prochain",
        ("bad_date", "jeudi prochain", "interview"),
        f"Date illisible : « jeudi prochain ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#committee:",
        ("missing_argument", "", "committee"),
        f"La commande « #comité » demande une date ({DATE_FORMATS}). Syntaxe : « #comité DATE ».",
    ),
]
REFUSAL = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parents[2] / "templates")),
    undefined=jinja2.StrictUndefined,
).from_string('{% from "_refusal.j2" import refusal_fr %}{{ refusal_fr(problem) }}')


@pytest.mark.parametrize(("line", "expected", "french"), COMMAND_ERRORS)
def test_command_errors(line: str, expected: tuple[str, str, str], french: str) -> None:
    error = read_command_line(line)
    assert error == CommandError(line, *expected)
    assert REFUSAL.render(problem=error) == french


PROSE_LINES = [
    # Without '#' or '/', never a command (the first line of the text meets the safety net).
    "Fermer",
    "fermer",
    "Note : nos bureaux seront fermés le 24 décembre.",
    "attente: il manque votre formulaire",
    "catégorie plainte",
    "Note that the office is closed on Monday.",
    "Notez que nos bureaux sont fermés lundi.",
    "Fermer le dossier serait prématuré.",
    "Fermer. Merci de votre patience.",
    "Close to the deadline, we received your form.",
    "Attente de votre réponse depuis trois semaines.",
    "Hold on, we are checking your file.",
    "English version below.",
    "Anglais et français sont acceptés.",
    "Assigner un dossier prend du temps.",
    "Catégorie de la demande : à déterminer.",
    "Entrevue prévue la semaine prochaine.",
    "Interview scheduling is done by phone.",
    "Comité de sélection : nous vous écrirons.",
    "Bonjour Madame Tremblay,",
    "Objet : votre demande",
    "#123 est le numéro de votre dossier.",
    "#MRI-2025-00042 : suivi",
    "/s/ Sophie Lavoie",
    "https://www.mri.gouv.qc.ca/stages",
    "« Fermer »",
]


@pytest.mark.parametrize("line", PROSE_LINES)
def test_prose_is_not_a_command(line: str) -> None:
    assert read_command_line(line) is None


def test_commands_at_the_top_then_the_body() -> None:
    text = (
        "\n"
        "#Fermer\n"
        "/Catégorie : plainte\n"
        "\n"
        "#entrevue 20 novembre 2025\n"
        "Bonjour Madame Tremblay,\n"
        "\n"
        "Votre entrevue aura lieu le 20 novembre.\n"
        "fermer\n"
    )
    assert parse_commands(text) == StaffMessage(
        commands=(
            command(CommandName.CLOSE, "", "#Fermer"),
            command(CommandName.CATEGORY, "complaint", "/Catégorie : plainte"),
            command(CommandName.INTERVIEW, "2025-11-20", "#entrevue 20 novembre 2025"),
        ),
        errors=(),
        body="Bonjour Madame Tremblay,\n\nVotre entrevue aura lieu le 20 novembre.\nfermer",
    )


def test_errors_are_collected_and_parsing_goes_on() -> None:
    text = (
        "#fermerr\n#attente: pièce manquante\n#entrevue 31/11/2025\n\n"
        "Bonjour,\nIl manque une pièce."
    )
    message = parse_commands(text)
    assert message.commands == (
        command(CommandName.HOLD, "pièce manquante", "#attente: pièce manquante"),
    )
    assert [error.line for error in message.errors] == ["#fermerr", "#entrevue 31/11/2025"]
    assert message.body == "Bonjour,\nIl manque une pièce."


def test_english_prose_starting_with_note_is_the_body() -> None:
    text = "Note that your file is complete.\nFermer\n"
    assert parse_commands(text) == StaffMessage(
        commands=(), errors=(), body="Note that your file is complete.\nFermer"
    )


def test_an_unmarked_label_is_prose_that_reaches_the_citizen() -> None:
    # "Note :" followed by a sentence is text, written as it is: no command, nothing held.
    assert parse_commands("Note : nos bureaux seront fermés lundi.\n\nSophie") == StaffMessage(
        commands=(), errors=(), body="Note : nos bureaux seront fermés lundi.\n\nSophie"
    )


def test_a_marked_note_keeps_its_own_words() -> None:
    message = parse_commands("#note : le citoyen a appelé\n\nSophie")
    assert message.commands == (
        command(CommandName.NOTE, "le citoyen a appelé", "#note : le citoyen a appelé"),
    )
    assert message.body == "Sophie"


def test_repeated_commands_are_all_kept() -> None:
    message = parse_commands("#catégorie plainte\n#catégorie stage\n#fermer\n/fermer")
    assert [(item.name, item.argument) for item in message.commands] == [
        (CommandName.CATEGORY, "complaint"),
        (CommandName.CATEGORY, "internship"),
        (CommandName.CLOSE, ""),
        (CommandName.CLOSE, ""),
    ]
    assert message.body == ""


def test_no_commands_leaves_the_whole_text_as_body() -> None:
    assert parse_commands("  \nBonjour,\n\nVotre dossier est complet.\n\n") == StaffMessage(
        commands=(), errors=(), body="Bonjour,\n\nVotre dossier est complet."
    )


def test_empty_text() -> None:
    assert parse_commands("") == StaffMessage(commands=(), errors=(), body="")


def test_a_whole_reply_cut_then_parsed() -> None:
    reply = extract_new_text(
        "#attente: il manque votre formulaire signé\n"
        "Bonjour,\n"
        "Il nous manque votre formulaire signé.\n"
        "Sophie\n"
        "\n"
        "Le lun. 3 nov. 2025, à 10 h 00, Renseignements MRI <renseignements@mri.gouv.qc.ca>\n"
        "a écrit :\n"
        "> Usage interne\n"
        "> #fermer\n",
        internal_markers=MARKERS,
    )
    assert reply.certain is True
    message = parse_commands(reply.text)
    assert message.commands == (
        command(
            CommandName.HOLD,
            "il manque votre formulaire signé",
            "#attente: il manque votre formulaire signé",
        ),
    )
    assert message.body == "Bonjour,\nIl nous manque votre formulaire signé.\nSophie"
    assert message.errors == () and message.unmarked == ()


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2025-11-20", "2025-11-20"),
        ("2025-1-5", "2025-01-05"),
        ("20/11/2025", "2025-11-20"),
        ("5/1/2026", "2026-01-05"),
        ("20 novembre 2025", "2025-11-20"),
        ("le 20 Novembre 2025", "2025-11-20"),
        ("1er août 2026", "2026-08-01"),
        ("15 aout 2026", "2026-08-15"),
        ("3 déc. 2025", "2025-12-03"),
        ("29 février 2028", "2028-02-29"),
    ],
)
def test_parse_date(text: str, iso: str) -> None:
    parsed = parse_date(text)
    assert parsed is not None and parsed.isoformat() == iso


@pytest.mark.parametrize(
    "text",
    [
        "29 février 2025",
        "2025-13-01",
        "11/20/2025",
        "20 brumaire 2025",
        "20 novembre",
        "demain",
        "",
    ],
)
def test_parse_date_refuses(text: str) -> None:
    assert parse_date(text) is None


def test_every_command_is_in_the_help_staff_receive() -> None:
    help_text = (Path(__file__).parents[2] / "templates" / "command_help.txt").read_text()
    for spec in COMMANDS:
        called = [*spec.words, *(" ".join(phrase) for phrase in spec.phrases)]
        assert called[0] in fold(help_text)
        assert any(f"({name})" in help_text for name in (spec.name.value, *called))
