"""How the service runs: the database, the daemon, reminders and digests, retention, the
log, health and metrics, alerts to administrators (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mailbot.settings.base import Frozen


class DatabaseSettings(Frozen):
    url: str = ""


class DaemonSettings(Frozen):
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
    # ones before (mailbot/transport/parse_ahead.py); false: everything is parsed in the one
    # process.
    parse_worker: bool = True
    outbox_max_attempts_hours: Annotated[float, Field(gt=0)] = 72.0
    # How long a worker holds the outbox rows it claimed: an instance killed mid-send leaves
    # its rows to the others after this. Longer than the slowest flush of a claim.
    outbox_lease_seconds: Annotated[float, Field(ge=5)] = 600.0


class ReminderSettings(Frozen):
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


class RetentionPeriod(Frozen):
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


class LoggingSettings(Frozen):
    """The log on standard error: `text` lines, or one JSON object a line for a log collector
    (mailbot/logformat.py); and the least severe level written (`-v` gives DEBUG)."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ObservabilitySettings(Frozen):
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


class AlertSettings(Frozen):
    """Mail to the administrators (not citizens, not staff) when the service needs a person:
    one at the start of an episode and one at its end (mailbot/ops/alerts.py)."""

    admins: tuple[str, ...] = ()
    # A server that could not be reached for this long.
    unreachable_minutes: Annotated[float, Field(gt=0)] = 15.0
    # The oldest unsent outbox row older than this.
    outbox_age_minutes: Annotated[float, Field(gt=0)] = 60.0
