"""Configuration: one TOML file plus secrets from the environment, validated once, frozen.

Where the file is found: ``--config PATH``, else ``$MAILBOT_CONFIG``, else ``config/mailbot.toml``.
``$MAILBOT_DATABASE_URL`` overrides ``[database] url``. Secrets (passwords, OAuth2 client
secrets) are never in the file: the file names the environment variable that holds each one,
or the path of a key file.
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mailbot.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/mailbot.toml")
PACKAGE_ROOT = Path(__file__).resolve().parent
# The repository's templates/ in a checkout; the copy shipped inside the package otherwise.
DEFAULT_TEMPLATES_DIR = next(
    (
        path
        for path in (PACKAGE_ROOT.parent / "templates", PACKAGE_ROOT / "templates")
        if (path / "acknowledgement.txt").exists()
    ),
    PACKAGE_ROOT.parent / "templates",
)

TlsMode = Literal["tls", "starttls", "none"]
Category = Literal["information", "complaint", "internship", "cooperation"]
Provider = Literal["microsoft", "google", "generic"]
Mechanism = Literal["auto", "xoauth2", "oauthbearer"]

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
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_LOOPBACK_HTTP = re.compile(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSettings(_Frozen):
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


class ServerSettings(_Frozen):
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


class GraphSettings(_Frozen):
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


class CommitmentSettings(_Frozen):
    """One published commitment of the service declaration."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    label: str
    business_days: Annotated[int, Field(ge=0, le=365)]
    target: Annotated[float, Field(gt=0, le=1)]
    # What starts the clock: receipt of the request, or a date staff give (interview, committee).
    starts_at: Literal["receipt", "staff_date"] = "receipt"
    kind: Literal["acknowledgement", "reply", "result"] = "reply"
    # Counted "from the complete request": when staff declare the request incomplete, this
    # clock starts again from the receipt day of what completes it (docs/complete-request.md).
    from_complete_request: bool = False


DEFAULT_COMMITMENTS: tuple[CommitmentSettings, ...] = (
    CommitmentSettings(
        id="ack",
        label="Accusé de réception",
        business_days=2,
        target=0.95,
        kind="acknowledgement",
    ),
    CommitmentSettings(
        id="info_reply",
        label="Réponse à une demande de renseignements",
        business_days=10,
        target=0.90,
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="complaint_reply",
        label="Réponse à une plainte",
        business_days=15,
        target=0.85,
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="internship_ack",
        label="Accusé de réception d'une candidature de stage",
        business_days=2,
        target=0.95,
        kind="acknowledgement",
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="internship_result",
        label="Résultat de la sélection finale de stage",
        business_days=15,
        target=0.85,
        starts_at="staff_date",
        kind="result",
    ),
    CommitmentSettings(
        id="cooperation_ack",
        label="Accusé de réception d'un projet de coopération",
        business_days=2,
        target=0.95,
        kind="acknowledgement",
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="cooperation_result",
        label="Résultat de l'évaluation d'un projet de coopération",
        business_days=30,
        target=0.80,
        starts_at="staff_date",
        kind="result",
    ),
)


class CalendarSettings(_Frozen):
    """How business days are counted (see SERVICE-STANDARDS.md, "Counting business days")."""

    receipt_cutoff: time = time(16, 30)
    # The official yearly list wins: add or remove single dates, add extra closure days.
    add_holidays: tuple[date, ...] = ()
    remove_holidays: tuple[date, ...] = ()
    closure_days: tuple[date, ...] = ()


class OrganisationSettings(_Frozen):
    """Who mailbot speaks for; the templates use these lines."""

    name: str
    timezone: str = "America/Toronto"
    ticket_prefix: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")]
    office_hours: str
    contact_lines: tuple[str, ...] = ()
    website: str = ""
    # The domain of our own Message-IDs; the signing key makes tokens a stranger cannot forge.
    message_id_domain: str
    signing_key_env: str = "MAILBOT_SIGNING_KEY"
    # Staff are the addresses listed on mailboxes plus any address at these domains, and only
    # with a passing verdict from our own receiving server (its authserv-id, RFC 8601).
    staff_domains: tuple[str, ...] = ()
    authserv_id: str = ""
    # How a staff reply proves it came from inside: our receiving server's verdict
    # (`authentication_results`, with authserv_id), or Exchange Online's organisation headers
    # for mail sent inside the Microsoft 365 tenant `tenant_id` (`exchange_online`).
    staff_authentication: Literal["authentication_results", "exchange_online"] = (
        "authentication_results"
    )
    tenant_id: str = ""

    @model_validator(mode="after")
    def _tenant_for_exchange(self) -> OrganisationSettings:
        if self.staff_authentication == "exchange_online" and not _GUID.match(self.tenant_id):
            raise ValueError(
                'staff_authentication = "exchange_online" needs tenant_id, the directory '
                "(tenant) ID of the Microsoft 365 tenant, e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class MailboxSettings(_Frozen):
    """One watched mailbox (a queue): where its mail arrives and which standard applies."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    address: str
    display_name: str
    login: str
    # The IMAP password's variable; not used when [imap.auth] method = "oauth2".
    password_env: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Traites"
    quarantine_folder: str = "Quarantaine"
    # The journal of what mailbot sent (mailbot/recovery/journal.py): "append" puts a copy of each
    # message in `sent_folder` after the relay's 250 (generic IMAP servers); "server" when the
    # server keeps that copy itself for SMTP submission (Exchange Online, Gmail: a second
    # copy would be a duplicate); "none" keeps no journal (reconciliation then cannot tell
    # what was sent).
    sent_folder: str = "Sent"
    sent_copy: Literal["append", "server", "none"] = "append"
    # The erasure ledger (mailbot/recovery/ledger.py): a folder of mailbot's own in every
    # mailbox, where each erasure and retention batch leaves a non-personal entry before
    # anything is destroyed; a rebuild or a restore reads it back.
    ledger_folder: str = "Registre-mailbot"
    category: Category
    commitments: tuple[str, ...]
    staff: tuple[str, ...] = ()
    supervisors: tuple[str, ...] = ()
    # Where staff write internal notes on a ticket (Request Tracker's comment address): mail
    # to it is never relayed to a citizen. It must arrive in this mailbox's watched folder:
    # by default the queue's address with "+note" before the "@" (plus addressing, on by
    # default in Exchange Online and Gmail; Dovecot: recipient_delimiter = +).
    notes_address: str = ""

    @model_validator(mode="after")
    def _notes_address(self) -> MailboxSettings:
        address = (self.notes_address or default_notes_address(self.address)).strip().lower()
        if address.count("@") != 1 or address == self.address.strip().lower():
            raise ValueError(
                f"mailbox {self.name!r}: notes_address {self.notes_address!r} must be one "
                "address other than the queue's own (default: the address with +note before @)"
            )
        object.__setattr__(self, "notes_address", address)
        return self


def default_notes_address(address: str) -> str:
    """The queue's address with "+note" before the "@": renseignements+note@mri.gouv.qc.ca."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}+note@{domain}"


GRAPH_SENT_FOLDER = "Sent Items"


def journal_over_graph(mailboxes: tuple[MailboxSettings, ...]) -> tuple[MailboxSettings, ...]:
    """The mailboxes' journal under [graph]: Graph keeps the copy of every message it sends in
    the mailbox's well-known Sent Items folder itself, whatever its display name, so appending
    one would be a duplicate: `sent_copy = "append"` means "server" there, and `sent_folder` is
    Sent Items ("none" stays none)."""
    return tuple(
        mailbox
        if mailbox.sent_copy == "none"
        or (mailbox.sent_copy == "server" and mailbox.sent_folder == GRAPH_SENT_FOLDER)
        else mailbox.model_copy(update={"sent_copy": "server", "sent_folder": GRAPH_SENT_FOLDER})
        for mailbox in mailboxes
    )


class DatabaseSettings(_Frozen):
    url: str = ""


class DaemonSettings(_Frozen):
    """How the daemon watches and works: IMAP IDLE where the server offers it (RFC 2177),
    with a poll as the safety net; batches bounded by count and by bytes."""

    poll_seconds: Annotated[float, Field(gt=0)] = 60.0
    # Wake on new mail at once where the server offers IDLE; the poll still runs.
    idle: bool = True
    # Re-issue IDLE before the server's timeout: at most 29 minutes (RFC 2177); Exchange
    # Online and some firewalls drop quiet connections sooner, hence a lower default.
    idle_renew_minutes: Annotated[float, Field(gt=0, le=29)] = 9.0
    fetch_batch: Annotated[int, Field(ge=1, le=5000)] = 200
    # A batch is also cut at this many bytes; a larger message is fetched on its own.
    fetch_batch_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    max_message_bytes: Annotated[int, Field(ge=1024)] = 25 * 1024 * 1024
    # Over a backlog, a worker process parses the next messages while the pass stores the
    # ones before (mailbot/mail/parse_ahead.py); false: everything is parsed in the one process.
    parse_worker: bool = True
    outbox_max_attempts_hours: Annotated[float, Field(gt=0)] = 72.0
    # How long a worker holds the outbox rows it claimed: an instance killed mid-send leaves
    # its rows to the others after this. Longer than the slowest flush of a claim.
    outbox_lease_seconds: Annotated[float, Field(ge=5)] = 600.0


class LanguageSettings(_Frozen):
    """French always; an English version after it only where the policy allows it."""

    english_policy: Literal["never", "detected_english"] = "never"


class ClassificationSettings(_Frozen):
    """Named rules' parameters (see mailbot/intake/classify.py); every list is lower-case text."""

    # Robot senders never get an automatic answer (RELIABILITY.md); a regular expression
    # matched against the local part of the sender's address.
    robot_pattern: str = (
        r"^(mailer-daemon|postmaster|owner-.*|.*-request|.*-bounces?|bounces?(\+.*)?|"
        r"no-?reply.*|ne-?pas-?repondre.*|abuse|root|daemon|notifications?)$"
    )
    # Phrases that make a message sent to the information mailbox a complaint.
    complaint_phrases: tuple[str, ...] = (
        "plainte",
        "je porte plainte",
        "je désire porter plainte",
        "formuler une plainte",
        "insatisfait",
        "insatisfaite",
        "mécontent",
        "mécontente",
        "inacceptable",
        "complaint",
        "i wish to complain",
        "i want to complain",
        "file a complaint",
        "dissatisfied",
        "unacceptable",
    )
    internship_phrases: tuple[str, ...] = (
        "stage",
        "stagiaire",
        "candidature de stage",
        "internship",
        "intern application",
    )
    cooperation_phrases: tuple[str, ...] = (
        "appel de projets",
        "coopération",
        "solidarité internationale",
        "projet de coopération",
        "call for projects",
        "cooperation project",
    )
    # Automatic answers per address per office day, and the global brake.
    per_address_daily_limit: Annotated[int, Field(ge=0)] = 10
    burst_limit: Annotated[int, Field(ge=1)] = 100
    burst_window_minutes: Annotated[int, Field(ge=1)] = 10
    # A follow-up gets no new acknowledgement; at most this short notice.
    followup_notice: bool = False


class ReminderSettings(_Frozen):
    """Reminders before reply deadlines and the supervisors' morning digest."""

    # Business days before a reply deadline at which the assignee (else the queue's staff)
    # is reminded; 0 is the deadline day itself. A ticket past its deadline escalates.
    offsets: tuple[Annotated[int, Field(ge=0, le=30)], ...] = (3, 1, 0)
    # Reminders go out from this office time on the day they fall due.
    reminder_time: time = time(8, 0)
    digest_time: time = time(8, 30)
    # "Due soon" in the digest: within this many business days.
    digest_horizon_days: Annotated[int, Field(ge=1, le=30)] = 5
    enabled: bool = True


class RetentionPeriod(_Frozen):
    """How long after a ticket is closed its raw messages are destroyed, and how long until
    its personal information is anonymised (calendar days; anonymising destroys the raw
    messages too)."""

    raw_days: Annotated[int, Field(ge=0)] = 730
    anonymise_days: Annotated[int, Field(ge=0)] = 2555

    @model_validator(mode="after")
    def _ordered(self) -> RetentionPeriod:
        if self.anonymise_days < self.raw_days:
            raise ValueError("anonymise_days must not be shorter than raw_days")
        return self


class RetentionSettings(RetentionPeriod):
    """The retention schedule (calendrier de conservation): a default period, one per queue
    where it differs; what belongs to no ticket (quarantined or set-aside messages, mail to
    staff, bounce states) is destroyed `unlinked_days` after it was stored. The daemon runs
    it once a business day from `run_time` (office time), `batch_size` tickets a transaction."""

    # Written `[retention.queues.plaintes]`; held as (queue, period) pairs (hashable).
    queues: tuple[tuple[str, RetentionPeriod], ...] = ()
    unlinked_days: Annotated[int, Field(ge=0)] = 365
    run_time: time = time(2, 0)
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 100
    enabled: bool = True

    @field_validator("queues", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        return tuple(value.items()) if isinstance(value, Mapping) else value

    def period(self, queue: str) -> RetentionPeriod:
        return dict(self.queues).get(queue) or RetentionPeriod(
            raw_days=self.raw_days, anonymise_days=self.anonymise_days
        )


class LoggingSettings(_Frozen):
    """The log on standard error: `text` lines, or one JSON object a line for a log collector
    (mailbot/logformat.py); and the least severe level written (`-v` gives DEBUG)."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ObservabilitySettings(_Frozen):
    """`GET /healthz` and `GET /metrics` served by the daemon (mailbot/ops/observe.py); off
    unless `listen` is set. A server counts as reached when it answered within
    `healthy_polls` poll intervals (or its IDLE connection is alive)."""

    listen: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]*:\d{1,5}$")] | None = None
    healthy_polls: Annotated[float, Field(ge=1, le=100)] = 3.0

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str | None) -> str | None:
        if value is not None and not 0 < int(value.rpartition(":")[2]) <= 65535:
            raise ValueError("the port must be between 1 and 65535")
        return value

    @property
    def address(self) -> tuple[str, int]:
        """The host and port of `listen` (which is set)."""
        host, _, port = (self.listen or "").rpartition(":")
        return host.strip("[]"), int(port)


class AlertSettings(_Frozen):
    """Mail to the administrators (not citizens, not staff) when the service needs a person:
    one at the start of an episode and one at its end (mailbot/ops/alerts.py)."""

    admins: tuple[str, ...] = ()
    # A server that could not be reached for this long.
    unreachable_minutes: Annotated[float, Field(gt=0)] = 15.0
    # The oldest unsent outbox row older than this.
    outbox_age_minutes: Annotated[float, Field(gt=0)] = 60.0


class StaffSettings(_Frozen):
    """Limits on what one person does by email (mailbot/staff/limits.py): each person may
    close, refer, merge and relay at most `actions_per_hour` times in any hour; past that,
    their further acts are held until a supervisor releases them (`#libérer ADRESSE`)."""

    actions_per_hour: Annotated[int, Field(ge=1, le=1000)] = 20


class AnswersSettings(_Frozen):
    """Canned answers (mailbot/staff/answers.py): the folder of `NAME.fr.txt` / `NAME.en.txt`
    Jinja2 files the ministry maintains; none when unset."""

    dir: Path | None = None


class Settings(_Frozen):
    """The whole configuration, as validated at start-up."""

    organisation: OrganisationSettings
    imap: ServerSettings = UNUSED_IMAP
    smtp: SmtpSettings = UNUSED_SMTP
    mailboxes: tuple[MailboxSettings, ...]
    # Set: Microsoft Graph reads and sends instead of IMAP and SMTP.
    graph: GraphSettings | None = None
    database: DatabaseSettings = DatabaseSettings()
    daemon: DaemonSettings = DaemonSettings()
    calendar: CalendarSettings = CalendarSettings()
    language: LanguageSettings = LanguageSettings()
    classification: ClassificationSettings = ClassificationSettings()
    reminders: ReminderSettings = ReminderSettings()
    logging: LoggingSettings = LoggingSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    alerts: AlertSettings = AlertSettings()
    staff: StaffSettings = StaffSettings()
    retention: RetentionSettings = RetentionSettings()
    answers: AnswersSettings = AnswersSettings()
    commitments: tuple[CommitmentSettings, ...] = DEFAULT_COMMITMENTS
    data_dir: Path = Path("data")
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    # What the file sets that [graph] makes useless (`ignored_under_graph`), found as it is
    # read: the mailboxes' journal settings are rewritten for Graph just after.
    _ignored_under_graph: tuple[str, ...] = PrivateAttr(default=())

    @property
    def ignored_under_graph(self) -> tuple[str, ...]:
        """The settings the file writes that have no effect because [graph] carries the mail,
        each with why (`mailbot check` and the daemon's start name them)."""
        return self._ignored_under_graph

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.mailboxes:
            raise ValueError("at least one [[mailboxes]] entry is required")
        if self.graph is None:
            missing = [key for key in ("imap", "smtp") if key not in self.model_fields_set]
            if missing:
                raise ValueError(
                    ", ".join(f"missing key {key!r}" for key in missing)
                    + " (or a [graph] section: Microsoft Graph instead of IMAP and SMTP)"
                )
        names = [m.name for m in self.mailboxes]
        if len(set(names)) != len(names):
            raise ValueError(f"mailbox names must be unique, got {names}")
        known = {c.id for c in self.commitments}
        if len(known) != len(self.commitments):
            raise ValueError("commitment ids must be unique")
        for mailbox in self.mailboxes:
            if self.graph is None and self.imap.auth.is_oauth2 == bool(mailbox.password_env):
                raise ValueError(
                    f"mailbox {mailbox.name!r}: password_env is "
                    + (
                        'not used with [imap.auth] method = "oauth2"'
                        if mailbox.password_env
                        else 'required (or set [imap.auth] method = "oauth2")'
                    )
                )
            unknown = [c for c in mailbox.commitments if c not in known]
            if unknown:
                raise ValueError(
                    f"mailbox {mailbox.name!r} lists unknown commitment(s) {unknown}; "
                    f"known: {sorted(known)}"
                )
        unknown_queues = sorted({name for name, _ in self.retention.queues} - set(names))
        if unknown_queues:
            raise ValueError(f"[retention.queues] names unknown queue(s) {unknown_queues}")
        if self.smtp.auth.is_oauth2 and (not self.smtp.username or self.smtp.password_env):
            raise ValueError(
                '[smtp.auth] method = "oauth2" needs [smtp] username (the mailbox that sends) '
                "and no password_env"
            )
        if self.graph is not None:
            self._ignored_under_graph = graph_ignores(self)
            object.__setattr__(self, "mailboxes", journal_over_graph(self.mailboxes))
        return self

    def mailbox(self, name: str) -> MailboxSettings:
        for mailbox in self.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise KeyError(name)

    def mailbox_of_category(self, category: str) -> MailboxSettings | None:
        """The first mailbox whose queue handles `category`."""
        return next((m for m in self.mailboxes if m.category == category), None)

    def queue_for(self, category: str, arrived_in: str) -> MailboxSettings:
        """The queue that works a ticket: the mailbox of its category (a complaint found in the
        information mailbox goes to the complaints staff), else the one it arrived in. A
        KeyError names a mailbox no longer configured."""
        return self.mailbox_of_category(category) or self.mailbox(arrived_in)

    @property
    def own_addresses(self) -> frozenset[str]:
        """mailbot's own mailbox addresses, notes addresses included (lower-case): never
        people, never staff."""
        return frozenset(
            address for m in self.mailboxes for address in (m.address.lower(), m.notes_address)
        )

    @property
    def notes_addresses(self) -> frozenset[str]:
        """Every queue's notes address (lower-case)."""
        return frozenset(m.notes_address for m in self.mailboxes)

    @property
    def staff_addresses(self) -> frozenset[str]:
        """Every address listed as staff or supervisor of a queue (lower-case)."""
        return frozenset(a.lower() for m in self.mailboxes for a in (*m.staff, *m.supervisors))

    def is_staff(self, address: str) -> bool:
        """Whether `address` belongs to the ministry's staff (see `is_staff_address`)."""
        return is_staff_address(
            address,
            listed=self.staff_addresses,
            domains=frozenset(d.lower() for d in self.organisation.staff_domains),
            own=self.own_addresses,
        )

    def may_work_on(self, category: str, arrived_in: str, address: str) -> bool:
        """Complaints are confidential: only the complaint queue's own staff and supervisors
        may be given one. Any staff member may be given another ticket."""
        if category != "complaint":
            return True
        queue = self.queue_for(category, arrived_in)
        return address.lower() in {a.lower() for a in (*queue.staff, *queue.supervisors)}

    @property
    def restarting_commitments(self) -> tuple[str, ...]:
        """The commitments counted from the complete request (their clocks start again)."""
        return tuple(c.id for c in self.commitments if c.from_complete_request)

    def commitment(self, commitment_id: str) -> CommitmentSettings:
        for commitment in self.commitments:
            if commitment.id == commitment_id:
                return commitment
        raise KeyError(commitment_id)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'mailbot.db'}"


def graph_ignores(settings: Settings) -> tuple[str, ...]:
    """The settings written in the file that [graph] makes useless, each with why (pure:
    read from which keys the file set, `model_fields_set`, before the journal settings are
    rewritten for Graph)."""
    found: list[str] = []
    written = settings.model_fields_set
    if "imap" in written:
        found.append("[imap] (Graph reads the mailboxes)")
    if "smtp" in written:
        found.append("[smtp] (Graph sends)")
        if "bounce_address" in settings.smtp.model_fields_set:
            found.append(
                "[smtp] bounce_address (Graph sends without an envelope: bounces come back to "
                "the sending mailbox)"
            )
    daemon = settings.daemon.model_fields_set if "daemon" in written else set()
    if "idle" in daemon:
        found.append("[daemon] idle (no IDLE: [graph] poll_seconds runs the delta query)")
    if "idle_renew_minutes" in daemon:
        found.append("[daemon] idle_renew_minutes (no IDLE over Graph)")
    if "fetch_batch_bytes" in daemon:
        found.append("[daemon] fetch_batch_bytes (Graph gives no size before the download)")
    if settings.graph is not None and "mechanism" in settings.graph.auth.model_fields_set:
        found.append("[graph.auth] mechanism (a SASL mechanism: Graph takes a bearer token)")
    for mailbox in settings.mailboxes:
        where = f"[[mailboxes]] {mailbox.name}"
        mine = mailbox.model_fields_set
        if mailbox.password_env:
            found.append(f"{where} password_env (Graph logs in as the application)")
        if mailbox.login.lower() != mailbox.address.lower():
            found.append(f"{where} login (Graph opens the mailbox by its address)")
        if "sent_copy" in mine and mailbox.sent_copy == "append":
            found.append(f'{where} sent_copy = "append" (Graph keeps the Sent Items copy itself)')
        moved = mailbox.sent_copy != "none" and mailbox.sent_folder != GRAPH_SENT_FOLDER
        if "sent_folder" in mine and moved:
            found.append(f"{where} sent_folder (Graph keeps its copy in Sent Items)")
    return tuple(found)


def is_staff_address(
    address: str, *, listed: frozenset[str], domains: frozenset[str], own: frozenset[str]
) -> bool:
    """Staff: an address on a queue's staff or supervisor list, or at one of the staff domains;
    mailbot's own mailbox addresses sit in the staff domain but are not people."""
    address = address.lower()
    if address in own:
        return False
    return address in listed or address.rpartition("@")[2] in domains


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key {where!r}")
        elif item["type"] == "missing":
            lines.append(f"missing key {where!r}")
        else:
            lines.append(f"bad value for {where!r}: {item['msg']}")
    return "; ".join(lines)


def parse_settings(
    document: Mapping[str, object], *, base_dir: Path, environ: Mapping[str, str]
) -> Settings:
    """Validate a parsed TOML document; relative paths are taken from the file's project root."""
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"configuration: {_describe(exc)}") from exc
    updates: dict[str, object] = {}
    if not settings.data_dir.is_absolute():
        updates["data_dir"] = base_dir / settings.data_dir
    if not settings.templates_dir.is_absolute():
        updates["templates_dir"] = base_dir / settings.templates_dir
    if settings.answers.dir is not None and not settings.answers.dir.is_absolute():
        updates["answers"] = AnswersSettings(dir=base_dir / settings.answers.dir)
    for server in ("imap", "smtp"):
        resolved = _resolve_key_files(getattr(settings, server), base_dir)
        if resolved is not None:
            updates[server] = resolved
    if settings.graph is not None:
        resolved_graph = _resolve_key_files(settings.graph, base_dir)
        if resolved_graph is not None:
            updates["graph"] = resolved_graph
    override = environ.get("MAILBOT_DATABASE_URL")
    if override:
        updates["database"] = DatabaseSettings(url=override)
    return settings.model_copy(update=updates) if updates else settings


_WithAuth = TypeVar("_WithAuth", ServerSettings, GraphSettings)


def _resolve_key_files(server: _WithAuth, base_dir: Path) -> _WithAuth | None:
    """The server with its key file paths made absolute, or None when none is relative."""
    auth = server.auth
    keys = ("certificate_file", "private_key_file", "service_account_file")
    relative = {
        key: base_dir / path
        for key in keys
        if (path := getattr(auth, key)) is not None and not path.is_absolute()
    }
    if not relative:
        return None
    return server.model_copy(update={"auth": auth.model_copy(update=relative)})


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    if explicit:
        return Path(explicit)
    if environ.get("MAILBOT_CONFIG"):
        return Path(environ["MAILBOT_CONFIG"])
    return DEFAULT_CONFIG_PATH


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the file at `path`; every problem is a ConfigError naming the key."""
    env = os.environ if environ is None else environ
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"configuration file {path}: {exc.strerror or exc}") from exc
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path}: not valid TOML: {exc}") from exc
    # Relative paths in the file are relative to the project root (the folder above config/).
    base_dir = path.resolve().parent
    if base_dir.name == "config":
        base_dir = base_dir.parent
    return parse_settings(document, base_dir=base_dir, environ=env)


def secret(environ: Mapping[str, str], variable: str | None, what: str) -> str:
    """The value of a secret's environment variable, or a ConfigError saying which is missing."""
    if not variable:
        return ""
    value = environ.get(variable)
    if value is None:
        raise ConfigError(f"{what}: environment variable {variable} is not set")
    return value
