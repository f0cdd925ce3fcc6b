"""A throwaway OAuth2 mail system for the tests: an OAuth2 server, Dovecot that checks tokens
with it, and an SMTP server that takes AUTH XOAUTH2 only.

    OAuthServer     client-credentials token endpoint (RFC 6749 section 4.4) and token
                    introspection (RFC 7662) on a free loopback port, in a thread; short
                    token lifetimes and revocable secrets, as a provider would have them
    OAuthSandbox    the password sandbox of `mailbot.sandbox.servers`, except that Dovecot's passdb
    for
                    XOAUTH2 and OAUTHBEARER is its `oauth2` driver pointed at the introspection
                    endpoint (granted mailboxes only), and the SMTP server accepts XOAUTH2 only,
                    validating each token with the same introspection endpoint

A token's introspection answers the username `<client_id>@<domain>`, and Dovecot compares its
domain with the login's (`username_format = %d`): a client's token opens the mailboxes of its
organisation that are granted to it, the way an Exchange application access policy would.
Password logins still work for every user, so tests can read any mailbox as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mailbot.sandbox.servers import Sandbox, _SmtpHandler, free_port, password_auth_lines

SCOPE = "mail"


@dataclass
class _Client:
    secret: str
    domain: str


@dataclass
class _Token:
    client_id: str
    expires_at: float  # time.time()
    scope: str


@dataclass
class OAuthServer:
    """An OAuth2 authorisation server on 127.0.0.1 with one registered client per entry."""

    lifetime: float = 3600.0  # seconds a token lives
    port: int = 0
    _clients: dict[str, _Client] = field(default_factory=dict)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    issued: int = 0
    refused: int = 0
    introspected: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.url}/introspect"

    def register(self, client_id: str, secret: str, domain: str) -> None:
        with self._lock:
            self._clients[client_id] = _Client(secret, domain)

    def revoke_secret(self, client_id: str) -> None:
        """The administrator deleted the client's secret: its old value is refused."""
        with self._lock:
            self._clients[client_id].secret = secrets.token_urlsafe(24)

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def start(self) -> OAuthServer:
        self.port = self.port or free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def issue(self, client_id: str, client_secret: str, scope: str) -> dict[str, Any] | None:
        with self._lock:
            client = self._clients.get(client_id)
            if client is None or not secrets.compare_digest(client.secret, client_secret):
                self.refused += 1
                return None
            value = secrets.token_urlsafe(32)
            self._tokens[value] = _Token(client_id, time.time() + self.lifetime, scope)
            self.issued += 1
        return {
            "access_token": value,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": scope,
        }

    def introspect(self, value: str) -> dict[str, Any]:
        """RFC 7662: an inactive token is `{"active": false}` and nothing else."""
        with self._lock:
            self.introspected += 1
            token = self._tokens.get(value)
            if token is None or token.expires_at <= time.time():
                return {"active": False}
            client = self._clients[token.client_id]
            return {
                "active": True,
                "client_id": token.client_id,
                "username": f"{token.client_id}@{client.domain}",
                "scope": token.scope,
                "exp": int(token.expires_at),
                "token_type": "Bearer",
            }

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # a token in a request line must not reach the test output

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            return {key: values[0] for key, values in urllib.parse.parse_qs(body).items()}

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            form = self._form()
            if self.path == "/token":
                self._token(form)
            elif self.path == "/introspect":
                self._answer(200, server.introspect(form.get("token", "")))
            else:
                self._answer(404, {"error": "not_found"})

        def _token(self, form: dict[str, str]) -> None:
            client_id, client_secret = _client_authentication(self.headers.get("Authorization"))
            client_id = client_id or form.get("client_id", "")
            client_secret = client_secret or form.get("client_secret", "")
            if form.get("grant_type") != "client_credentials":
                self._answer(400, {"error": "unsupported_grant_type"})
                return
            scope = form.get("scope", "")
            if scope and SCOPE not in scope.split():
                self._answer(400, {"error": "invalid_scope"})
                return
            issued = server.issue(client_id, client_secret, scope or SCOPE)
            if issued is None:
                self._answer(401, {"error": "invalid_client", "error_description": "refused"})
                return
            self._answer(200, issued)

    return Handler


def _client_authentication(header: str | None) -> tuple[str, str]:
    """RFC 6749 section 2.3.1: HTTP Basic with form-encoded id and secret."""
    if not header or not header.lower().startswith("basic "):
        return "", ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, client_secret = decoded.partition(":")
    return urllib.parse.unquote(client_id), urllib.parse.unquote(client_secret)


def introspect(endpoint: str, token: str) -> dict[str, Any]:
    """Ask an RFC 7662 endpoint about `token` (the SMTP server's check)."""
    request = urllib.request.Request(
        endpoint, data=urllib.parse.urlencode({"token": token}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    return answer if isinstance(answer, dict) else {}


@dataclass
class _OAuthSmtpHandler(_SmtpHandler):
    """Delivers like the password sandbox; logs in with AUTH XOAUTH2 only (aiosmtpd calls
    `auth_XOAUTH2` for it), checking the token with the OAuth2 server."""

    introspection_endpoint: str = ""
    granted: frozenset[str] = frozenset()
    logins: list[str] = field(default_factory=list)
    refusals: int = 0

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        import asyncio

        from aiosmtpd.smtp import AuthResult

        if len(args) < 2:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Initial response")
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
        except (binascii.Error, UnicodeDecodeError):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad base64")
        values = dict(item.split("=", 1) for item in fields if "=" in item)
        user = values.get("user", "").lower()
        token = values.get("auth", "").removeprefix("Bearer ").strip()
        answer = await asyncio.get_running_loop().run_in_executor(
            None, introspect, self.introspection_endpoint, token
        )
        domain = str(answer.get("username", "")).rpartition("@")[2]
        if (
            answer.get("active") is True
            and SCOPE in str(answer.get("scope", "")).split()
            and user.rpartition("@")[2] == domain
            and user in self.granted
        ):
            self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        self.refusals += 1
        # Google's and Microsoft's XOAUTH2: an error challenge, then 535 after the client's
        # empty answer.
        await server.challenge_auth(
            json.dumps({"status": "401", "schemes": "bearer", "scope": SCOPE})
        )
        return AuthResult(success=False, handled=False)


@dataclass
class OAuthSandbox(Sandbox):
    """The sandbox with OAuth2 logins checked against `oauth`; `granted` are the mailboxes the
    application may open (IMAP) or send as (SMTP)."""

    oauth: OAuthServer | None = None
    granted: Sequence[str] = ()

    def auth_lines(self) -> list[str]:
        assert self.oauth is not None
        conf = self.root / "dovecot-oauth2.conf.ext"
        conf.write_text(
            "\n".join(
                [
                    f"introspection_url = {self.oauth.introspection_endpoint}",
                    "introspection_mode = post",
                    "username_attribute = username",
                    "username_format = %d",
                    "active_attribute = active",
                    "active_value = true",
                    f"scope = {SCOPE}",
                    "timeout_msecs = 10000",
                ]
            )
            + "\n"
        )
        # Users the application may not open: refused before the token is even checked.
        granted = {user.lower() for user in self.granted}
        (self.root / "not-granted").write_text(
            "".join(f"{user.lower()}::::::\n" for user in self.users if user.lower() not in granted)
        )
        lines = password_auth_lines(self.root)
        lines[0] = "auth_mechanisms = plain login xoauth2 oauthbearer"
        return [
            *lines[:1],
            "auth_failure_delay = 0",
            "passdb {",
            "  driver = passwd-file",
            "  deny = yes",
            "  mechanisms = xoauth2 oauthbearer",
            f"  args = {self.root}/not-granted",
            "}",
            "passdb {",
            "  driver = oauth2",
            "  mechanisms = xoauth2 oauthbearer",
            f"  args = {conf}",
            "}",
            *lines[1:3],
            "  mechanisms = plain login",
            *lines[3:],
        ]

    def smtp_options(self) -> dict[str, Any]:
        return {
            "auth_required": True,
            "auth_require_tls": False,
            "auth_exclude_mechanism": ["PLAIN", "LOGIN"],
        }

    def start_smtp(self) -> None:
        assert self.oauth is not None
        self.handler = self.handler or _OAuthSmtpHandler(
            self.root,
            frozenset(user.lower() for user in self.users),
            introspection_endpoint=self.oauth.introspection_endpoint,
            granted=frozenset(user.lower() for user in self.granted),
        )
        super().start_smtp()

    @property
    def smtp_handler(self) -> _OAuthSmtpHandler:
        assert isinstance(self.handler, _OAuthSmtpHandler)
        return self.handler

    def dovecot_log(self) -> str:
        path: Path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""
