"""Signed thread tokens in our own Message-IDs and reply addresses (pure).

A token ties a message to a ticket in a way a stranger cannot forge: it carries the ticket
reference, a random nonce and an HMAC-SHA256 of both under the organisation's signing key.
Our Message-IDs look like ``<mb.MRI-2025-00042.a1b2c3d4e5f6.SIGNATURE@mri.gouv.qc.ca>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

_SIGNATURE_CHARS = 20
# Matched without regard to case (addresses are compared, and stored, lower-cased); the
# parts are put back in their canonical case before the signature is checked.
_TOKEN = re.compile(
    r"mb\.(?P<ref>[A-Z][A-Z0-9]{0,9}-\d{4}-\d{5,})\.(?P<nonce>[a-z0-9]{12})\.(?P<sig>[a-z2-7]{20})",
    re.IGNORECASE,
)


def _parts(match: re.Match[str]) -> tuple[str, str, str]:
    ref, nonce, signature = match.group("ref", "nonce", "sig")
    return ref.upper(), nonce.lower(), signature.lower()


@dataclass(frozen=True, slots=True)
class ThreadToken:
    """A verified link from a message to a ticket."""

    ticket_ref: str
    nonce: str


def _signature(key: bytes, ticket_ref: str, nonce: str) -> str:
    digest = hmac.new(key, f"{ticket_ref}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:_SIGNATURE_CHARS]


def new_nonce() -> str:
    return secrets.token_hex(6)


def make_token(key: bytes, ticket_ref: str, nonce: str) -> str:
    """The token text, e.g. ``mb.MRI-2025-00042.a1b2c3d4e5f6.abcdefghijklmnopqrst``."""
    return f"mb.{ticket_ref}.{nonce}.{_signature(key, ticket_ref, nonce)}"


def make_message_id(key: bytes, ticket_ref: str, nonce: str, domain: str) -> str:
    """A Message-ID (with angle brackets) that carries a signed token for `ticket_ref`."""
    return f"<{make_token(key, ticket_ref, nonce)}@{domain}>"


def find_tokens(key: bytes, texts: Iterable[str]) -> tuple[ThreadToken, ...]:
    """Every token in `texts` whose signature verifies; forged or altered ones are ignored."""
    found: list[ThreadToken] = []
    for text in texts:
        for match in _TOKEN.finditer(text):
            ref, nonce, signature = _parts(match)
            if hmac.compare_digest(signature, _signature(key, ref, nonce)):
                token = ThreadToken(ticket_ref=ref, nonce=nonce)
                if token not in found:
                    found.append(token)
    return tuple(found)


def has_forged_token(key: bytes, texts: Iterable[str]) -> bool:
    """True when something shaped like our token fails its signature (an altered reply)."""
    for text in texts:
        for match in _TOKEN.finditer(text):
            ref, nonce, signature = _parts(match)
            if not hmac.compare_digest(signature, _signature(key, ref, nonce)):
                return True
    return False
