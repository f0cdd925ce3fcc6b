"""The Prometheus metrics (`GET /metrics`), with the official client library.

Label values are configuration names only — mailbox names, message kinds, outgoing purposes,
commitment ids, server names — never an address, a name or a text. Counters count what this
process did since it started; gauges are read from the database after each pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mailbot.db.backlog import Backlog
from mailbot.ops.health import Observation, server_up
from mailbot.ops.passes import PassReport
from mailbot.settings import Settings
from mailbot.states import OutboxState


class Metrics:
    """One registry per daemon (never the library's global one)."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.processed = Counter(
            "mailbot_messages_processed",
            "Incoming messages processed, by mailbox and kind (outcome)",
            ["mailbox", "kind"],
            registry=r,
        )
        self.sent = Counter(
            "mailbot_mail_sent",
            "Outgoing messages the relay accepted, by purpose",
            ["purpose"],
            registry=r,
        )
        self.failed = Counter(
            "mailbot_mail_failed",
            "Outgoing messages refused for good or held, by purpose",
            ["purpose"],
            registry=r,
        )
        self.deferred = Counter(
            "mailbot_mail_deferred",
            "Sending attempts answered with a temporary failure, by purpose",
            ["purpose"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "mailbot_outbox_depth", "Outgoing messages not sent yet", registry=r
        )
        self.outbox_age = Gauge(
            "mailbot_outbox_oldest_age_seconds",
            "Age of the oldest outgoing message not sent yet (0 when none)",
            registry=r,
        )
        self.quarantine = Gauge("mailbot_quarantine_size", "Messages in quarantine", registry=r)
        self.open_tickets = Gauge(
            "mailbot_open_tickets", "Open tickets, by mailbox", ["mailbox"], registry=r
        )
        self.due_today = Gauge(
            "mailbot_deadlines_due_today",
            "Unanswered deadlines due today whose clock runs (ticket not closed, no hold "
            "that began before the deadline), by commitment",
            ["commitment"],
            registry=r,
        )
        self.overdue = Gauge(
            "mailbot_deadlines_overdue",
            "Deadlines passed without a reply (open_late) on tickets not closed, by commitment",
            ["commitment"],
            registry=r,
        )
        self.pass_seconds = Histogram(
            "mailbot_pass_duration_seconds",
            "Duration of a pass (mail in, jobs, outbox)",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.send_seconds = Histogram(
            "mailbot_send_duration_seconds",
            "Time the relay took to answer one message",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.parse_worker_failures = Counter(
            "mailbot_parse_worker_failures",
            "Times the parsing worker failed (killed, could not start): the pass parsed inline",
            registry=r,
        )
        self._parse_worker_failures_seen = 0
        # Microsoft Graph (when it carries the mail): requests, and answers 429/503/504.
        self.graph_requests = Counter(
            "mailbot_graph_requests", "Requests made to Microsoft Graph", registry=r
        )
        self.graph_throttled = Counter(
            "mailbot_graph_throttled",
            "Microsoft Graph answers 429, 503 or 504 (each waited for and retried)",
            registry=r,
        )
        self.graph_failures = Counter(
            "mailbot_graph_failures",
            "Microsoft Graph requests that failed after their retries",
            registry=r,
        )
        self._graph_seen = (0, 0, 0)
        self.server_up = Gauge(
            "mailbot_server_up",
            "1 when the server was reached recently (or its IDLE connection is alive)",
            ["server"],
            registry=r,
        )
        self.last_pass = Gauge(
            "mailbot_last_successful_pass_timestamp_seconds",
            "When the last pass that reached every server ended (Unix time)",
            registry=r,
        )
        # Known label values show from the start, at zero.
        for mailbox in settings.mailboxes:
            self.open_tickets.labels(mailbox.name)
        for commitment in settings.commitments:
            self.due_today.labels(commitment.id)
            self.overdue.labels(commitment.id)

    def count_pass(self, report: PassReport, seconds: float) -> None:
        self.pass_seconds.observe(seconds)
        for mailbox, outcomes in report.by_mailbox.items():
            for kind, n in outcomes.items():
                self.processed.labels(mailbox, kind).inc(n)
        for (purpose, state), n in report.outbox.outcomes:
            if state == OutboxState.SENT:
                self.sent.labels(purpose).inc(n)
            elif state in (OutboxState.FAILED, OutboxState.HELD):
                self.failed.labels(purpose).inc(n)
            elif state == OutboxState.PENDING:
                self.deferred.labels(purpose).inc(n)
        for seconds_one in report.outbox.send_seconds:
            self.send_seconds.observe(seconds_one)

    def count_parse_worker(self, failures: int) -> None:
        """`failures`: the parsing worker's failures since the process started."""
        if failures > self._parse_worker_failures_seen:
            self.parse_worker_failures.inc(failures - self._parse_worker_failures_seen)
            self._parse_worker_failures_seen = failures

    def count_graph(self, requests: int, throttled: int, failures: int) -> None:
        """The Graph client's counts since the process started."""
        for counter, now_value, seen in zip(
            (self.graph_requests, self.graph_throttled, self.graph_failures),
            (requests, throttled, failures),
            self._graph_seen,
            strict=True,
        ):
            if now_value > seen:
                counter.inc(now_value - seen)
        self._graph_seen = (requests, throttled, failures)

    def show(self, observation: Observation, now: datetime, window: timedelta) -> None:
        """Set the gauges from what the daemon sees now."""
        for name, seen in observation.servers.items():
            self.server_up.labels(name).set(1 if server_up(seen, now, window) else 0)
        if observation.last_pass_ok is not None:
            self.last_pass.set(observation.last_pass_ok.timestamp())
        backlog = observation.backlog
        if backlog is not None:
            self._show_backlog(backlog, now)

    def _show_backlog(self, backlog: Backlog, now: datetime) -> None:
        self.outbox_depth.set(backlog.outbox_depth)
        oldest = backlog.oldest_pending
        self.outbox_age.set(max((now - oldest).total_seconds(), 0) if oldest else 0)
        self.quarantine.set(backlog.quarantined)
        for gauge, values in (
            (self.open_tickets, backlog.open_tickets),
            (self.due_today, backlog.due_today),
            (self.overdue, backlog.overdue),
        ):
            known = {labels[0] for labels in _label_values(gauge)}
            for name in known | set(values):
                gauge.labels(name).set(values.get(name, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _label_values(gauge: Gauge) -> list[tuple[str, ...]]:
    return [
        tuple(sample.labels.values()) for metric in gauge.collect() for sample in metric.samples
    ]
