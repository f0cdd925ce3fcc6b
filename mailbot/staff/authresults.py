"""Our receiving server's verdict on a message: RFC 8601 Authentication-Results (pure).

check_authentication(headers, sender_domain, authserv_id) -> AuthVerdict
    the one header carrying our server's authserv-id must say dmarc=pass for the sender's
    domain or dkim=pass aligned with it, with no explicit failure or error; anything
    missing, duplicated or malformed fails, with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
