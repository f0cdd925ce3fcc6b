"""The whole configuration (`Settings`): every section, checked together, and the questions
asked of it (who is staff, which queue works a ticket) (pure)."""

from __future__ import annotations

from pathlib import Path

from pydantic import PrivateAttr, model_validator

from mailbot.settings.base import Frozen
from mailbot.settings.commitments import (
    DEFAULT_COMMITMENTS,
    CalendarSettings,
    CommitmentSettings,
)
from mailbot.settings.handling import (
    AnswersSettings,
    ClassificationSettings,
    LanguageSettings,
    StaffSettings,
)
from mailbot.settings.mailboxes import GRAPH_SENT_FOLDER, MailboxSettings, journal_over_graph
from mailbot.settings.operations import (
    AlertSettings,
    DaemonSettings,
    DatabaseSettings,
    LoggingSettings,
    ObservabilitySettings,
    ReminderSettings,
    RetentionSettings,
)
from mailbot.settings.organisation import OrganisationSettings
from mailbot.settings.paths import DEFAULT_TEMPLATES_DIR
from mailbot.settings.servers import (
    UNUSED_IMAP,
    UNUSED_SMTP,
    GraphSettings,
    ServerSettings,
    SmtpSettings,
)


class Settings(Frozen):
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
