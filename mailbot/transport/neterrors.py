"""What went wrong with a connection, in words an IT team can act on (pure).

Network libraries say it in their own ways: imaplib's server answers as Python bytes
(`b'[AUTHENTICATIONFAILED] Authentication failed.'`), requests' proxy and DNS failures as
`ConnectionError` wrapped three deep. `describe` finds what matters in an exception and its
causes: the server's own text, a DNS name that does not resolve, a proxy that refused or
could not be reached, a connection refused or timed out, a certificate problem.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Mapping

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_DNS_WORDS = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated with hostname",
    "failed to resolve",
    "nameresolutionerror",
    "getaddrinfo failed",
)
_PROXY_WORDS = ("proxyerror", "unable to connect to proxy", "tunnel connection failed", "proxy")


def server_text(value: object) -> str:
    """A server's answer as text: bytes decoded, a trailing newline dropped."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace").strip()
    return str(value).strip()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and exceptions carried in their arguments
    or as a `reason` (urllib3's MaxRetryError, urllib's URLError)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))


def proxy_in_use(environ: Mapping[str, str]) -> str | None:
    """The HTTPS proxy the token requests go through, from the environment, or None."""
    return next((environ[name] for name in PROXY_VARIABLES if environ.get(name)), None)


def describe(exc: BaseException, environ: Mapping[str, str] | None = None) -> str:
    """One line saying what went wrong, without a Python type name when a better word exists."""
    from mailbot.errors import MailbotError

    if isinstance(exc, MailbotError):  # already in mailbot's words
        return str(exc)
    chain = list(_chain(exc))
    words = " ".join(f"{type(e).__name__} {e}" for e in chain).lower()
    proxy = proxy_in_use(environ or {})
    if any(type(e).__name__ == "ProxyError" for e in chain) or (
        proxy is not None and any(word in words for word in _PROXY_WORDS)
    ):
        where = f" ({proxy})" if proxy else ""
        return f"the HTTPS proxy{where} failed or refused the connection: {_last_words(chain)}"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(w in words for w in _DNS_WORDS):
        return f"DNS: the host name does not resolve ({_last_words(chain)})"
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return f"TLS: the server's certificate was refused ({_last_words(chain)})"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"{_last_words(chain)} (nothing listens on that port, or a firewall refuses)"
    if any(isinstance(e, TimeoutError | socket.timeout) for e in chain) or "timed out" in words:
        return f"{_last_words(chain)}: no answer in time (a firewall may drop the connection)"
    return _last_words(chain)


def _last_words(chain: list[BaseException]) -> str:
    """The most specific readable message of the chain (its last non-empty one)."""
    for candidate in reversed(chain):
        code, message = getattr(candidate, "code", None), getattr(candidate, "message", None)
        if isinstance(code, int) and isinstance(message, str):  # an SMTP reply
            return f"{code} {message}"[:300]
        if isinstance(candidate, OSError) and candidate.filename and candidate.strerror:
            return f"{candidate.strerror}: {candidate.filename}"[:300]
        text = " ".join(server_text(arg) for arg in candidate.args if isinstance(arg, str | bytes))
        if text:
            return text[:300]
    return type(chain[0]).__name__
