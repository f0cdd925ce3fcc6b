"""The safety net: lines of a staff reply that look like a command written without its mark
(pure).

`unmarked_command` (for a command meant but left unmarked): the first line of
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

from mailbot.mail.text import SPACE, fold
from mailbot.staff.command_table import (
    ANSWER_NAME,
    CATEGORY_WORDS,
    COMMANDS,
    MONTHS,
    PHRASES,
    REFERENCE,
    ArgumentKind,
    CommandName,
    parse_address,
)


@dataclass(frozen=True, slots=True)
class UnmarkedCommand:
    """A line of the text that looks like a command written without its mark."""

    line: str  # the line as written
    command: str  # the CommandName value it looks like
    marked: str  # the marked form mailbot thinks was meant ("#fermer", "#note")


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


def command_word(word: str) -> tuple[CommandName, str] | None:
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
    for phrase, spec in PHRASES:
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
    if REFERENCE.match(word.upper()) is not None:
        return True
    if kind is ArgumentKind.ADDRESS:
        return parse_address(word) is not None
    if kind is ArgumentKind.CATEGORY:
        return word in CATEGORY_WORDS
    if kind is ArgumentKind.NAME:
        return ANSWER_NAME.match(word) is not None
    if kind is ArgumentKind.DATE:
        return word[:1].isdigit() or word.rstrip(".") in (*MONTHS, *_ENGLISH_MONTHS)
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
            argument.append(shown.upper() if REFERENCE.match(shown.upper()) else shown)
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
    (see the module docstring), or None: the line is prose."""
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
        single = command_word(words[0])
        if single is None:
            return None
        (name, known), size = single, 1
    argument = _takes(name, words[size:], pieces[size:])
    if argument is None:
        return None
    marked = _marked_form(name, known in _ENGLISH_WORDS, argument)
    return UnmarkedCommand(written, name.value, marked)


def unmarked_canned(line: str) -> UnmarkedCommand | None:
    """A line of the text that is only a canned answer left unmarked ("réponse type :
    bourses"): it would reach the citizen as written instead of the answer."""
    found = unmarked_command(line)
    if found is None or found.command != CommandName.CANNED.value:
        return None
    return found
