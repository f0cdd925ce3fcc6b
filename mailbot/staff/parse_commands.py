"""The commands at the top of a staff reply, and the lines that look like commands left
unmarked (pure).

  parse_commands(text) -> StaffMessage
      the marked command lines at the top of the new text ("#fermer", "/close",
      "#attente : motif"), the text below them, and the lines of that text that look like a
      command written without its mark.

The grammar (the staff guide in the README, "Pour le personnel", says the same):

- A command is a line at the top of the new text that begins with `#` or `/` followed by a
  command word, French or English, accents and case optional: `#fermer`, `/close`,
  `#attente : motif`, `#fusionner MRI-2025-00012`, `#référer : adresse`. Blank lines before
  and between them are skipped. A marked line whose word is unknown, or whose argument is
  missing or malformed, is an error: the whole reply is refused with the reason.
- A line that does not begin with `#` or `/` is never a command, wherever it stands: the
  first one starts the text, which goes to the citizen as written (`Note : nos bureaux
  seront fermés le 24 décembre.`). `#` or `/` followed by no word (`#123`,
  `#MRI-2025-00042`, `/s/ Sophie Lavoie`) is no mark either.
- Below the top, `#réponse type : NOM` is replaced by that canned answer in place, so it may
  stand on any line; any other marked line whose word is a command word, or one letter from
  one (`#fermer` under "Bonjour,"), is an error (`misplaced_command`): commands go at the
  top. A marked line whose word is no command (`#MRIF`) is prose there.
- `texte :` (`text:`) at the start of the text is removed: it used to mark text that looked
  like a command, and what follows it is taken as written.

The safety net for a command meant but left unmarked (`unmarked_command`): the first line of
the text (below the marked commands) is held back when it is only a command word, a known
synonym (`cloture`, `doublon`) or a word one letter from a command word, with nothing after it
but what that command takes: a reference, an address, a date, a category, an answer name, a
colleague's name after `assigner`, or words such as `svp`, `le dossier`, `ticket`, `interne`
(`Fermer`, `fermer svp`, `cloture`, `fusioner MRI-2025-00012`, `Note interne`,
`assinger x@…`, `close ticket`). A line that starts with words never written to a citizen
(`Note interne : …`, `Note au dossier : …`, `Conservation légale : …`) is held whatever
follows. A label followed by a sentence is prose
(`Objet : votre demande`, `Attente : nous attendons la réponse du consulat.`,
`English: see below`). An unmarked canned-answer line (`réponse type : bourses`) is held
wherever it stands. The reply is then neither applied nor sent until the sender confirms
(mailbot/staff/replies.py); an internal note (`#note`) reaches no citizen and is not held.
"One letter" is one letter changed, added, removed or two swapped, the first letter kept;
a four-letter command word (`note`, `hold`) only takes two letters swapped.
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
    #            bad_category | bad_date | bad_reference | bad_name | misplaced_command
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
    # Lines of the text that look like commands left unmarked: the reply is held until its
    # sender confirms it (mailbot/staff/replies.py). Empty for an internal note.
    unmarked: tuple[UnmarkedCommand, ...] = ()


@dataclass(frozen=True, slots=True)
class UnmarkedCommand:
    """A line of the text that looks like a command written without its mark."""

    line: str  # the line as written
    command: str  # the CommandName value it looks like
    marked: str  # the marked form mailbot thinks was meant ("#fermer", "#note")


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

# A mark, then a word of letters ending at a space, ':', '.', '!' or the end of the line:
# "#fermer", "/ close.", "#attente: motif"; not "#123", "#MRI-2025-00042", "/s/".
_MARKED_LINE = re.compile(
    rf"^[#/]{SPACE}*(?P<token>[^\W\d_]+[.!]*)(?=$|[\s:])(?P<rest>.*)$", re.DOTALL
)
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
    """Drop "à" / "to" before the address: "#assigner à x@y", "#assign to x@y"."""
    words = argument.split(maxsplit=1)
    if len(words) == 2 and fold(words[0]) in ("a", "to"):
        return words[1]
    return argument


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
    """One line: a command, an erroneous command, or None when it is not marked (it does not
    begin with '#' or '/' and a word): an unmarked line is never a command."""
    written = line.strip()
    match = _MARKED_LINE.match(written)
    if match is None:
        return None
    token = match.group("token")
    word = fold(token).rstrip(".!")
    rest = match.group("rest")
    spec = _SPEC_BY_WORD.get(word)
    phrase = _phrase(word, rest) if spec is None else None
    if phrase is not None:
        spec, more, rest = phrase
        token = f"{token} {more}"
    if spec is None:
        return CommandError(written, "unknown_command", token)
    colon = _COLON.match(rest)
    argument = (colon.group("argument") if colon else rest).strip()
    return _read_argument(spec, argument, written)


# "texte :" / "text:" at the start of the text: an older way to say "what follows is text";
# the marker is removed.
_TEXT_MARKER = re.compile(rf"^{SPACE}*(?:texte|text){SPACE}*:(?P<rest>.*)$", re.IGNORECASE)


# --- The safety net: commands meant but left unmarked --------------------------------------

# Words that call no command but say the same (accent-free, lower-case): a first line made of
# one of them is held like a command word, with the marked form of its command suggested.
SYNONYMS: dict[str, CommandName] = {
    "cloture": CommandName.CLOSE,
    "cloturer": CommandName.CLOSE,
    "clore": CommandName.CLOSE,
    "fermeture": CommandName.CLOSE,
    "classer": CommandName.CLOSE,
    "resolu": CommandName.CLOSE,
    "resolved": CommandName.CLOSE,
    "closed": CommandName.CLOSE,
    "doublon": CommandName.MERGE,
    "fusion": CommandName.MERGE,
    "duplique": CommandName.MERGE,
    "duplicate": CommandName.MERGE,
    "attribuer": CommandName.ASSIGN,
    "referral": CommandName.REFER,
    "memo": CommandName.NOTE,
    "interne": CommandName.NOTE,
    "internal": CommandName.NOTE,
}
# How a first line may start and be held whatever follows: words never written to a citizen
# ("Note interne : le citoyen est agressif", "Conservation légale : dossier 500-17-123").
_INTERNAL_OPENINGS: tuple[tuple[tuple[str, ...], CommandName], ...] = (
    (("note", "interne"), CommandName.NOTE),
    (("notes", "internes"), CommandName.NOTE),
    (("note", "au", "dossier"), CommandName.NOTE),
    (("note", "to", "file"), CommandName.NOTE),
    (("note", "to", "self"), CommandName.NOTE),
    (("internal", "note"), CommandName.NOTE),
    (("usage", "interne"), CommandName.NOTE),
    (("interne",), CommandName.NOTE),
    (("conservation", "legale"), CommandName.LEGAL_HOLD),
    (("legal", "hold"), CommandName.LEGAL_HOLD),
)
# Words that may stand beside a command word without making the line a sentence: politeness,
# the ticket itself, and the small words around them ("fermer le dossier svp", "close this
# ticket please", "Note interne").
FILLERS = frozenset(
    {
        "svp",
        "s.v.p",
        "stp",
        "s'il",
        "vous",
        "plait",
        "merci",
        "please",
        "pls",
        "thanks",
        "thank",
        "you",
        "ok",
        "maintenant",
        "now",
        "le",
        "la",
        "les",
        "l'",
        "ce",
        "cet",
        "cette",
        "du",
        "de",
        "des",
        "d'",
        "en",
        "a",
        "au",
        "aux",
        "pour",
        "sur",
        "the",
        "this",
        "that",
        "to",
        "for",
        "of",
        "on",
        "it",
        "avec",
        "with",
        "into",
        "dans",
        "dossier",
        "demande",
        "requete",
        "ticket",
        "billet",
        "file",
        "case",
        "request",
        "interne",
        "internal",
    }
)
# Where an unmarked line's words end: spaces, and the punctuation that closes a word.
_PUNCTUATION = '.,;:!?«»"()[]'
_NAME_WORD = re.compile(r"^[^\W\d_][\w'’-]*$")


def _one_letter_apart(word: str, known: str) -> bool:
    """Whether `word` is `known` with one letter changed, added or removed, or two next to
    each other swapped, its first letter kept; a word of four letters or fewer only takes the
    swap ("ntoe"), so "nota", "held" or "Hola" are not read as commands."""
    if word == known or not word or word[0] != known[0]:
        return False
    if len(word) == len(known):
        differences = [i for i, (a, b) in enumerate(zip(word, known, strict=True)) if a != b]
        if len(differences) == 2:
            i, j = differences
            return j == i + 1 and word[i] == known[j] and word[j] == known[i]
        return len(differences) == 1 and len(known) > 4
    if len(known) <= 4 or abs(len(word) - len(known)) != 1:
        return False
    short, long = sorted((word, known), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


_WORDS: dict[str, tuple[CommandName, str]] = {
    **{word: (spec.name, word) for spec in COMMANDS for word in spec.words},
    **{word: (name, word) for word, name in SYNONYMS.items()},
}


def _command_word(word: str) -> tuple[CommandName, str] | None:
    """The command a word calls or nearly calls, and the known word it stands for."""
    if word in _WORDS:
        return _WORDS[word]
    for known, found in _WORDS.items():
        if _one_letter_apart(word, known):
            return found
    return None


def _command_phrase(words: list[str]) -> tuple[CommandName, int] | None:
    """A command of several words at the start of `words`, each word as written or one letter
    from it ("conservation legal"), and how many words it takes."""
    for phrase, spec in _PHRASES:
        taken = words[: len(phrase)]
        if len(taken) == len(phrase) and all(
            word == expected or _one_letter_apart(word, expected)
            for word, expected in zip(taken, phrase, strict=True)
        ):
            return spec.name, len(phrase)
    return None


_SPEC_BY_NAME = {spec.name: spec for spec in COMMANDS}
# The marked form suggested, in French unless the line was written in English.
_MARKED_FR = {
    CommandName.CLOSE: "#fermer",
    CommandName.HOLD: "#attente : MOTIF",
    CommandName.NOTE: "#note",
    CommandName.ASSIGN: "#assigner ADRESSE",
    CommandName.CATEGORY: "#catégorie VALEUR",
    CommandName.ENGLISH: "#anglais : FONDEMENT",
    CommandName.INTERVIEW: "#entrevue DATE",
    CommandName.COMMITTEE: "#comité DATE",
    CommandName.LEGAL_HOLD: "#conservation légale : MOTIF",
    CommandName.LEGAL_RELEASE: "#fin conservation légale",
    CommandName.INCOMPLETE: "#incomplet : MOTIF",
    CommandName.COMPLETE: "#complet",
    CommandName.MERGE: "#fusionner RÉFÉRENCE",
    CommandName.CANNED: "#réponse type : NOM",
    CommandName.REFER: "#référer : ADRESSE",
    CommandName.RELEASE: "#libérer ADRESSE",
}
_MARKED_EN = {
    CommandName.CLOSE: "#close",
    CommandName.HOLD: "#hold: REASON",
    CommandName.NOTE: "#note",
    CommandName.ASSIGN: "#assign ADDRESS",
    CommandName.CATEGORY: "#category VALUE",
    CommandName.ENGLISH: "#english: BASIS",
    CommandName.INTERVIEW: "#interview DATE",
    CommandName.COMMITTEE: "#committee DATE",
    CommandName.LEGAL_HOLD: "#legal hold: REASON",
    CommandName.LEGAL_RELEASE: "#end legal hold",
    CommandName.INCOMPLETE: "#incomplete: REASON",
    CommandName.COMPLETE: "#complete",
    CommandName.MERGE: "#merge REFERENCE",
    CommandName.CANNED: "#canned: NAME",
    CommandName.REFER: "#refer: ADDRESS",
    CommandName.RELEASE: "#unblock ADDRESS",
}
_ENGLISH_WORDS = frozenset(
    {
        *(spec.words[-1] for spec in COMMANDS if len(spec.words) == 2),
        "legal",
        "end",
        "release",
        "canned",
        "resolved",
        "closed",
        "duplicate",
        "referral",
        "internal",
    }
)


def _marked_form(name: CommandName, english: bool, argument: str) -> str:
    """The marked line mailbot suggests: the command's usage, its placeholder replaced by
    the argument written ("#fusionner MRI-2025-00012")."""
    usage = (_MARKED_EN if english else _MARKED_FR)[name]
    if not argument:
        return usage
    words = usage.split()
    placeholder = words[-1]
    if placeholder.isupper():
        return " ".join([*words[:-1], argument])
    return usage


def _is_argument(kind: ArgumentKind, word: str) -> bool:
    """Whether one word of an unmarked line has the shape of what the command takes; any
    command may name a ticket ("fermer MRI-2025-00012")."""
    if _REFERENCE.match(word.upper()) is not None:
        return True
    if kind is ArgumentKind.ADDRESS:
        return parse_address(word) is not None
    if kind is ArgumentKind.CATEGORY:
        return word in CATEGORY_WORDS
    if kind is ArgumentKind.NAME:
        return _ANSWER_NAME.match(word) is not None
    if kind is ArgumentKind.DATE:
        return word[:1].isdigit() or word.rstrip(".") in (*_MONTHS, *_ENGLISH_MONTHS)
    return False


# Month names an unmarked date may use besides the French ones of `parse_date`.
_ENGLISH_MONTHS = frozenset(
    {
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    }
)
# How many words of its argument a command takes at most on an unmarked line.
_MOST_WORDS = {ArgumentKind.DATE: 4}


def _takes(name: CommandName, words: list[str], written: list[str]) -> str | None:
    """What follows the command word, when it is only what the command takes: its argument
    as written ("" for none), to put in the marked form; None when the line is a sentence."""
    kind = _SPEC_BY_NAME[name].argument
    argument: list[str] = []
    names = 0
    for word, as_written in zip(words, written, strict=True):
        if not word or word in FILLERS:
            continue
        shown = as_written.strip(_PUNCTUATION)
        if _is_argument(kind, word) and len(argument) < _MOST_WORDS.get(kind, 1):
            argument.append(shown.upper() if _REFERENCE.match(shown.upper()) else shown)
        elif (
            name is CommandName.ASSIGN
            and names < 3
            and _NAME_WORD.match(shown)
            and shown[0].isupper()
        ):
            names += 1  # "Assigner Sophie Lavoie": a colleague, by name
        else:
            return None
    return " ".join(argument)


def _parts(piece: str) -> list[str]:
    """A word of an unmarked line, cut at its hyphens unless it is a reference or an address
    ("réponse-type" is two words, "MRI-2025-00012" one)."""
    bare = piece.strip(_PUNCTUATION)
    parts = bare.split("-")
    if len(parts) == 1 or not all(part.isalpha() for part in parts):
        return [piece]  # "MRI-2025-00012", "2025-11-20", "x-y@z": one word
    return parts


def unmarked_command(line: str) -> UnmarkedCommand | None:
    """The command a first line of text looks like when it is a command left unmarked
    (module docstring, "The safety net"), or None: the line is prose."""
    written = line.strip()
    if written.endswith(",") and written[:1] not in ("#", "/"):
        return None  # "Marge,", "Madame,": a salutation
    pieces = [
        part
        for piece in re.split(rf"(?:{SPACE}|:)+", written.lstrip("#/").strip())
        for part in _parts(piece)
        if part.strip(_PUNCTUATION)
    ]
    words = [fold(piece).strip(_PUNCTUATION) for piece in pieces]
    while words and words[0] in FILLERS - {"interne", "internal"}:
        words, pieces = words[1:], pieces[1:]  # "SVP fermer", "Please close"
    if not words:
        return None
    for opening, meant in _INTERNAL_OPENINGS:
        if tuple(words[: len(opening)]) == opening:
            english = opening[0] in _ENGLISH_WORDS
            return UnmarkedCommand(written, meant.value, _marked_form(meant, english, ""))
    phrase = _command_phrase(words)
    if phrase is not None:
        name, size, known = *phrase, words[0]
    else:
        single = _command_word(words[0])
        if single is None:
            return None
        (name, known), size = single, 1
    argument = _takes(name, words[size:], pieces[size:])
    if argument is None:
        return None
    marked = _marked_form(name, known in _ENGLISH_WORDS, argument)
    return UnmarkedCommand(written, name.value, marked)


def _unmarked_canned(line: str) -> UnmarkedCommand | None:
    """A line of the text that is only a canned answer left unmarked ("réponse type :
    bourses"): it would reach the citizen as written instead of the answer."""
    found = unmarked_command(line)
    if found is None or found.command != CommandName.CANNED.value:
        return None
    return found


# --- The whole reply -------------------------------------------------------------------------


def _body_lines(
    body_lines: list[str],
) -> tuple[list[str | Command], list[CommandError], list[UnmarkedCommand]]:
    """The text cut at its canned-answer lines (text pieces and `réponse type` commands), the
    errors of its marked lines, and its unmarked canned-answer lines."""
    pieces: list[str | Command] = []
    errors: list[CommandError] = []
    unmarked: list[UnmarkedCommand] = []
    text: list[str] = []
    for line in body_lines:
        read = read_command_line(line)
        if read is None:
            canned = _unmarked_canned(line)
            if canned is not None:
                unmarked.append(canned)
            text.append(line)
            continue
        called = read.name.value if isinstance(read, Command) else read.command
        if called == CommandName.CANNED.value:
            if isinstance(read, CommandError):
                errors.append(read)
                continue
            assert isinstance(read, Command)
            pieces.extend(("\n".join(text).strip("\n"), read))
            text = []
            continue
        word = _MARKED_LINE.match(line.strip())
        assert word is not None  # read_command_line found a marked line
        if called or _command_word(fold(word.group("token")).rstrip(".!")) is not None:
            errors.append(CommandError(line.strip(), "misplaced_command", command=called))
            continue
        text.append(line)  # "#MRIF": a hashtag, not a command
    pieces.append("\n".join(text).strip("\n"))
    kept = [piece for piece in pieces if not isinstance(piece, str) or piece.strip()]
    return kept, errors, unmarked


def parse_commands(text: str) -> StaffMessage:
    """The marked commands at the very top of the new text (blank lines before and between
    them skipped), one per line, French or English, case- and accent-insensitive ("#fermer",
    "/close", "#attente: il manque votre formulaire", "#catégorie plainte",
    "#entrevue 2025-11-20"); the text starts at the first line that is not marked. A marked
    line whose word is unknown, or a known command with a missing or malformed argument (bad
    date, bad address, unknown category), is an error; so is a marked command below the top
    (`misplaced_command`), except a canned answer, kept in place in `pieces`. Dates are
    normalised to ISO. Repeated commands are all kept.

    `unmarked` lists the text's first line when it looks like a command left unmarked
    (`unmarked_command`) and any line that is only an unmarked canned answer; it stays empty
    for an internal note (`#note`) and after `texte :`."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    body_start = len(lines)
    escaped = False
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        read = read_command_line(line)
        if read is None:
            body_start = index
            marker = _TEXT_MARKER.match(line)
            if marker is not None:
                lines[index] = marker.group("rest").strip()
                escaped = True
            break
        if isinstance(read, Command):
            commands.append(read)
        else:
            errors.append(read)
    body_lines = lines[body_start:]
    found, body_errors, unmarked = _body_lines(body_lines)
    errors.extend(body_errors)
    first = next((line for line in body_lines if line.strip()), "")
    meant = unmarked_command(first) if first and not escaped else None
    if meant is not None and all(meant.line != item.line for item in unmarked):
        unmarked.insert(0, meant)
    if escaped:
        unmarked = [item for item in unmarked if item.line != first.strip()]
    if any(command.name is CommandName.NOTE for command in commands):
        unmarked = []  # an internal note reaches no citizen
    in_body = [piece for piece in found if isinstance(piece, Command)]
    at_top = [command for command in commands if command.name is CommandName.CANNED]
    pieces: tuple[str | Command, ...] = ()
    if at_top or in_body:
        pieces = (*at_top, *found)
        commands.extend(in_body)
        body = "\n\n".join(piece for piece in found if isinstance(piece, str)).strip()
    else:
        body = "\n".join(body_lines).strip()
    return StaffMessage(
        commands=tuple(commands),
        errors=tuple(errors),
        body=body,
        pieces=pieces,
        unmarked=tuple(unmarked),
    )
