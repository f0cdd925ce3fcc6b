"""Addresses read from header values, strictly or loosely (pure; never raises on malformed mail).

Two readings of the From header serve two purposes:

* `single_sender` is strict: any defect means "no address" (the CVE-2023-27043 trap). It
  decides whether mail is from staff, which grants power.
* `usable_address` is "the one usable address", extracted the way mature mail software does
  (an unquoted dot or comma in the display name, a stray separator, a trailing dot in the
  domain, an internationalised address): it is where an answer to a citizen goes. It is
  None when the header holds no address, or more than one distinct one (ambiguous).

Addresses are lower-cased whole: they compare without regard to case everywhere.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from mailbot.mail.decoding import decoded, flatten, raw_header

_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\]\\,;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
# The defect that says why the From address is refused (read by intake.decide).
FROM_REFUSED = "From address refused: "


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox; `address` is lower-cased whole (addresses compare without case)."""

    address: str
    display_name: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part can only be sent to over SMTPUTF8 (RFC 6531)."""
        return not self.address.isascii()


@lru_cache(maxsize=1024)
def parse_addresses(value: str) -> tuple[Address, ...] | None:
    """Strictly parse an address list; None when it has any defect. (Pure, and the same
    header is read several times per message: remembered.)"""
    if not value.strip():
        return ()
    try:
        header = email.policy.default.header_factory("to", value)
    except Exception:  # the header parser raises several types on hostile input
        return None
    if header.defects:
        return None
    found: list[Address] = []
    for group in header.groups:
        for item in group.addresses:
            spec = item.addr_spec
            if not _ADDR_SPEC.match(spec):
                return None
            found.append(
                Address(address=spec.lower(), display_name=flatten(item.display_name or "", 200))
            )
    return tuple(found)


# An address in angle brackets, and a bare one (no brackets anywhere in the header).
_ANGLE_ADDRESS = re.compile(r"<\s*([^<>\s]+@[^<>\s]+?)\s*>")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"]+@[^\s<>()\[\],;:\"]+")
_COMMENT = re.compile(r"\([^()]*\)")


# RFC 6761 special-use names that can never receive mail: an address there is refused, with
# this reason. The other reserved names (`test.`, `example.`, example.org, example.com, ...)
# are ordinary names to mail software (RFC 6761 sections 6.2 and 6.5): a ministry's test
# environment or pilot uses them, so they are answered like any other.
UNDELIVERABLE_SPECIAL_USE = {
    "invalid": "a name that is guaranteed never to exist (RFC 6761 section 6.4)",
    "localhost": "the sender's own machine, not a mail domain (RFC 6761 section 6.3)",
    "local": "a local-network (multicast DNS) name, not a mail domain (RFC 6762)",
    "onion": "a Tor onion service name, not reachable by ordinary mail (RFC 7686)",
    "arpa": "the Internet's infrastructure zone, not a mail domain (RFC 3172)",
}


def special_use_refusal(address: str) -> str | None:
    """Why `address` is refused because of its domain's RFC 6761 special-use name, or None."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    for name, why in UNDELIVERABLE_SPECIAL_USE.items():
        if domain == name or domain.endswith("." + name):
            return f"the address is at .{name}, {why}"
    return None


@lru_cache(maxsize=1024)
def normalise_address(candidate: str) -> str | None:
    """A deliverable address in its canonical form, or None: trailing dots of the domain
    dropped, international domains in their ASCII form when the local part is ASCII (no
    SMTPUTF8 needed then), lower-cased. `email_validator` does the syntax and IDNA work;
    `test_environment` makes it take `test.` names like any other (its list of special-use
    names refuses them by default), and the names that can never receive mail are refused
    here (`special_use_refusal`)."""
    text = candidate.strip().strip(".,;:").rstrip(".")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    if special_use_refusal(text) is not None:
        return None
    try:
        checked = validate_email(
            f"{local}@{domain.rstrip('.')}",
            check_deliverability=False,
            allow_smtputf8=True,
            test_environment=True,
        )
    except (EmailNotValidError, UnicodeError, ValueError):
        return None
    return str(checked.ascii_email or checked.normalized).lower()


def from_refusal(raw: str) -> str | None:
    """Why the addresses of a From header value (undecoded) are refused for their domain, or
    None: for the note on a request held without a usable reply address."""
    value = flatten(raw, 10_000)
    for candidate in (*_ANGLE_ADDRESS.findall(value), *_BARE_ADDRESS.findall(value)):
        reason = special_use_refusal(candidate.strip().strip(".,;:"))
        if reason is not None:
            return reason
    return None


def usable_address(raw: str) -> Address | None:
    """The one usable address of a From header value (undecoded), or None.

    A strictly valid single mailbox is taken as it is. Otherwise every address-like string,
    in angle brackets or bare, must name one and the same address (``J. Smith
    <js@example.org>``, ``Roy, Marie <m@example.org>``, ``<m@example.org>,``,
    ``m@example.org. (Marie)``). Addresses are looked for in the undecoded value, so an RFC
    2047 encoded word in a display name can never add one. Two different addresses
    (``victim@example.org <evil@example.net>``) are ambiguous: None, and a person decides.
    """
    value = flatten(raw, 10_000)
    strict = parse_addresses(value)
    if strict is not None and len(strict) == 1:
        address = normalise_address(strict[0].address)
        if address is not None:
            return Address(address=address, display_name=strict[0].display_name)
    bracketed = _ANGLE_ADDRESS.findall(value)
    outside = _COMMENT.sub(" ", _ANGLE_ADDRESS.sub(" ", value))
    found = {normalise_address(item) for item in (*bracketed, *_BARE_ADDRESS.findall(outside))}
    if len(found) != 1 or None in found:
        return None
    [address] = found
    assert address is not None
    if bracketed:
        name = value[: value.find("<")]
    else:
        comments = _COMMENT.findall(value)
        name = comments[0][1:-1] if comments else ""
    return Address(address=address, display_name=_decoded_name(name))


def addresses_in(text: str) -> frozenset[str]:
    """Every address a header value names, read loosely and normalised: for "was this
    mailbox among the recipients?", never for a decision that grants power."""
    candidates = [*_ANGLE_ADDRESS.findall(text), *_BARE_ADDRESS.findall(text)]
    return frozenset(a for a in map(normalise_address, candidates) if a is not None)


def _decoded_name(name: str) -> str:
    text = flatten(decoded(name), 200).strip(" \t,;:")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').strip()
    return text


def header_addresses(message: Message, name: str) -> tuple[Address, ...]:
    raw = raw_header(message, name)
    if raw is None:
        return ()
    return parse_addresses(flatten(raw, 10_000)) or ()


def single_sender(message: Message) -> Address | None:
    raw = raw_header(message, "From")
    if raw is None:
        return None
    parsed = parse_addresses(flatten(raw, 10_000))
    if not parsed or len(parsed) != 1:
        return None
    return parsed[0]
