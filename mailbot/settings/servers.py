"""The servers mailbot talks to: IMAP and SMTP, or Microsoft Graph and its national clouds;
how it logs in to each (pure, but for `tls_context`, which loads the trusted certificates).

Secrets are never here: `AuthSettings` and `SmtpSettings` name the environment variable that
holds each one, or the path of a key file (`mailbot.settings.loading.secret` reads them).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from mailbot.settings.base import Frozen, Mechanism, Provider, TlsMode

# Exchange Online takes one scope for IMAP and SMTP alike; Gmail one for all mail protocols.
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
_PROVIDER_KEYS: dict[str, frozenset[str]] = {
    "microsoft": frozenset(
        {
            "tenant_id",
            "client_id",
            "client_secret_env",
            "certificate_file",
            "private_key_file",
            "private_key_passphrase_env",
            "authority_host",
            "scope",
        }
    ),
    "google": frozenset({"service_account_file", "scope"}),
    "generic": frozenset({"token_endpoint", "client_id", "client_secret_env", "scope"}),
}
_LOOPBACK_HTTP = re.compile(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/")


class AuthSettings(Frozen):
    """How mailbot logs in to a server: a password (the default), or an OAuth2 access token
    sent with SASL XOAUTH2 or OAUTHBEARER (`mechanism = "auto"`: OAUTHBEARER when the server
    offers it, else XOAUTH2).

    Providers: `microsoft` (an Entra ID app registration, client-credentials flow, secret or
    certificate), `google` (a service account with domain-wide delegation; the mailbox is the
    subject) and `generic` (RFC 6749 client credentials against `token_endpoint`).
    """

    method: Literal["password", "oauth2"] = "password"
    provider: Provider | None = None
    mechanism: Mechanism = "auto"
    tenant_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")] | None = None
    client_id: str = ""
    client_secret_env: str = ""
    certificate_file: Path | None = None
    private_key_file: Path | None = None
    private_key_passphrase_env: str = ""
    # Sovereign clouds: login.microsoftonline.us (US Government), login.partner.microsoftonline.cn.
    authority_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+(:\d+)?$")] = (
        "login.microsoftonline.com"
    )
    token_endpoint: str = ""
    scope: str = ""
    service_account_file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthSettings:
        given = self.model_fields_set - {"method", "mechanism"}
        if self.method == "password":
            if given:
                raise ValueError(
                    f'{sorted(given)} only apply with method = "oauth2" (method is "password")'
                )
            return self
        if self.provider is None:
            raise ValueError(
                'method = "oauth2" needs provider = "microsoft", "google" or "generic"'
            )
        unused = sorted(given - {"provider"} - _PROVIDER_KEYS[self.provider])
        if unused:
            raise ValueError(f"{unused} are not used with provider = {self.provider!r}")
        missing = [key for key in self._required() if not getattr(self, key)]
        if missing:
            raise ValueError(f"provider = {self.provider!r} needs {missing}")
        if self.provider == "microsoft":
            has_secret = bool(self.client_secret_env)
            has_certificate = self.certificate_file is not None or self.private_key_file is not None
            if has_secret == has_certificate:
                raise ValueError(
                    "provider = 'microsoft' needs either client_secret_env or "
                    "certificate_file + private_key_file (one of the two)"
                )
            if has_certificate and (self.certificate_file is None or self.private_key_file is None):
                raise ValueError("certificate_file and private_key_file go together")
        if self.provider == "generic" and not (
            self.token_endpoint.startswith("https://") or _LOOPBACK_HTTP.match(self.token_endpoint)
        ):
            raise ValueError("token_endpoint must be an https:// URL (http:// only on loopback)")
        return self

    def _required(self) -> tuple[str, ...]:
        if self.provider == "microsoft":
            return ("tenant_id", "client_id")
        if self.provider == "google":
            return ("service_account_file",)
        return ("token_endpoint", "client_id", "client_secret_env")

    @property
    def is_oauth2(self) -> bool:
        return self.method == "oauth2"

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes asked for: `scope` (space-separated), else the provider's mail scope."""
        if self.scope.strip():
            return tuple(self.scope.split())
        if self.provider == "microsoft":
            return (MICROSOFT_SCOPE,)
        if self.provider == "google":
            return (GOOGLE_SCOPE,)
        return ()


class ServerSettings(Frozen):
    """An IMAP or SMTP server. Plain text (`none`) only when written explicitly."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    tls: TlsMode
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    verify_certificates: bool = True
    auth: AuthSettings = AuthSettings()

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name checks, unless the configuration turns them off."""
        context = ssl.create_default_context()
        if not self.verify_certificates:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class SmtpSettings(ServerSettings):
    """The relay mailbot sends through; login is optional (local relays take none)."""

    username: str | None = None
    password_env: str | None = None
    # Envelope sender of automatic mail: empty means the null sender `<>` (RFC 3834).
    bounce_address: str = ""
    # Sessions open at once while the outbox is flushed (each recipient's mail goes over
    # one of them, in order). Some hosted relays allow only a few per account.
    connections: Annotated[int, Field(ge=1, le=16)] = 3


@dataclass(frozen=True, slots=True)
class GraphCloud:
    """One of Microsoft Graph's deployments, and what mailbot relies on that it offers, as
    each API's reference page says ("This API is available in the following national cloud
    deployments")."""

    name: str
    label: str
    graph_host: str
    login_host: str
    # POST /messages/{id}/permanentDelete: global service only. Elsewhere erasure deletes
    # with DELETE, which leaves the copy recoverable in Recoverable Items for a while.
    permanent_delete: bool
    # GET /mailFolders/{id}/messages/delta (v1.0): not in China. There the watched folder is
    # listed at each poll instead.
    message_delta: bool
    # POST /messages/{id}/attachments/createUploadSession: not in US Government L4 and L5.
    # There an attachment of 3 MB or more cannot be sent through Graph.
    upload_sessions: bool


GRAPH_CLOUDS: dict[str, GraphCloud] = {
    cloud.name: cloud
    for cloud in (
        GraphCloud(
            "global",
            "the global service",
            "graph.microsoft.com",
            "login.microsoftonline.com",
            permanent_delete=True,
            message_delta=True,
            upload_sessions=True,
        ),
        GraphCloud(
            "us_gov_l4",
            "US Government L4 (GCC High)",
            "graph.microsoft.us",
            "login.microsoftonline.us",
            permanent_delete=False,
            message_delta=True,
            upload_sessions=False,
        ),
        GraphCloud(
            "us_gov_l5",
            "US Government L5 (DoD)",
            "dod-graph.microsoft.us",
            "login.microsoftonline.us",
            permanent_delete=False,
            message_delta=True,
            upload_sessions=False,
        ),
        GraphCloud(
            "china",
            "China operated by 21Vianet",
            "microsoftgraph.chinacloudapi.cn",
            "login.chinacloudapi.cn",
            permanent_delete=False,
            message_delta=False,
            upload_sessions=True,
        ),
    )
}
GraphCloudName = Literal["auto", "global", "us_gov_l4", "us_gov_l5", "china"]


def graph_cloud_of(base_url: str) -> GraphCloud | None:
    """The deployment whose Graph host `base_url` names; None for any other host (pure)."""
    host = base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return next((c for c in GRAPH_CLOUDS.values() if c.graph_host == host), None)


class GraphSettings(Frozen):
    """Microsoft Graph instead of IMAP and SMTP (mailbot/transport/graph.py): for tenants where
    IMAP, POP and SMTP AUTH are turned off. The application logs in with the
    client-credentials flow (`[graph.auth]`, provider "microsoft": a secret or a
    certificate), reads each watched folder with a delta query every `poll_seconds`, and
    sends drafts as the mailbox of the message's From address. The deployment (`cloud`) is
    read from `base_url`'s host; it says which of Graph's APIs are there (`GRAPH_CLOUDS`),
    and where tokens come from."""

    auth: AuthSettings
    # National clouds have their own (https://graph.microsoft.us/v1.0 ...); tests a local one.
    base_url: str = "https://graph.microsoft.com/v1.0"
    # "auto": the deployment `base_url` names (the global service for any other host, such
    # as a proxy); set it where `base_url` is not Microsoft's own host for a national cloud.
    cloud: GraphCloudName = "auto"
    poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    # Graph answers 429 beyond four requests at once per mailbox (Outlook's limit).
    concurrency: Annotated[int, Field(ge=1, le=4)] = 4
    # A throttled request (429, 503, 504) is retried this many times, waiting what
    # Retry-After says (else a growing, jittered delay), but never longer than max_wait.
    retries: Annotated[int, Field(ge=0, le=20)] = 6
    max_wait_seconds: Annotated[float, Field(gt=0)] = 120.0
    page_size: Annotated[int, Field(ge=1, le=1000)] = 50
    # Above this many bytes of MIME, a message is sent as a draft plus an upload session
    # (sendMail takes at most 4 MB of request, and base64 adds a third).
    sendmail_max_bytes: Annotated[int, Field(ge=1024, le=3 * 1024 * 1024)] = 3 * 1024 * 1024

    @model_validator(mode="after")
    def _usable(self) -> GraphSettings:
        if not self.auth.is_oauth2 or self.auth.provider == "google":
            raise ValueError('[graph.auth] needs method = "oauth2" and provider = "microsoft"')
        if not (self.base_url.startswith("https://") or _LOOPBACK_HTTP.match(self.base_url + "/")):
            raise ValueError("base_url must be an https:// URL (http:// only on loopback)")
        return self

    @property
    def deployment(self) -> GraphCloud:
        """The Graph deployment mailbot talks to: `cloud`, else the one `base_url` names,
        else the global service."""
        if self.cloud != "auto":
            return GRAPH_CLOUDS[self.cloud]
        return graph_cloud_of(self.base_url) or GRAPH_CLOUDS["global"]

    @property
    def scopes(self) -> tuple[str, ...]:
        """Graph's scope for Microsoft unless `scope` says otherwise: the `.default` scope of
        the deployment's own Graph host (a token for one cloud is refused by another)."""
        if self.auth.scope.strip() or self.auth.provider != "microsoft":
            return self.auth.scopes
        return (f"https://{self.deployment.graph_host}/.default",)

    @property
    def token_auth(self) -> AuthSettings:
        """`auth` with the scopes the token is asked for, and the deployment's login host
        unless `authority_host` is written."""
        update: dict[str, object] = {"scope": " ".join(self.scopes)}
        if self.auth.provider == "microsoft" and "authority_host" not in self.auth.model_fields_set:
            update["authority_host"] = self.deployment.login_host
        return self.auth.model_copy(update=update)


# Placeholders for [imap] and [smtp] where Graph carries the mail: never connected to.
UNUSED_IMAP = ServerSettings(host="unused.invalid", port=993, tls="tls")
UNUSED_SMTP = SmtpSettings(host="unused.invalid", port=465, tls="tls")
