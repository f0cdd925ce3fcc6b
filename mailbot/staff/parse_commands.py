"""The commands at the top of a staff reply (pure).

  parse_commands(text) -> StaffMessage
      the command lines at the top of the new text ("fermer", "#attente: motif", ...) and
      the body below them.

Accidental commands: a line with a '#' or '/' prefix, or whose command word is followed by
':', is always read as a command (an unknown or malformed one is an error for the sender).
Without either, a command word counts only when it stands alone on its line or is followed
by an argument of the command's own shape (a date, one address, one category word, one
reference, one answer name); so "Note that the office is closed" or "Attente de votre réponse"
stay prose. Commands whose argument is free text (attente, incomplet, anglais, note) need the
':' or the prefix to take one.

No command reaches a citizen by mistake: the first line of the text below the commands is
refused (`not_a_command`) when it has the shape of a command without being one: one or two
words followed by ':' ("fermé :", "Objet :"), a word followed by a ticket reference
("fusioner MRI-2025-00001"), or a lone word one letter away from a command word ("fermé",
"closed"). Staff who mean such a line as text start the reply with `texte :` (`text:`); the
text after it, on the same line or below, is the reply.

Canned answers (`réponse type : NOM`) may stand at the top with the commands or on any line of
the text; `StaffMessage.pieces` keeps where each one goes among the staff's own text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import Enum, StrEnum

from mailbot.mail.text import SPACE, fold, fold_spaces
from mailbot.settings import Category

# --- Commands ------------------------------------------------------------------------------


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
    #            bad_category | bad_date | bad_reference | bad_name | not_a_command
    argument: str = ""  # what was written (the unknown word, the unreadable value)
    command: str = ""  # the CommandName value the line called, when known


@dataclass(frozen=True, slots=True)
class StaffMessage:
    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    body: str  # the text after the command lines (what may be relayed), stripped
    # The text for the citizen in order, when the reply uses canned answers: the staff's own
    # text and the `réponse type` commands (those at the top first). Empty without any.
    pieces: tuple[str | Command, ...] = ()


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
_SPEC_BY_WORD = {word: spec for spec in COMMANDS for word in spec.words}
# Longest phrases first, so "fin conservation légale" is not read as something shorter.
_PHRASES = sorted(
    ((phrase, spec) for spec in COMMANDS for phrase in spec.phrases),
    key=lambda item: -len(item[0]),
)
_NEXT_WORD = re.compile(rf"^{SPACE}+(?P<word>[^\s:]+)(?P<rest>.*)$", re.DOTALL)


def _phrase(word: str, rest: str) -> tuple[CommandSpec, str, str] | None:
    """A command of several words starting with `word`: its spec, the words as written, and
    what follows them."""
    for phrase, spec in _PHRASES:
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

_COMMAND_LINE = re.compile(rf"^(?P<prefix>[#/])?{SPACE}*(?P<token>[^\s:]+)(?P<rest>.*)$", re.DOTALL)
_COLON = re.compile(rf"^{SPACE}*:(?P<argument>.*)$", re.DOTALL)
_ADDRESS = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$"
)
_REFERENCE = re.compile(r"^[A-Z][A-Z0-9]{0,9}-[0-9]{4}-[0-9]{1,9}$")
_ANSWER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAILTO_SUFFIX = re.compile(r"^(?P<address>[^<>\s]+)<mailto:(?P<target>[^<>\s]+)>$")
_MONTHS = {
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
        month = int(month_text) if month_text.isdigit() else _MONTHS.get(month_text)
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
    """Drop "à" / "to" before the address: "assigner à x@y", "assign to x@y"."""
    words = argument.split(maxsplit=1)
    if len(words) == 2 and fold(words[0]) in ("a", "to"):
        return words[1]
    return argument


def _has_argument_shape(spec: CommandSpec, argument: str) -> bool:
    """Whether an unprefixed line's argument looks like this command's own argument."""
    if spec.argument is ArgumentKind.DATE:
        return fold(argument).removeprefix("le ")[:1].isdigit()
    if spec.argument is ArgumentKind.ADDRESS:
        return len(_without_preposition(argument).split()) == 1
    if spec.argument in (ArgumentKind.CATEGORY, ArgumentKind.NAME):
        return len(argument.split()) == 1
    if spec.argument is ArgumentKind.REFERENCE:
        return _REFERENCE.match(argument.rstrip(".").upper()) is not None
    return False  # free text takes ':' or a prefix; fermer takes nothing


def _read_argument(spec: CommandSpec, argument: str, line: str) -> Command | CommandError:
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
        if _REFERENCE.match(ref) is None:
            return CommandError(line, "bad_reference", argument, spec.name.value)
        return Command(spec.name, ref, line)
    if kind is ArgumentKind.NAME:
        name = fold(argument).rstrip(".")
        if _ANSWER_NAME.match(name) is None:
            return CommandError(line, "bad_name", argument, spec.name.value)
        return Command(spec.name, name, line)
    when = parse_date(argument.rstrip("."))
    if when is None:
        return CommandError(line, "bad_date", argument, spec.name.value)
    return Command(spec.name, when.isoformat(), line)


def read_command_line(line: str) -> Command | CommandError | None:
    """One line: a command, an erroneous command, or None when it is not a command line."""
    written = line.strip()
    match = _COMMAND_LINE.match(written)
    if match is None:
        return None
    prefixed = match.group("prefix") is not None
    token = match.group("token")
    word = fold(token).rstrip(".!")
    if not word.isalpha():
        return None  # "#123", "/s/", "#MRI-2025-00042": not a command word
    rest = match.group("rest")
    spec = _SPEC_BY_WORD.get(word)
    phrase = _phrase(word, rest) if spec is None else None
    if phrase is not None:
        spec, more, rest = phrase
        token = f"{token} {more}"
    colon = _COLON.match(rest)
    has_colon = colon is not None
    argument = (colon.group("argument") if colon else rest).strip()
    if spec is None:
        if prefixed:
            return CommandError(written, "unknown_command", token)
        return None
    if not prefixed and token != token.rstrip(".!") and argument:
        return None  # "Fermer. Merci de votre patience": a sentence
    explicit = prefixed or has_colon
    if not explicit and argument and not _has_argument_shape(spec, argument):
        return None  # prose that happens to start with a command word
    return _read_argument(spec, argument, written)


# "texte :" / "text:" at the top: what follows is text, whatever its shape.
_TEXT_MARKER = re.compile(rf"^{SPACE}*(?:texte|text){SPACE}*:(?P<rest>.*)$", re.IGNORECASE)
# One or two words then ':' (not a URL's "https://"), or a word then a ticket reference.
_WORDS_COLON = re.compile(
    rf"^[#/]?{SPACE}*(?P<words>[^\W\d_][\w'’-]*(?:{SPACE}+[^\W\d_][\w'’-]*)?){SPACE}*:(?!//)"
)
_WORD_REFERENCE = re.compile(
    rf"^[#/]?{SPACE}*(?P<words>[^\W\d_][\w'’-]*){SPACE}+[A-Za-z][A-Za-z0-9]{{0,9}}-[0-9]{{4}}-[0-9]+"
)
_LONE_WORD = re.compile(r"^[#/]?\s*(?P<words>[^\W\d_][\w'’-]*)[.!]?$")
COMMAND_WORDS = frozenset(
    {word for spec in COMMANDS for word in spec.words}
    | {phrase[0] for spec in COMMANDS for phrase in spec.phrases}
)


def _one_edit_apart(word: str, other: str) -> bool:
    """Whether `word` becomes `other` by changing, adding or removing one letter."""
    if abs(len(word) - len(other)) > 1 or word == other:
        return False
    if len(word) == len(other):
        return sum(a != b for a, b in zip(word, other, strict=True)) == 1
    short, long = sorted((word, other), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def looks_like_command(line: str) -> str | None:
    """The words of a line that has the shape of a command without being one ("fermé",
    "fusioner MRI-2025-00001", "Objet : ..."), or None when it reads as prose."""
    written = line.strip()
    for pattern in (_WORDS_COLON, _WORD_REFERENCE):
        match = pattern.match(written)
        if match is not None:
            return match.group("words")
    lone = _LONE_WORD.match(written)
    if lone is not None:
        word = fold(lone.group("words"))
        if len(word) >= 4 and any(_one_edit_apart(word, known) for known in COMMAND_WORDS):
            return lone.group("words")
    return None


def _canned_in(body_lines: list[str]) -> tuple[list[str | Command], list[CommandError]]:
    """The body cut at its canned-answer lines: text pieces and `réponse type` commands."""
    pieces: list[str | Command] = []
    errors: list[CommandError] = []
    text: list[str] = []
    for line in body_lines:
        # In the text, only an explicit line ("réponse type : x", "#canned x") is an answer.
        explicit = ":" in line or line.lstrip()[:1] in ("#", "/")
        read = read_command_line(line) if explicit else None
        is_canned = (isinstance(read, Command) and read.name is CommandName.CANNED) or (
            isinstance(read, CommandError) and read.command == CommandName.CANNED.value
        )
        if not is_canned:
            text.append(line)
            continue
        if isinstance(read, CommandError):
            errors.append(read)
            continue
        assert isinstance(read, Command)
        pieces.extend(("\n".join(text).strip("\n"), read))
        text = []
    pieces.append("\n".join(text).strip("\n"))
    return [piece for piece in pieces if not isinstance(piece, str) or piece.strip()], errors


def parse_commands(text: str) -> StaffMessage:
    """Commands are one per line at the very top of the new text (blank lines before and
    between them skipped), French or English, case- and accent-insensitive, optionally
    prefixed with '#' or '/' and optionally followed by ':' ("Fermer", "#close",
    "attente: il manque votre formulaire", "Catégorie : plainte", "entrevue 2025-11-20").
    Command parsing stops at the first line that is not a command line. A prefixed line
    whose word is unknown, or a known command with a missing or malformed argument (bad
    date, bad address, unknown category), is an error. An unprefixed line is a command line
    only when its command word stands alone, is followed by ':', or is followed by an
    argument of the command's shape (see the module docstring); otherwise it starts the
    body. Dates are normalised to ISO. Repeated commands are all kept.

    The body's first line is an error (`not_a_command`) when it has the shape of a command
    (`looks_like_command`), unless the reply says `texte :` first or is an internal note.
    Canned-answer lines anywhere in the body are commands too, kept in place in `pieces`."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    body_start = len(lines)
    escaped = False
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        marker = _TEXT_MARKER.match(line)
        if marker is not None:
            lines[index] = marker.group("rest").strip()
            body_start, escaped = index, True
            break
        read = read_command_line(line)
        if read is None:
            body_start = index
            break
        if isinstance(read, Command):
            commands.append(read)
        else:
            errors.append(read)
    body_lines = lines[body_start:]
    first = next((line for line in body_lines if line.strip()), "")
    is_note = any(command.name is CommandName.NOTE for command in commands)
    shaped = looks_like_command(first) if first and not escaped and not is_note else None
    if shaped is not None:
        errors.append(CommandError(first.strip(), "not_a_command", shaped))
    found, canned_errors = _canned_in(body_lines)
    errors.extend(canned_errors)
    in_body = [piece for piece in found if isinstance(piece, Command)]
    at_top = [command for command in commands if command.name is CommandName.CANNED]
    pieces: tuple[str | Command, ...] = ()
    if at_top or in_body:
        pieces = (*at_top, *found)
        commands.extend(in_body)
        body = "\n\n".join(piece for piece in found if isinstance(piece, str)).strip()
    else:
        body = "\n".join(body_lines).strip()
    return StaffMessage(commands=tuple(commands), errors=tuple(errors), body=body, pieces=pieces)
