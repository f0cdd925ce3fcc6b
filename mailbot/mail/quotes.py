"""The new text of a staff reply: the quoted history cut off, with doubts named (pure).

extract_new_text(body, internal_markers=...) -> ReplyText
    cuts the quoted history (named rules in `CUT_RULES`); when the cut is doubtful the
    reply is marked uncertain (named rules in `DOUBT_RULES`): hold it and ask the sender.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailbot.mail.text import SPACE, fold, fold_spaces

# --- New text of a reply -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyText:
    text: str  # only the new text the staff member wrote (trailing whitespace trimmed)
    certain: bool  # False when the cut is doubtful: hold and ask the sender
    cut_by: str  # name of the rule that found the start of the quoted history, or "" if none
    doubts: tuple[str, ...] = ()  # names of the DOUBT_RULES that fired (empty when certain)


_QUOTED_LINE = re.compile(r"^[ \t]*>")
_SEPARATOR_LINE = re.compile(
    rf"^{SPACE}*-{{2,}}{SPACE}*(?:original message|message d'origine|message original"
    rf"|courriel d'origine|forwarded message|message transf[ée]r[ée]){SPACE}*-{{2,}}{SPACE}*$",
    re.IGNORECASE,
)
_UNDERSCORE_LINE = re.compile(r"^[ \t]*_{20,}[ \t]*$")
_HEADER_FIELD = re.compile(
    rf"^[ \t*]*(?P<field>from|de|sent|envoy[ée]|date|to|à|cc|subject|objet){SPACE}*\*?{SPACE}*:",
    re.IGNORECASE,
)
_FIELD_KINDS = {
    "from": "from",
    "de": "from",
    "sent": "sent",
    "envoyé": "sent",
    "envoye": "sent",
    "date": "sent",
    "to": "to",
    "à": "to",
    "cc": "cc",
    "subject": "subject",
    "objet": "subject",
}
_ATTRIBUTION_START = re.compile(r"^[ \t]*(?:>[ \t>]*)?(?:on|le)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(
    rf"(?:wrote|a{SPACE}+[ée]crit){SPACE}*:{SPACE}*$",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER = re.compile(r"^--[ \t]*$")
_HEADER_WINDOW = 6  # lines after "From:"/"De :" where the other header fields must appear
_ATTRIBUTION_LINES = 3  # Gmail wraps a long "Le ... a écrit :" over two or three lines
_ATTRIBUTION_CHARS = 300


def _field_kind(line: str) -> str | None:
    match = _HEADER_FIELD.match(line)
    return _FIELD_KINDS[match.group("field").lower()] if match else None


def _header_block_at(lines: Sequence[str], index: int) -> int:
    """Lines taken by an Outlook header block starting at `index` ("From:" then at least two
    of Sent/Date, To, Cc, Subject, in French or English), or 0."""
    if _field_kind(lines[index]) != "from":
        return 0
    kinds: set[str] = set()
    last = index
    for offset in range(1, _HEADER_WINDOW + 1):
        if index + offset >= len(lines):
            break
        kind = _field_kind(lines[index + offset])
        if kind is not None and kind != "from":
            kinds.add(kind)
            last = index + offset
    return last - index + 1 if len(kinds) >= 2 else 0


def _attribution_at(lines: Sequence[str], index: int) -> int:
    """Lines taken by "On ... wrote:" / "Le ... a écrit :" starting at `index`, or 0.

    The attribution carries a date, so it must hold a digit: prose that happens to start
    with "Le" and end with "a écrit :" two lines later does not.
    """
    if not _ATTRIBUTION_START.match(lines[index]):
        return 0
    joined = ""
    for count in range(1, _ATTRIBUTION_LINES + 1):
        if index + count > len(lines):
            return 0
        line = lines[index + count - 1]
        if not line.strip():
            return 0
        joined = f"{joined} {line.strip()}"
        if len(joined) > _ATTRIBUTION_CHARS:
            return 0
        if _ATTRIBUTION_END.search(line):
            return count if any(char.isdigit() for char in joined) else 0
    return 0


def _original_message_separator(lines: Sequence[str], index: int) -> int:
    """Outlook "-----Original Message-----" / "-----Message d'origine-----", Thunderbird
    "-------- Message original --------", forwarded-message lines."""
    return 1 if _SEPARATOR_LINE.match(lines[index]) else 0


def _outlook_separator(lines: Sequence[str], index: int) -> int:
    """Outlook's line of underscores, when a header block follows it (within two lines):
    alone, a line of underscores may be a signature's decoration."""
    if not _UNDERSCORE_LINE.match(lines[index]):
        return 0
    for offset in (1, 2):
        following = index + offset
        if following < len(lines) and (size := _header_block_at(lines, following)):
            return offset + size
    return 0


def _outlook_header_block(lines: Sequence[str], index: int) -> int:
    """Outlook's "De : / Envoyé : / À : / Objet :" or "From: / Sent: / To: / Subject:"."""
    return _header_block_at(lines, index)


def _attribution(lines: Sequence[str], index: int) -> int:
    """Gmail, Apple Mail and Thunderbird: "Le 3 nov. 2025 à 10:00, Josée <x@y> a écrit :"."""
    return _attribution_at(lines, index)


def _address_wrote_line(lines: Sequence[str], index: int) -> int:
    """A one-line "Name <x@y> wrote:" / "... a écrit :" without a leading "On"/"Le"."""
    line = lines[index]
    if "@" in line and len(line) <= _ATTRIBUTION_CHARS and _ATTRIBUTION_END.search(line):
        return 1
    return 0


def _quoted_block(lines: Sequence[str], index: int) -> int:
    """A '>'-quoted line with no header above it."""
    return 1 if _QUOTED_LINE.match(lines[index]) else 0


@dataclass(frozen=True, slots=True)
class CutRule:
    """Finds the start of the quoted history: `lines_at(lines, i)` is how many lines the
    quote header starting at line i takes (0: no header there)."""

    name: str
    lines_at: Callable[[Sequence[str], int], int]
    quote_follows: bool  # the history below is '>'-quoted, so inline answers can be seen


# Tested at each line, top down; at a given line the first rule that fires names the cut.
CUT_RULES: tuple[CutRule, ...] = (
    CutRule("original_message_separator", _original_message_separator, quote_follows=False),
    CutRule("outlook_separator", _outlook_separator, quote_follows=False),
    CutRule("outlook_header_block", _outlook_header_block, quote_follows=False),
    CutRule("attribution", _attribution, quote_follows=True),
    CutRule("address_wrote_line", _address_wrote_line, quote_follows=True),
    CutRule("quoted_block", _quoted_block, quote_follows=True),
)

_HEADER_RULES = tuple(rule for rule in CUT_RULES if rule.name != "quoted_block")


@dataclass(frozen=True, slots=True)
class _Cut:
    rule: CutRule
    start: int  # first line of the history
    header_lines: int  # lines taken by the quote header itself


def _find_cut(lines: Sequence[str]) -> _Cut | None:
    for index in range(len(lines)):
        for rule in CUT_RULES:
            size = rule.lines_at(lines, index)
            if size:
                header_lines = 0 if rule.name == "quoted_block" else size
                return _Cut(rule=rule, start=index, header_lines=header_lines)
    return None


@dataclass(frozen=True, slots=True)
class _QuoteShape:
    """What follows a '>'-quoted history: staff text between or below the quotes."""

    text_between_quotes: bool
    text_below_quote: bool


_NO_QUOTE_SHAPE = _QuoteShape(text_between_quotes=False, text_below_quote=False)


def _quote_shape(lines: Sequence[str]) -> _QuoteShape:
    """Read the history below a quote header or a first '>' line, down to any older header
    of another shape or a "-- " signature delimiter below the quote."""
    seen_quote = False
    text_after_quote = False
    between = False
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if _QUOTED_LINE.match(line):
            between = between or text_after_quote
            seen_quote = True
            continue
        if any(rule.lines_at(lines, index) for rule in _HEADER_RULES):
            break  # older history of another shape: not the sender's words
        if seen_quote and _SIGNATURE_DELIMITER.match(line):
            break  # a signature placed below the quote (a Thunderbird option)
        if seen_quote:
            text_after_quote = True
    return _QuoteShape(text_between_quotes=between, text_below_quote=text_after_quote)


@dataclass(frozen=True, slots=True)
class _Reading:
    """What the doubt rules look at."""

    body: str
    kept: str
    shape: _QuoteShape
    internal_markers: tuple[str, ...]


def _has_internal_marker(reading: _Reading) -> bool:
    """A marker of mailbot's internal staff notices is still in the kept text."""
    kept = fold_spaces(reading.kept)
    return any(
        marker_text and marker_text in kept
        for marker_text in (fold_spaces(marker) for marker in reading.internal_markers)
    )


def _inline_reply(reading: _Reading) -> bool:
    """Text after a quoted block, followed by more quotes: answers written between quotes."""
    return reading.shape.text_between_quotes


def _text_below_quote(reading: _Reading) -> bool:
    """Text below the last quoted block (and not a "-- " signature): a reply at the bottom,
    or a quote in the middle of the message with no header above it."""
    return reading.shape.text_below_quote and not reading.shape.text_between_quotes


def _nothing_to_relay(reading: _Reading) -> bool:
    return not reading.kept.strip() and bool(reading.body.strip())


_ANNOUNCED_INLINE = re.compile(
    r"\b(?:reponses?|commentaires?|answers?|comments?|replies)\b[^\n]{0,40}"
    r"(?:\ben (?:rouge|bleu|vert|couleur|gras)\b|\bin (?:red|blue|green|bold)\b|\binline\b"
    r"|\bdans (?:le|votre) (?:texte|courriel|message)\b|\ba meme (?:le|votre) (?:texte|courriel)\b"
    r"|\bentre les lignes\b)"
)


def _answers_announced_inline(reading: _Reading) -> bool:
    """The kept text says the answers are in the quoted message ("mes réponses en rouge")."""
    return bool(_ANNOUNCED_INLINE.search(fold(reading.kept)))


@dataclass(frozen=True, slots=True)
class DoubtRule:
    name: str
    applies: Callable[[_Reading], bool]


DOUBT_RULES: tuple[DoubtRule, ...] = (
    DoubtRule("internal_marker", _has_internal_marker),
    DoubtRule("inline_reply", _inline_reply),
    DoubtRule("text_below_quote", _text_below_quote),
    DoubtRule("nothing_to_relay", _nothing_to_relay),
    DoubtRule("answers_announced_inline", _answers_announced_inline),
)


def extract_new_text(body: str, *, internal_markers: Sequence[str] = ()) -> ReplyText:
    """Cut quoted history and everything below it: '>'-quoted blocks; French and English
    quote headers of Outlook ("-----Original Message-----", "-----Message d'origine-----",
    "De : ... / Envoyé : ... / À : ... / Objet :" blocks and "From: / Sent: / To: /
    Subject:" blocks, including Outlook's "________________________________" separator),
    Gmail ("Le lun. 3 nov. 2025, à 10 h 00, Josée <x@y> a écrit :" possibly wrapped over two
    lines; "On Mon, Nov 3, 2025 at 10:00 AM Jane <x@y> wrote:"), Apple Mail ("Le 3 nov. 2025
    à 10:00, Josée <x@y> a écrit :", "On Nov 3, 2025, at 10:00, Jane <x@y> wrote:"),
    Thunderbird. Signatures are kept (they are the staff member's own). Uncertain
    (certain=False) when: any of `internal_markers` still appears in the kept text; or no
    quote header is found but the text still contains '>'-quoted lines in the middle; or the
    kept text is empty while the body is not (nothing to relay); or inline replies
    interleaved with quotes (text after a quoted block followed by more quotes); or the kept
    text announces answers written inside the quoted message. `doubts` names the rules."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _find_cut(lines)
    if cut is None:
        kept_lines, shape = lines, _NO_QUOTE_SHAPE
    else:
        kept_lines = lines[: cut.start]
        history = lines[cut.start + cut.header_lines :]
        # Below an Outlook header the history is not '>'-quoted: answers there are invisible.
        shape = _quote_shape(history) if cut.rule.quote_follows else _NO_QUOTE_SHAPE
    kept = "\n".join(kept_lines).rstrip()
    reading = _Reading(body=body, kept=kept, shape=shape, internal_markers=tuple(internal_markers))
    doubts = tuple(rule.name for rule in DOUBT_RULES if rule.applies(reading))
    return ReplyText(
        text=kept, certain=not doubts, cut_by=cut.rule.name if cut else "", doubts=doubts
    )
