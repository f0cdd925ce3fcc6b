"""The staff commands: their names, the words that call them, what each takes, and the
readers of their arguments (dates, addresses, categories, references, answer names) (pure).

`COMMANDS` is the one table: the marked grammar (mailbot/staff/parse_commands.py) and the
safety net for commands left unmarked (mailbot/staff/unmarked_commands.py) both read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import Enum, StrEnum

from mailbot.mail.text import SPACE, fold, fold_spaces
from mailbot.settings import Category


class CommandName(StrEnum):
    CLOSE = "close"  # fermer | close
    HOLD = "hold"  # attente REASON | hold REASON  (REASON required: it goes to the citizen)
    NOTE = "note"  # note  (the whole message is internal: recorded, never relayed)
    ASSIGN = "assign"  # assigner ADDRESS | assign ADDRESS
    CATEGORY = "category"  # categorie|catégorie|category VALUE -> a Category value
    ENGLISH = "english"  # anglais BASIS | english BASIS  (BASIS required: the legal basis)
    INTERVIEW = "interview"  # entrevue DATE | interview DATE
    COMMITTEE = "committee"  # comite|comité DATE | committee DATE
    LEGAL_HOLD = "legal_hold"  # conservation légale REASON | legal hold REASON
    LEGAL_RELEASE = "legal_release"  # fin conservation légale | end legal hold
    INCOMPLETE = "incomplete"  # incomplet REASON | incomplete REASON  (REASON goes to the citizen)
    COMPLETE = "complete"  # complet | complete  (the missing piece came another way)
    MERGE = "merge"  # fusionner REF | merge REF  (this ticket is a duplicate of REF)
    CANNED = "canned"  # réponse type : NAME | canned: NAME  (a prepared answer, in place)
    REFER = "refer"  # référer : ADDRESS | refer: ADDRESS  (the text below is the note)
    RELEASE = "release"  # libérer ADDRESS | unblock ADDRESS  (a person's acts held past the limit)


@dataclass(frozen=True, slots=True)
class Command:
    name: CommandName
    argument: str  # normalised: category value, ISO date "YYYY-MM-DD", lower-cased address, text
    line: str  # the line as written


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command line that cannot be read; `templates/_refusal.j2` words it for the sender."""

    line: str
    code: str  # unknown_command | takes_no_argument | missing_argument | bad_address |
    #            bad_category | bad_date | bad_reference | bad_name | misplaced_command
    argument: str = ""  # what was written (the unknown word, the unreadable value)
    command: str = ""  # the CommandName value the line called, when known


class ArgumentKind(Enum):
    NONE = "none"  # fermer, complet
    OPTIONAL_TEXT = "optional_text"  # note
    TEXT = "text"  # attente, incomplet, anglais
    ADDRESS = "address"  # assigner
    CATEGORY = "category"  # catégorie
    DATE = "date"  # entrevue, comité
    REFERENCE = "reference"  # fusionner
    NAME = "name"  # réponse type


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: CommandName
    words: tuple[str, ...]  # accent-free, lower-case: the words that call it
    argument: ArgumentKind
    # Commands of several words: each phrase as its words ("conservation legale").
    phrases: tuple[tuple[str, ...], ...] = ()


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(CommandName.CLOSE, ("fermer", "close"), ArgumentKind.NONE),
    CommandSpec(CommandName.HOLD, ("attente", "hold"), ArgumentKind.TEXT),
    CommandSpec(CommandName.NOTE, ("note",), ArgumentKind.OPTIONAL_TEXT),
    CommandSpec(CommandName.ASSIGN, ("assigner", "assign"), ArgumentKind.ADDRESS),
    CommandSpec(CommandName.CATEGORY, ("categorie", "category"), ArgumentKind.CATEGORY),
    CommandSpec(CommandName.ENGLISH, ("anglais", "english"), ArgumentKind.TEXT),
    CommandSpec(CommandName.INTERVIEW, ("entrevue", "interview"), ArgumentKind.DATE),
    CommandSpec(CommandName.COMMITTEE, ("comite", "committee"), ArgumentKind.DATE),
    CommandSpec(CommandName.MERGE, ("fusionner", "merge"), ArgumentKind.REFERENCE),
    CommandSpec(CommandName.CANNED, ("canned",), ArgumentKind.NAME, phrases=(("reponse", "type"),)),
    CommandSpec(CommandName.REFER, ("referer", "refer"), ArgumentKind.ADDRESS),
    # "release" already opens "release legal hold": the English word is "unblock".
    CommandSpec(CommandName.RELEASE, ("liberer", "unblock"), ArgumentKind.ADDRESS),
    CommandSpec(
        CommandName.LEGAL_HOLD,
        (),
        ArgumentKind.TEXT,
        phrases=(("conservation", "legale"), ("legal", "hold")),
    ),
    CommandSpec(
        CommandName.LEGAL_RELEASE,
        (),
        ArgumentKind.NONE,
        phrases=(
            ("fin", "conservation", "legale"),
            ("levee", "conservation", "legale"),
            ("end", "legal", "hold"),
            ("release", "legal", "hold"),
        ),
    ),
    CommandSpec(CommandName.INCOMPLETE, ("incomplet", "incomplete"), ArgumentKind.TEXT),
    CommandSpec(CommandName.COMPLETE, ("complet", "complete"), ArgumentKind.NONE),
)
SPEC_BY_WORD = {word: spec for spec in COMMANDS for word in spec.words}
# Longest phrases first, so "fin conservation légale" is not read as something shorter.
PHRASES = sorted(
    ((phrase, spec) for spec in COMMANDS for phrase in spec.phrases),
    key=lambda item: -len(item[0]),
)
_NEXT_WORD = re.compile(rf"^{SPACE}+(?P<word>[^\s:]+)(?P<rest>.*)$", re.DOTALL)


def read_phrase(word: str, rest: str) -> tuple[CommandSpec, str, str] | None:
    """A command of several words starting with `word`: its spec, the words as written, and
    what follows them."""
    for phrase, spec in PHRASES:
        if phrase[0] != word:
            continue
        left, written = rest, []
        for expected in phrase[1:]:
            match = _NEXT_WORD.match(left)
            if match is None or fold(match.group("word")).rstrip(".!") != expected:
                break
            written.append(match.group("word"))
            left = match.group("rest")
        else:
            return spec, " ".join(written), left
    return None


CATEGORY_WORDS: dict[str, Category] = {
    "information": "information",
    "informations": "information",
    "renseignement": "information",
    "renseignements": "information",
    "plainte": "complaint",
    "plaintes": "complaint",
    "complaint": "complaint",
    "complaints": "complaint",
    "stage": "internship",
    "stages": "internship",
    "internship": "internship",
    "internships": "internship",
    "cooperation": "cooperation",
    "co-operation": "cooperation",
}
_ADDRESS = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$"
)
# Commands that end the ticket's life as it was, and the release of a person's held acts
# (answered on whichever ticket its alert named): each must be the reply's only command, and
# nothing of the reply is relayed to the ticket's citizen.
STANDS_ALONE = frozenset({CommandName.MERGE, CommandName.REFER, CommandName.RELEASE})
REFERENCE = re.compile(r"^[A-Z][A-Z0-9]{0,9}-[0-9]{4}-[0-9]{1,9}$")
ANSWER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAILTO_SUFFIX = re.compile(r"^(?P<address>[^<>\s]+)<mailto:(?P<target>[^<>\s]+)>$")
MONTHS = {
    "janvier": 1,
    "janv": 1,
    "fevrier": 2,
    "fevr": 2,
    "mars": 3,
    "avril": 4,
    "avr": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7,
    "juil": 7,
    "aout": 8,
    "septembre": 9,
    "sept": 9,
    "octobre": 10,
    "oct": 10,
    "novembre": 11,
    "nov": 11,
    "decembre": 12,
    "dec": 12,
}
_ISO_DATE = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})$")
_SLASH_DATE = re.compile(r"^(?P<day>[0-9]{1,2})/(?P<month>[0-9]{1,2})/(?P<year>[0-9]{4})$")
_FRENCH_DATE = re.compile(
    r"^(?P<day>[0-9]{1,2})(?:er)?\s+(?P<month>[a-z]+)\.?\s+(?P<year>[0-9]{4})$"
)


def parse_date(text: str) -> date | None:
    """2025-11-20, 20/11/2025 or "20 novembre 2025" ("le 1er déc. 2025"); None otherwise."""
    folded = fold_spaces(text)
    folded = folded.removeprefix("le ")
    for pattern in (_ISO_DATE, _SLASH_DATE, _FRENCH_DATE):
        match = pattern.match(folded)
        if match is None:
            continue
        month_text = match.group("month")
        month = int(month_text) if month_text.isdigit() else MONTHS.get(month_text)
        if month is None:
            return None
        try:
            return date(int(match.group("year")), month, int(match.group("day")))
        except ValueError:
            return None
    return None


def parse_address(text: str) -> str | None:
    """One plain address ("x@y", "<x@y>", Outlook's "x@y<mailto:x@y>"), lower-cased."""
    value = text.strip()
    mailto = _MAILTO_SUFFIX.match(value)
    if mailto is not None:
        if mailto.group("address").lower() != mailto.group("target").lower():
            return None
        value = mailto.group("address")
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    value = value.lower()
    return value if _ADDRESS.match(value) else None


def _without_preposition(argument: str) -> str:
    """Drop "à" / "to" before the address: "#assigner à x@y", "#assign to x@y"."""
    words = argument.split(maxsplit=1)
    if len(words) == 2 and fold(words[0]) in ("a", "to"):
        return words[1]
    return argument


def read_argument(spec: CommandSpec, argument: str, line: str) -> Command | CommandError:
    kind = spec.argument
    if kind is ArgumentKind.NONE:
        if argument:
            return CommandError(line, "takes_no_argument", argument, spec.name.value)
        return Command(spec.name, "", line)
    if kind is ArgumentKind.OPTIONAL_TEXT:
        return Command(spec.name, argument, line)
    if not argument:
        return CommandError(line, "missing_argument", "", spec.name.value)
    if kind is ArgumentKind.TEXT:
        return Command(spec.name, argument, line)
    if kind is ArgumentKind.ADDRESS:
        address = parse_address(_without_preposition(argument))
        if address is None:
            return CommandError(line, "bad_address", argument, spec.name.value)
        return Command(spec.name, address, line)
    if kind is ArgumentKind.CATEGORY:
        category = CATEGORY_WORDS.get(fold(argument).rstrip("."))
        if category is None:
            return CommandError(line, "bad_category", argument, spec.name.value)
        return Command(spec.name, category, line)
    if kind is ArgumentKind.REFERENCE:
        ref = argument.rstrip(".").upper()
        if REFERENCE.match(ref) is None:
            return CommandError(line, "bad_reference", argument, spec.name.value)
        return Command(spec.name, ref, line)
    if kind is ArgumentKind.NAME:
        name = fold(argument).rstrip(".")
        if ANSWER_NAME.match(name) is None:
            return CommandError(line, "bad_name", argument, spec.name.value)
        return Command(spec.name, name, line)
    when = parse_date(argument.rstrip("."))
    if when is None:
        return CommandError(line, "bad_date", argument, spec.name.value)
    return Command(spec.name, when.isoformat(), line)
