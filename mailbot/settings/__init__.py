"""Configuration: one TOML file plus secrets from the environment, validated once, frozen.

Every name is imported from here (`from mailbot.settings import Settings, MailboxSettings`);
the modules say where each section is written: `servers` (IMAP, SMTP, Microsoft Graph and
its national clouds, logins), `organisation`, `mailboxes`, `commitments` (the published
commitments, the business-day calendar), `handling` (classification, language, staff
limits, canned answers), `operations` (database, daemon, reminders, retention, log,
observability, alerts), `configuration` (`Settings`, the sections checked together),
`loading` (the file and the environment read), `paths`, `base`.
"""

from __future__ import annotations

from mailbot.settings.base import Category, Mechanism, Provider, TlsMode
from mailbot.settings.commitments import DEFAULT_COMMITMENTS, CalendarSettings, CommitmentSettings
from mailbot.settings.configuration import Settings, graph_ignores, is_staff_address
from mailbot.settings.handling import (
    AnswersSettings,
    ClassificationSettings,
    LanguageSettings,
    StaffSettings,
)
from mailbot.settings.loading import config_path, load_settings, parse_settings, secret
from mailbot.settings.mailboxes import (
    GRAPH_SENT_FOLDER,
    MailboxSettings,
    default_notes_address,
    journal_over_graph,
)
from mailbot.settings.operations import (
    AlertSettings,
    DaemonSettings,
    DatabaseSettings,
    LoggingSettings,
    ObservabilitySettings,
    ReminderSettings,
    RetentionPeriod,
    RetentionSettings,
)
from mailbot.settings.organisation import OrganisationSettings
from mailbot.settings.paths import DEFAULT_CONFIG_PATH, DEFAULT_TEMPLATES_DIR, PACKAGE_ROOT
from mailbot.settings.servers import (
    GOOGLE_SCOPE,
    GRAPH_CLOUDS,
    MICROSOFT_SCOPE,
    UNUSED_IMAP,
    UNUSED_SMTP,
    AuthSettings,
    GraphCloud,
    GraphCloudName,
    GraphSettings,
    ServerSettings,
    SmtpSettings,
    graph_cloud_of,
)

__all__ = [
    "DEFAULT_COMMITMENTS",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_TEMPLATES_DIR",
    "GOOGLE_SCOPE",
    "GRAPH_CLOUDS",
    "GRAPH_SENT_FOLDER",
    "MICROSOFT_SCOPE",
    "PACKAGE_ROOT",
    "UNUSED_IMAP",
    "UNUSED_SMTP",
    "AlertSettings",
    "AnswersSettings",
    "AuthSettings",
    "CalendarSettings",
    "Category",
    "ClassificationSettings",
    "CommitmentSettings",
    "DaemonSettings",
    "DatabaseSettings",
    "GraphCloud",
    "GraphCloudName",
    "GraphSettings",
    "LanguageSettings",
    "LoggingSettings",
    "MailboxSettings",
    "Mechanism",
    "ObservabilitySettings",
    "OrganisationSettings",
    "Provider",
    "ReminderSettings",
    "RetentionPeriod",
    "RetentionSettings",
    "ServerSettings",
    "Settings",
    "SmtpSettings",
    "StaffSettings",
    "TlsMode",
    "config_path",
    "default_notes_address",
    "graph_cloud_of",
    "graph_ignores",
    "is_staff_address",
    "journal_over_graph",
    "load_settings",
    "parse_settings",
    "secret",
]
