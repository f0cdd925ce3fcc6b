"""The one error hierarchy of mailbot; boundaries (the CLI, the loop) catch these.

MailbotError
 ├── ConfigError       the configuration file or environment is wrong (exit 2)
 │    ├── ClockRefused  replayed and real time would mix in one database (exit 2)
 │    └── MissingDependency  an optional package is not installed (exit 3)
 ├── ServerError       an IMAP or SMTP server could not be reached or refused us
 │    ├── ImapError   the reading side (IMAP, or Microsoft Graph's mail folders)
 │    │    └── GraphError  Microsoft Graph refused, or could not be reached
 │    ├── SmtpError
 │    └── TokenError   no OAuth2 access token could be obtained from the provider
 ├── DatabaseFailed    the database failed in a way waiting does not cure (the daemon stops)
 ├── NotFound          a ticket, message or row named on the command line does not exist
 └── StoreAhead        the mail store holds mail the database does not know (exit 5)
"""

from __future__ import annotations


class MailbotError(Exception):
    """Base of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """The configuration is invalid; the message names the key or variable."""


class ClockRefused(ConfigError):
    """A write under `--now` to a live database, or by the real clock to a replay one."""


class MissingDependency(ConfigError):
    """An optional package (an extra of mailbot) is needed and not installed."""


class ServerError(MailbotError):
    """A mail server could not be reached, or refused a command."""


class ImapError(ServerError):
    """The IMAP side failed."""


class GraphError(ImapError):
    """Microsoft Graph refused a request or could not be reached (after the retries that
    throttling allows); `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SmtpError(ServerError):
    """The SMTP side failed."""


class TokenError(ServerError):
    """The OAuth2 provider gave no access token; the message says why, never the secret."""


class DatabaseFailed(MailbotError):
    """The database failed pass after pass with an error waiting does not cure (a damaged
    file, a missing table, a disk that refuses writes): the daemon stops, naming it."""


class NotFound(MailbotError):
    """Something named on the command line does not exist."""


class StoreAhead(MailbotError):
    """The database is empty or older than the mail store (restored, lost, or the wrong one):
    `mailbot reconcile` brings it up to date; the daemon refuses to start over silently."""
