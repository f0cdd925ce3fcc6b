"""Staff replies: who sent them, what they wrote, which commands they gave (pure).

Three steps, each a function that takes text and returns a frozen value:

  check_authentication(headers, sender_domain, authserv_id) -> AuthVerdict
      RFC 8601: only the topmost Authentication-Results header counts (our receiving server
      prepends it); it must carry our server's authserv-id and a dmarc=pass for the sender's
      domain or a dkim=pass aligned with it. Anything malformed fails, with a reason.
  extract_new_text(body, internal_markers=...) -> ReplyText
      cuts the quoted history (named rules in `CUT_RULES`); when the cut is doubtful the
      reply is marked uncertain (named rules in `DOUBT_RULES`): hold it and ask the sender.
  parse_commands(text) -> StaffMessage
      the command lines at the top of the new text ("fermer", "#attente: motif", ...) and
      the body below them.

Accidental commands: a line with a '#' or '/' prefix, or whose command word is followed by
':', is always read as a command (an unknown or malformed one is an error for the sender).
Without either, a command word counts only when it stands alone on its line or is followed
by an argument of the command's own shape (a date, one address, one category word); so
"Note that the office is closed" or "Attente de votre réponse" stay prose. Commands whose
argument is free text (attente, anglais, note) need the ':' or the prefix to take one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum, StrEnum

from mailbot.settings import Category
from mailbot.text import fold

# --- Authentication (RFC 8601) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    passed: bool
    reasons: tuple[str, ...]  # what passed, or every reason it failed, short English phrases


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One `method=result` of an Authentication-Results header, with its properties."""

    method: str  # lower-cased, version dropped: "dkim"
    result: str  # lower-cased: "pass"
    properties: tuple[tuple[str, str], ...]  # ("header.d", "example.org"), names lower-cased

    def property(self, name: str) -> str | None:
        for key, value in self.properties:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class AuthResults:
    """A parsed Authentication-Results header."""

    authserv_id: str
    results: tuple[AuthResult, ...]


class MalformedHeader(ValueError):
    """An Authentication-Results value that does not follow RFC 8601."""


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-")
_VALUE_STOP = frozenset(' \t\r\n();"')


class _Cursor:
    """A position in a header value; reads RFC 8601 pieces or raises MalformedHeader."""

    __slots__ = ("position", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def at_end(self) -> bool:
        return self.position >= len(self.text)

    def peek(self) -> str:
        return self.text[self.position] if not self.at_end() else ""

    def skip_cfws(self) -> None:
        """Skip white space and (nested) comments."""
        while not self.at_end():
            char = self.peek()
            if char in " \t\r\n":
                self.position += 1
            elif char == "(":
                self._skip_comment()
            else:
                return

    def _skip_comment(self) -> None:
        depth = 0
        while not self.at_end():
            char = self.peek()
            self.position += 1
            if char == "\\":
                self.position += 1
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return
        raise MalformedHeader("unclosed comment")

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = self.peek() or "end of header"
            raise MalformedHeader(f"expected {char!r}, found {found!r}")
        self.position += 1

    def name(self) -> str:
        start = self.position
        while not self.at_end() and self.peek() in _NAME_CHARS:
            self.position += 1
        return self.text[start : self.position]

    def value(self) -> str:
        """A token or a quoted string (RFC 2045 value), or an unquoted pvalue."""
        if self.peek() == '"':
            return self._quoted_string()
        start = self.position
        while not self.at_end() and self.peek() not in _VALUE_STOP:
            self.position += 1
        return self.text[start : self.position]

    def _quoted_string(self) -> str:
        self.position += 1
        chars: list[str] = []
        while not self.at_end():
            char = self.peek()
            self.position += 1
            if char == "\\" and not self.at_end():
                chars.append(self.peek())
                self.position += 1
            elif char == '"':
                return "".join(chars)
            else:
                chars.append(char)
        raise MalformedHeader("unclosed quoted string")


def parse_authentication_results(value: str) -> AuthResults:
    """Parse one Authentication-Results value; raise MalformedHeader when it is not RFC 8601.

    Properties must be `ptype.property=value` (or `reason=value`); a bare `action=none`
    (Microsoft 365) is not in the grammar and is refused rather than guessed at.
    """
    cursor = _Cursor(value)
    cursor.skip_cfws()
    authserv_id = cursor.value()
    if not authserv_id or "=" in authserv_id:
        raise MalformedHeader("no authserv-id")
    cursor.skip_cfws()
    if cursor.peek().isdigit():  # authres-version
        version = cursor.name()
        if not version.isdigit():
            raise MalformedHeader(f"bad version {version!r}")
        cursor.skip_cfws()
    results: list[AuthResult] = []
    saw_none = False
    while not cursor.at_end():
        cursor.expect(";")
        cursor.skip_cfws()
        if cursor.at_end() or cursor.peek() == ";":
            continue  # an empty result (a trailing ';'): nothing to read
        method = cursor.name().lower()
        cursor.skip_cfws()
        if method == "none" and (cursor.at_end() or cursor.peek() == ";"):
            saw_none = True
            continue
        if not method:
            raise MalformedHeader(f"unexpected {cursor.peek()!r}")
        cursor.expect("=")
        cursor.skip_cfws()
        result = cursor.name().lower()
        if not result:
            raise MalformedHeader(f"no result for {method}")
        results.append(
            AuthResult(
                method=method.split("/", 1)[0],
                result=result,
                properties=_properties(cursor, method),
            )
        )
    if saw_none and results:
        raise MalformedHeader("'none' mixed with results")
    return AuthResults(authserv_id=authserv_id, results=tuple(results))


def _properties(cursor: _Cursor, method: str) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    cursor.skip_cfws()
    while not cursor.at_end() and cursor.peek() != ";":
        name = cursor.name().lower()
        if not name:
            raise MalformedHeader(f"unexpected {cursor.peek()!r} in {method} result")
        if name != "reason" and ("." not in name.strip(".")):
            raise MalformedHeader(f"property {name!r} of {method} has no type")
        cursor.skip_cfws()
        cursor.expect("=")
        cursor.skip_cfws()
        quoted = cursor.peek() == '"'
        value = cursor.value()
        if not value and not quoted:
            raise MalformedHeader(f"no value for {name}")
        found.append((name, value))
        cursor.skip_cfws()
    return tuple(found)


def _domain(value: str) -> str:
    """The domain of `domain`, `@domain` or `local@domain`, lower-cased, root dot dropped."""
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def is_aligned(signing_domain: str, sender_domain: str) -> bool:
    """Relaxed alignment: equal, or the sender's domain is a subdomain of the signer's.

    A one-label signer ("ca") aligns with nothing: that would be a whole top-level domain.
    """
    if not signing_domain or "." not in signing_domain:
        return False
    return sender_domain == signing_domain or sender_domain.endswith("." + signing_domain)


def _judge_dmarc(result: AuthResult, sender_domain: str) -> tuple[bool, str]:
    if result.result != "pass":
        return False, f"dmarc={result.result}"
    header_from = result.property("header.from")
    if header_from is None:
        return False, "dmarc=pass without header.from"
    domain = _domain(header_from)
    if domain != sender_domain:
        return False, f"dmarc=pass for another domain ({domain})"
    return True, f"dmarc=pass for {domain}"


def _judge_dkim(result: AuthResult, sender_domain: str) -> tuple[bool, str]:
    if result.result != "pass":
        return False, f"dkim={result.result}"
    # d= is the signing domain; i= (within d=) only speaks when d= is absent.
    signer_d = result.property("header.d")
    signer = signer_d if signer_d is not None else result.property("header.i")
    if signer is None:
        return False, "dkim=pass without header.d"
    domain = _domain(signer)
    key = "header.d" if signer_d is not None else "header.i"
    if not is_aligned(domain, sender_domain):
        return False, f"dkim=pass for an unaligned domain ({key}={domain})"
    return True, f"dkim=pass aligned ({key}={domain})"


_JUDGES: dict[str, Callable[[AuthResult, str], tuple[bool, str]]] = {
    "dmarc": _judge_dmarc,
    "dkim": _judge_dkim,
}


def _first_token(value: str) -> str:
    """The authserv-id a header claims, read loosely (to own a malformed header)."""
    return re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].strip('"').lower()


# Results that are an explicit failure or error (RFC 8601 section 2.7): any of them, for any
# method, in our server's verdict holds the message, whatever else passed.
FAILING_RESULTS = frozenset({"fail", "permerror", "temperror", "policy"})


def check_authentication(
    headers: Sequence[tuple[str, str]], sender_domain: str, authserv_id: str
) -> AuthVerdict:
    """Our receiving server's verdict on a message, failing closed (RFC 8601).

    The verdict is the one Authentication-Results header whose authserv-id equals
    `authserv_id` (case-insensitive; an empty configured id means nothing can pass). Our
    server must remove any copy claiming its id from mail it receives (RFC 8601 section 5),
    so finding two means it did not, and nothing is trusted; a malformed header that starts
    with our id counts as ours and fails. In our verdict, any explicit failure or error
    (dkim=fail next to dkim=pass, dmarc=fail, spf=permerror...) fails. Otherwise pass =
    dmarc=pass with header.from equal to sender_domain, or dkim=pass whose header.d (or
    header.i domain) is aligned with sender_domain (relaxed alignment). Comments are ignored
    and properties may be quoted. `headers` is InboundMail.headers (lower-cased names)."""
    wanted_id = authserv_id.strip().lower()
    if not wanted_id:
        return AuthVerdict(False, ("no authserv-id configured",))
    sender = _domain(sender_domain)
    if not sender:
        return AuthVerdict(False, ("no sender domain",))
    ours: list[AuthResults] = []
    for name, value in headers:
        if name.lower() != "authentication-results":
            continue
        try:
            parsed = parse_authentication_results(value)
        except MalformedHeader as exc:
            if _first_token(value) == wanted_id:
                return AuthVerdict(False, (f"malformed Authentication-Results: {exc}",))
            continue
        if parsed.authserv_id.lower() == wanted_id:
            ours.append(parsed)
    if not ours:
        return AuthVerdict(False, (f"no Authentication-Results header from {wanted_id}",))
    if len(ours) > 1:
        return AuthVerdict(
            False, (f"{len(ours)} Authentication-Results headers claim {wanted_id}: ambiguous",)
        )
    [verdict] = ours
    failing = [f"{r.method}={r.result}" for r in verdict.results if r.result in FAILING_RESULTS]
    if failing:
        return AuthVerdict(False, tuple(f"explicit failure: {item}" for item in failing))
    passes: list[str] = []
    failures: list[str] = []
    for result in verdict.results:
        judge = _JUDGES.get(result.method)
        if judge is None:
            continue
        passed, reason = judge(result, sender)
        (passes if passed else failures).append(reason)
    if passes:
        return AuthVerdict(True, tuple(passes))
    return AuthVerdict(False, tuple(failures) or ("no dmarc or dkim result",))


# --- New text of a reply -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyText:
    text: str  # only the new text the staff member wrote (trailing whitespace trimmed)
    certain: bool  # False when the cut is doubtful: hold and ask the sender
    cut_by: str  # name of the rule that found the start of the quoted history, or "" if none
    doubts: tuple[str, ...] = ()  # names of the DOUBT_RULES that fired (empty when certain)


_SPACE = "[ \t\u00a0\u202f]"
_QUOTED_LINE = re.compile(r"^[ \t]*>")
_SEPARATOR_LINE = re.compile(
    rf"^{_SPACE}*-{{2,}}{_SPACE}*(?:original message|message d'origine|message original"
    rf"|courriel d'origine|forwarded message|message transf[ée]r[ée]){_SPACE}*-{{2,}}{_SPACE}*$",
    re.IGNORECASE,
)
_UNDERSCORE_LINE = re.compile(r"^[ \t]*_{20,}[ \t]*$")
_HEADER_FIELD = re.compile(
    rf"^[ \t*]*(?P<field>from|de|sent|envoy[ée]|date|to|à|cc|subject|objet){_SPACE}*\*?{_SPACE}*:",
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
    rf"(?:wrote|a{_SPACE}+[ée]crit){_SPACE}*:{_SPACE}*$",
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
    kept = _fold_spaces(reading.kept)
    return any(
        marker_text and marker_text in kept
        for marker_text in (_fold_spaces(marker) for marker in reading.internal_markers)
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
    #            bad_category | bad_date
    argument: str = ""  # what was written (the unknown word, the unreadable value)
    command: str = ""  # the CommandName value the line called, when known


@dataclass(frozen=True, slots=True)
class StaffMessage:
    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    body: str  # the text after the command lines (what may be relayed), stripped


class ArgumentKind(Enum):
    NONE = "none"  # fermer
    OPTIONAL_TEXT = "optional_text"  # note
    TEXT = "text"  # attente, anglais
    ADDRESS = "address"  # assigner
    CATEGORY = "category"  # catégorie
    DATE = "date"  # entrevue, comité


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: CommandName
    words: tuple[str, ...]  # accent-free, lower-case: the words that call it
    argument: ArgumentKind


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(CommandName.CLOSE, ("fermer", "close"), ArgumentKind.NONE),
    CommandSpec(CommandName.HOLD, ("attente", "hold"), ArgumentKind.TEXT),
    CommandSpec(CommandName.NOTE, ("note",), ArgumentKind.OPTIONAL_TEXT),
    CommandSpec(CommandName.ASSIGN, ("assigner", "assign"), ArgumentKind.ADDRESS),
    CommandSpec(CommandName.CATEGORY, ("categorie", "category"), ArgumentKind.CATEGORY),
    CommandSpec(CommandName.ENGLISH, ("anglais", "english"), ArgumentKind.TEXT),
    CommandSpec(CommandName.INTERVIEW, ("entrevue", "interview"), ArgumentKind.DATE),
    CommandSpec(CommandName.COMMITTEE, ("comite", "committee"), ArgumentKind.DATE),
)
_SPEC_BY_WORD = {word: spec for spec in COMMANDS for word in spec.words}

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

_COMMAND_LINE = re.compile(
    rf"^(?P<prefix>[#/])?{_SPACE}*(?P<token>[^\s:]+)(?P<rest>.*)$", re.DOTALL
)
_COLON = re.compile(rf"^{_SPACE}*:(?P<argument>.*)$", re.DOTALL)
_ADDRESS = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$"
)
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


def _fold_spaces(text: str) -> str:
    return " ".join(fold(text).split())


def parse_date(text: str) -> date | None:
    """2025-11-20, 20/11/2025 or "20 novembre 2025" ("le 1er déc. 2025"); None otherwise."""
    folded = _fold_spaces(text)
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
    if spec.argument is ArgumentKind.CATEGORY:
        return len(argument.split()) == 1
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
    colon = _COLON.match(rest)
    has_colon = colon is not None
    argument = (colon.group("argument") if colon else rest).strip()
    spec = _SPEC_BY_WORD.get(word)
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
    body. Dates are normalised to ISO. Repeated commands are all kept."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    body_start = len(lines)
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        read = read_command_line(line)
        if read is None:
            body_start = index
            break
        if isinstance(read, Command):
            commands.append(read)
        else:
            errors.append(read)
    body = "\n".join(lines[body_start:]).strip()
    return StaffMessage(commands=tuple(commands), errors=tuple(errors), body=body)
