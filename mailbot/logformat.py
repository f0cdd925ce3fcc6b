"""Log lines as text or as one JSON object each, with what a line is about (pure).

A call site says which message, ticket or outbox row a line concerns through `extra`, built by
`log_fields` so that a misspelt field is a type error rather than a silent loss:

    log.info("inbound %s (%s)", kind, outcome, extra=log_fields(mailbox="plaintes", uid=42))

Both formats show these fields: text appends them as `key=value` after the message, JSON puts
each in its own key. Fields carry references and numbers only, never an address, a name or a
text from a message. `mailbot/cli/logs.py` chooses the format (`[logging] format`).

Libraries' own logs never reach the handler below WARNING (`OwnRecordsOnly`), whatever the
level: their debug output prints what goes over the wire (imapclient's `imapclient.imaplib`
logger prints every fetched message, aiosmtplib the DATA it sends, SQLAlchemy's echo the
bound values). `LIBRARY_LOGGERS` are also set to WARNING, so they do not even build those
lines. `-v` adds mailbot's own details and tracebacks, never bytes of mail.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Loggers shown at every level: mailbot's own, and the migrations' and scheduler's steps
# (names of revisions and jobs, nothing from a message).
OWN_LOGGERS = ("mailbot", "alembic", "apscheduler")
# Libraries that print protocol traffic or SQL parameters at DEBUG or INFO: kept at WARNING.
LIBRARY_LOGGERS = (
    "imapclient",
    "aiosmtplib",
    "aiosmtpd",
    "mail.log",
    "sqlalchemy",
    "psycopg",
    "asyncio",
    "urllib3",
    "httpx",
    "httpcore",
    "msal",
    "google",
    "requests_oauthlib",
    "oauthlib",
)


class OwnRecordsOnly(logging.Filter):
    """Pass mailbot's own records at any level, any other library's at WARNING and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


# The fields a call site may attach, in the order the text format shows them.
FIELDS = ("mailbox", "uid", "ref", "inbound", "outbox", "purpose", "smtp_code")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_fields(
    *,
    mailbox: str | None = None,
    uid: int | None = None,
    ref: str | None = None,
    inbound: int | None = None,
    outbox: int | None = None,
    purpose: str | None = None,
    smtp_code: str | None = None,
) -> dict[str, object]:
    """The `extra` of a log call: the mailbox and IMAP UID of an inbound message, a ticket
    reference, an inbound message or outbox row number, an outbox row's purpose, and the SMTP
    codes of a reply (never the server's text, which often names the recipient)."""
    values = {
        "mailbox": mailbox,
        "uid": uid,
        "ref": ref,
        "inbound": inbound,
        "outbox": outbox,
        "purpose": purpose,
        "smtp_code": smtp_code,
    }
    return {name: value for name, value in values.items() if value is not None}


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    """The fields a call site attached to `record`, in `FIELDS` order."""
    return {name: getattr(record, name) for name in FIELDS if hasattr(record, name)}


class TextFormatter(logging.Formatter):
    """`2025-11-03 10:01:00,123 INFO mailbot.intake.pipeline: inbound new_request (opened)
    mailbox=...`"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = fields_of(record)
        if not fields:
            return line
        return line + " " + " ".join(f"{name}={value}" for name, value in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp (UTC, ISO 8601), level, logger, event, the fields
    present, and the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        instant = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "timestamp": instant.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
