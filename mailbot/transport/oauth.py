"""OAuth2 access tokens for the IMAP and SMTP logins (effects: HTTP to the token provider).

    TokenSource.token(now) -> AccessToken      cached in memory, renewed before it expires
    TokenSource.invalidate()                   forget it (a server refused it)

One source per provider, each a `CachedTokens` around a fetch function:

    microsoft   MSAL's ConfidentialClientApplication, client-credentials flow (a client secret
                or a certificate); the authority host is configurable for sovereign clouds
    google      google-auth's service-account credentials with domain-wide delegation; the
                mailbox is the subject, so there is one source per mailbox
    generic     RFC 6749 section 4.4 client credentials against a configured token endpoint

Time comes only from the `now` given to `token()`. A provider's refusal becomes a TokenError
whose message says what to fix (bad secret, unknown tenant, consent missing...); secrets and
tokens never appear in a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from mailbot.errors import ConfigError, MissingDependency, TokenError
from mailbot.settings import AuthSettings, secret
from mailbot.transport.neterrors import describe

log = logging.getLogger(__name__)

# Renew this long before expiry (a quarter of the lifetime for short-lived tokens), so a login
# never presents a token that expires while the server checks it.
RENEW_MARGIN = timedelta(minutes=5)
# Google documents one hour for service-account access tokens; google-auth computes its own
# expiry from the system clock, which mailbot never reads outside its clock.
GOOGLE_TOKEN_LIFETIME = timedelta(hours=1)
# RFC 6749 makes expires_in optional; without it, assume a short life rather than a long one.
DEFAULT_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and the instant after which it must not be used."""

    value: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Grant:
    """What a provider answered: a token and how long it lives."""

    value: str = field(repr=False)
    lifetime: timedelta


class TokenSource(Protocol):
    """Where a login gets its token; `description` names the authority and client, no secret."""

    @property
    def description(self) -> str: ...

    def token(self, now: datetime) -> AccessToken: ...

    def invalidate(self) -> None: ...


class CachedTokens:
    """A token source: `fetch` asks the provider; the answer is kept until shortly before it
    expires, or until `invalidate()`."""

    def __init__(self, fetch: Callable[[], Grant], description: str) -> None:
        self._fetch = fetch
        self._description = description
        self._cached: AccessToken | None = None
        self._renew_at: datetime | None = None
        self.fetched = 0  # how many tokens the provider gave (the check and tests show it)

    def __repr__(self) -> str:
        return f"CachedTokens({self._description!r})"

    @property
    def description(self) -> str:
        return self._description

    def token(self, now: datetime) -> AccessToken:
        if self._cached is not None and self._renew_at is not None and now < self._renew_at:
            return self._cached
        grant = self._fetch()
        lifetime = max(grant.lifetime, timedelta(0))
        self._cached = AccessToken(grant.value, now + lifetime)
        self._renew_at = now + lifetime - min(RENEW_MARGIN, lifetime / 4)
        self.fetched += 1
        log.info(
            "OAuth2 token obtained from %s, valid %d s",
            self._description,
            int(lifetime.total_seconds()),
        )
        return self._cached

    def invalidate(self) -> None:
        self._cached = None
        self._renew_at = None


def build_token_source(
    auth: AuthSettings,
    subject: str,
    environ: Mapping[str, str],
    *,
    where: str,
    timeout: float = 30.0,
    http_session: Any = None,
) -> CachedTokens:
    """The token source `auth` describes; `subject` is the mailbox (Google's subject).

    `where` names the configuration section in messages ("[imap.auth]"). `http_session` is a
    `requests.Session` for MSAL and google-auth (tests mount a fake transport on it).
    """
    if auth.provider == "microsoft":
        return _microsoft(auth, environ, where, timeout, http_session)
    if auth.provider == "google":
        return _google(auth, subject, where, http_session)
    if auth.provider == "generic":
        client_secret = secret(environ, auth.client_secret_env, f"{where} client_secret_env")
        fetch = _client_credentials_fetch(
            auth.token_endpoint, auth.client_id, client_secret, auth.scopes, timeout
        )
        return CachedTokens(fetch, f"{auth.token_endpoint}, client {auth.client_id}")
    raise ConfigError(f'{where}: method = "oauth2" needs a provider')


# --- Microsoft Entra ID (MSAL) ---------------------------------------------------------------

# AADSTS codes an administrator meets when setting the app up, and what each one means.
MICROSOFT_ERRORS: Mapping[int, str] = {
    7000215: "invalid client secret: the value in the secret's environment variable is wrong "
    "(copy the secret's Value, not its ID)",
    7000222: "the client secret has expired: create a new one in the app registration",
    700016: "application not found in this tenant: check client_id and tenant_id, and that an "
    "administrator consented to the app",
    90002: "unknown tenant: check tenant_id (the directory ID of the Microsoft 365 tenant) and "
    "the authority host",
    900023: "tenant_id is not a valid tenant ID or domain",
    65001: "admin consent missing: grant admin consent for IMAP.AccessAsApp and SMTP.SendAsApp",
    7000229: "the app has no service principal in the tenant: grant admin consent, then run "
    "New-ServicePrincipal in Exchange Online PowerShell",
    500011: "Office 365 Exchange Online is not found in the tenant: check the scope and the "
    "authority host (sovereign clouds have their own)",
    70011: "invalid scope: use https://outlook.office365.com/.default",
    700027: "the certificate was refused: upload the certificate (public part) to the app "
    "registration and check its thumbprint",
    7000112: "the application is disabled in the tenant",
    53003: "blocked by a Conditional Access policy",
    50053: "the account is locked or sign-in is blocked",
}
_AADSTS = re.compile(r"AADSTS(\d+)")


def explain_microsoft_error(result: Mapping[str, Any]) -> str:
    """A reason an administrator can act on, from MSAL's error result (no secret in it)."""
    codes = [int(code) for code in result.get("error_codes") or () if isinstance(code, int)]
    description = str(result.get("error_description") or "")
    codes += [int(code) for code in _AADSTS.findall(description) if int(code) not in codes]
    for code in codes:
        if code in MICROSOFT_ERRORS:
            return f"{MICROSOFT_ERRORS[code]} (AADSTS{code})"
    first = description.split("\n", 1)[0].split(". ", 1)[0][:200]
    error = str(result.get("error") or "error")
    return f"{error}: {first}" if first else error


def _microsoft(
    auth: AuthSettings,
    environ: Mapping[str, str],
    where: str,
    timeout: float,
    http_session: Any,
) -> CachedTokens:
    try:
        import msal
        import requests
    except ImportError as exc:
        raise MissingDependency(
            f'{where}: provider = "microsoft" needs MSAL: install mailbot with the '
            '"microsoft" extra (pip install "mailbot[microsoft]")'
        ) from exc
    credential: str | dict[str, str]
    if auth.client_secret_env:
        credential = secret(environ, auth.client_secret_env, f"{where} client_secret_env")
    else:
        credential = _certificate_credential(auth, environ, where)
    authority = f"https://{auth.authority_host}/{auth.tenant_id}"
    session = http_session or requests.Session()
    scopes = list(auth.scopes)
    application: Any = None

    def fetch() -> Grant:
        nonlocal application
        try:
            if application is None:
                application = msal.ConfidentialClientApplication(
                    auth.client_id,
                    client_credential=credential,
                    authority=authority,
                    http_client=session,
                    timeout=timeout,
                    token_cache=msal.TokenCache(),
                )
            # Our cache is the only one: MSAL's own would judge expiry by the system clock.
            cache = application.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)
            result = application.acquire_token_for_client(scopes=scopes)
        except ValueError as exc:
            # MSAL raises while discovering the authority: an unknown tenant or host.
            raise TokenError(f"{authority}: {_explain_discovery(str(exc))}") from None
        except requests.RequestException as exc:
            raise TokenError(f"{authority} unreachable: {describe(exc, os.environ)}") from None
        if "access_token" not in result:
            raise TokenError(
                f"{authority}, client {auth.client_id}: {explain_microsoft_error(result)}"
            )
        return Grant(str(result["access_token"]), timedelta(seconds=int(result["expires_in"])))

    return CachedTokens(fetch, f"{authority}, client {auth.client_id}")


def _explain_discovery(text: str) -> str:
    codes = [int(code) for code in _AADSTS.findall(text)]
    for code in codes:
        if code in MICROSOFT_ERRORS:
            return f"{MICROSOFT_ERRORS[code]} (AADSTS{code})"
    if "authority" in text.lower() or "tenant" in text.lower():
        return MICROSOFT_ERRORS[90002] + " (the authority's configuration could not be read)"
    return text.split("\n", 1)[0][:200]


def _certificate_credential(
    auth: AuthSettings, environ: Mapping[str, str], where: str
) -> dict[str, str]:
    """MSAL's certificate credential: the private key and the certificate (MSAL computes the
    SHA-256 thumbprint Entra ID expects from it)."""
    assert auth.certificate_file is not None and auth.private_key_file is not None
    try:
        certificate = auth.certificate_file.read_text()
        private_key = auth.private_key_file.read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {exc.filename}: {exc.strerror}") from exc
    if "BEGIN CERTIFICATE" not in certificate:
        raise ConfigError(f"{where}: certificate_file is not a PEM certificate")
    if "PRIVATE KEY" not in private_key:
        raise ConfigError(f"{where}: private_key_file is not a PEM private key")
    credential = {"private_key": private_key, "public_certificate": certificate}
    if auth.private_key_passphrase_env:
        credential["passphrase"] = secret(
            environ, auth.private_key_passphrase_env, f"{where} private_key_passphrase_env"
        )
    return credential


# --- Google Workspace (google-auth) ----------------------------------------------------------

GOOGLE_ERRORS: Mapping[str, str] = {
    "unauthorized_client": "domain-wide delegation is not granted to this service account's "
    "client ID for the scope (Admin console: Security > Access and data control > API "
    "controls > Domain-wide delegation)",
    "invalid_client": "the service account key was refused (deleted or disabled key)",
    "access_denied": "access denied by the Workspace administrator's policy",
    "admin_policy_enforced": "the Workspace administrator's policy forbids this access",
}


def explain_google_error(text: str) -> str:
    """A reason from google-auth's RefreshError text ("error: description")."""
    error, _, description = text.partition(":")
    error = error.strip()
    if error == "invalid_grant":
        if "invalid email" in description.lower() or "user id" in description.lower():
            return "the mailbox (subject) does not exist in the Workspace domain (invalid_grant)"
        return "the key was refused: deleted key, or the machine's clock is off (invalid_grant)"
    if error in GOOGLE_ERRORS:
        return f"{GOOGLE_ERRORS[error]} ({error})"
    return text.split("\n", 1)[0][:200]


def _google(auth: AuthSettings, subject: str, where: str, http_session: Any) -> CachedTokens:
    try:
        import requests
        from google.auth.exceptions import RefreshError, TransportError
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account
    except ImportError as exc:
        raise MissingDependency(
            f'{where}: provider = "google" needs google-auth: install mailbot with the '
            '"google" extra (pip install "mailbot[google]")'
        ) from exc
    assert auth.service_account_file is not None
    try:
        credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(auth.service_account_file), scopes=list(auth.scopes), subject=subject
        )
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read service_account_file: {exc.strerror}") from exc
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"{where}: service_account_file is not a service account key (JSON): "
            f"{type(exc).__name__}"
        ) from exc
    request = Request(http_session or requests.Session())
    client = credentials.service_account_email

    def fetch() -> Grant:
        try:
            credentials.refresh(request)
        except RefreshError as exc:
            raise TokenError(
                f"Google, service account {client} as {subject}: "
                f"{explain_google_error(str(exc.args[0]) if exc.args else '')}"
            ) from None
        except TransportError as exc:
            raise TokenError(
                f"Google token endpoint unreachable: {describe(exc, os.environ)}"
            ) from None
        return Grant(str(credentials.token), GOOGLE_TOKEN_LIFETIME)

    return CachedTokens(fetch, f"Google, service account {client} as {subject}")


# --- Any OAuth2 server: client credentials (RFC 6749 section 4.4) -----------------------------

OAUTH_ERRORS: Mapping[str, str] = {
    "invalid_client": "the client was refused: wrong client_id or secret, or the secret was "
    "revoked",
    "unauthorized_client": "this client may not use the client-credentials grant",
    "invalid_scope": "the scope was refused",
    "invalid_request": "the token request was refused as malformed",
}


def explain_oauth_error(error: str, description: str = "") -> str:
    """RFC 6749 section 5.2 error codes, in words."""
    reason = OAUTH_ERRORS.get(error)
    if reason:
        return f"{reason} ({error})"
    return f"{error}: {description[:200]}" if description else error or "refused"


def _client_credentials_fetch(
    endpoint: str,
    client_id: str,
    client_secret: str,
    scopes: tuple[str, ...],
    timeout: float,
) -> Callable[[], Grant]:
    # RFC 6749 section 2.3.1: HTTP Basic with the form-encoded id and secret.
    pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
    authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    fields = {"grant_type": "client_credentials"}
    if scopes:
        fields["scope"] = " ".join(scopes)
    body = urllib.parse.urlencode(fields).encode()
    context = ssl.create_default_context() if endpoint.startswith("https://") else None

    def fetch() -> Grant:
        request = urllib.request.Request(
            endpoint,
            data=body,
            method="POST",
            headers={
                "Authorization": authorization,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                answer = _json_object(response.read())
        except urllib.error.HTTPError as exc:
            answer = _json_object(exc.read())
            error = str(answer.get("error") or f"HTTP {exc.code}")
            raise TokenError(
                f"{endpoint}, client {client_id}: "
                f"{explain_oauth_error(error, str(answer.get('error_description') or ''))}"
            ) from None
        except (OSError, ValueError) as exc:
            raise TokenError(f"{endpoint} unreachable: {describe(exc, os.environ)}") from None
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenError(f"{endpoint}: the answer has no access_token")
        if str(answer.get("token_type", "bearer")).lower() != "bearer":
            raise TokenError(f"{endpoint}: token_type {answer.get('token_type')!r} is not Bearer")
        expires_in = answer.get("expires_in")
        lifetime = (
            timedelta(seconds=float(expires_in))
            if isinstance(expires_in, int | float | str) and str(expires_in).strip()
            else DEFAULT_LIFETIME
        )
        return Grant(token, lifetime)

    return fetch


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
