"""Logging in to the IMAP and SMTP servers: a password, or an OAuth2 access token over SASL
XOAUTH2 or OAUTHBEARER (effects: the connection handed in, and the token provider).

    Logins(settings, environ)          the credentials of every login; token sources built once
                                       and kept, so tokens are cached across passes
    login_imap(client, login, now)     an IMAPClient: LOGIN, or AUTHENTICATE with a token
    await login_smtp(smtp, login, now) an aiosmtplib client: AUTH with a password or a token

`mechanism = "auto"` takes OAUTHBEARER (RFC 7628) when the server advertises it, else XOAUTH2.
A refused token may have expired or been revoked on the server's side before ours: it is
forgotten and the login retried once with a fresh one. A fresh token refused as well means the
application may not open that mailbox, and the error says so.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiosmtplib
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailbot.errors import ConfigError, ImapError, SmtpError
from mailbot.settings import AuthSettings, MailboxSettings, Mechanism, Settings, secret
from mailbot.transport.oauth import AccessToken, CachedTokens, TokenSource, build_token_source

log = logging.getLogger(__name__)

NOT_GRANTED = (
    "a fresh OAuth2 token was refused too: the mailbox is not granted to the application "
    "(Microsoft 365: the service principal needs Add-MailboxPermission on it and must be "
    "inside the application access scope; Google: the subject must be a mailbox of the domain)"
)


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OAuthLogin:
    user: str
    tokens: TokenSource
    mechanism: Mechanism = "auto"


Login = PasswordLogin | OAuthLogin


class Logins:
    """The logins the settings describe. Token sources are made on first use (a missing
    secret is a ConfigError then) and kept for the life of the process."""

    def __init__(
        self, settings: Settings, environ: Mapping[str, str], http_session: Any = None
    ) -> None:
        self._settings = settings
        self._environ = environ
        self._http_session = http_session
        self._sources: dict[tuple[AuthSettings, str], CachedTokens] = {}

    def imap(self, mailbox: MailboxSettings) -> Login:
        auth = self._settings.imap.auth
        if not auth.is_oauth2:
            password = secret(
                self._environ, mailbox.password_env, f"IMAP password of mailbox {mailbox.name}"
            )
            return PasswordLogin(mailbox.login, password)
        source = self.token_source(auth, mailbox.login, "[imap.auth]")
        return OAuthLogin(mailbox.login, source, auth.mechanism)

    def smtp(self) -> Login | None:
        """The SMTP login, or None for a relay that takes none."""
        smtp = self._settings.smtp
        if smtp.auth.is_oauth2:
            assert smtp.username  # the settings require it
            source = self.token_source(smtp.auth, smtp.username, "[smtp.auth]")
            return OAuthLogin(smtp.username, source, smtp.auth.mechanism)
        if not smtp.username:
            return None
        return PasswordLogin(
            smtp.username, secret(self._environ, smtp.password_env, "SMTP password")
        )

    def graph(self) -> CachedTokens:
        """The application's token for Microsoft Graph (`[graph.auth]`)."""
        graph = self._settings.graph
        if graph is None:
            raise ConfigError("no [graph] section")
        key = (graph.token_auth, "")
        if key not in self._sources:
            self._sources[key] = build_token_source(
                graph.token_auth,
                "",
                self._environ,
                where="[graph.auth]",
                timeout=graph.timeout_seconds,
                http_session=self._http_session,
            )
        return self._sources[key]

    def token_source(self, auth: AuthSettings, subject: str, where: str) -> CachedTokens:
        # Microsoft and generic tokens are the application's, valid for every mailbox; a
        # Google token is issued for one subject (mailbox).
        key = (auth, subject if auth.provider == "google" else "")
        if key not in self._sources:
            server = self._settings.imap if where == "[imap.auth]" else self._settings.smtp
            self._sources[key] = build_token_source(
                auth,
                subject,
                self._environ,
                where=where,
                timeout=server.timeout_seconds,
                http_session=self._http_session,
            )
        return self._sources[key]


def choose_mechanism(wanted: Mechanism, offered: Iterable[str]) -> str:
    """'oauthbearer' or 'xoauth2': the configured one, or for `auto` OAUTHBEARER when offered."""
    if wanted != "auto":
        return wanted
    return "oauthbearer" if "OAUTHBEARER" in {m.upper() for m in offered} else "xoauth2"


def oauthbearer_response(user: str, token: AccessToken) -> bytes:
    """RFC 7628 section 3.1: a GS2 header naming the user, then the bearer token."""
    escaped = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={escaped},\x01auth=Bearer {token.value}\x01\x01".encode()


# --- IMAP ------------------------------------------------------------------------------------


def login_imap(client: IMAPClient, login: Login, now: datetime) -> None:
    """Log `client` in. A refusal raises imapclient's LoginError (password) or ImapError (a
    token refused twice); a token the provider would not give raises TokenError."""
    if isinstance(login, PasswordLogin):
        client.login(login.user, login.password)
        return
    offered = [
        capability.decode("ascii", "replace")[5:]
        for capability in client.capabilities()
        if capability.upper().startswith(b"AUTH=")
    ]
    mechanism = choose_mechanism(login.mechanism, offered)
    for attempt in (1, 2):
        token = login.tokens.token(now)
        try:
            if mechanism == "oauthbearer":
                client.oauthbearer_login(login.user, token.value)
            else:
                client.oauth2_login(login.user, token.value)
        except LoginError:
            if attempt == 2:
                raise ImapError(
                    f"IMAP {mechanism.upper()} as {login.user}: {NOT_GRANTED}"
                ) from None
            log.info("IMAP refused the cached OAuth2 token; retrying once with a fresh one")
            login.tokens.invalidate()
        else:
            return


# --- SMTP ------------------------------------------------------------------------------------


async def login_smtp(smtp: aiosmtplib.SMTP, login: Login | None, now: datetime) -> None:
    """Authenticate a connected aiosmtplib client (nothing to do for `None`). A refusal raises
    aiosmtplib's SMTPAuthenticationError (password) or SmtpError (a token refused twice)."""
    if login is None:
        return
    if isinstance(login, PasswordLogin):
        await smtp.login(login.user, login.password)
        return
    if smtp.last_ehlo_response is None:
        await smtp.ehlo()
    mechanism = choose_mechanism(login.mechanism, smtp.server_auth_methods)
    for attempt in (1, 2):
        token = login.tokens.token(now)
        try:
            if mechanism == "oauthbearer":
                await _auth_oauthbearer(smtp, login.user, token)
            else:
                # aiosmtplib speaks XOAUTH2 itself, including the error challenge.
                await smtp.auth_xoauth2(login.user, token.value)
        except aiosmtplib.SMTPAuthenticationError as exc:
            if attempt == 2:
                raise SmtpError(
                    f"SMTP {mechanism.upper()} as {login.user}: {exc.code} {NOT_GRANTED}"
                ) from None
            log.info("SMTP refused the cached OAuth2 token (%s); retrying once", exc.code)
            login.tokens.invalidate()
        else:
            return


async def _auth_oauthbearer(smtp: aiosmtplib.SMTP, user: str, token: AccessToken) -> None:
    encoded = base64.b64encode(oauthbearer_response(user, token))
    response = await smtp.execute_command(b"AUTH", b"OAUTHBEARER", encoded)
    if response.code == 334:
        # RFC 7628 section 3.2.3: the server sent its error; a lone %x01 ends the exchange.
        response = await smtp.execute_command(base64.b64encode(b"\x01"))
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)
