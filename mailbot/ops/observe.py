"""The daemon's eyes: after each pass, what it saw of the servers, the backlog, the metrics
and the alerts; and the small HTTP server behind `[observability] listen`.

`GET /healthz` answers 200 with ``{"status": "ok", "parts": {...}}`` when every server was
reached within `healthy_polls` poll intervals (or holds a live IDLE connection) and the outbox
is moving, else 503 with the failing parts named. `GET /metrics` is the Prometheus text
format (mailbot/ops/metrics.py). Nothing else is served; the server listens where `listen` says
(keep it on 127.0.0.1 or a management network: it has no authentication).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiosmtplib
from prometheus_client import CONTENT_TYPE_LATEST

from mailbot.app import App
from mailbot.db import service_state
from mailbot.db.backlog import backlog
from mailbot.db.store import reading
from mailbot.errors import ConfigError, SmtpError, TokenError
from mailbot.ops.alerts import conditions, review_alerts
from mailbot.ops.health import GRAPH_SEND, SMTP, Health, Observed, graph_name, imap_name, judge
from mailbot.ops.metrics import Metrics
from mailbot.ops.passes import PassReport, send_outbox
from mailbot.sending.pacing import PACING
from mailbot.transport.smtp import connect_smtp, smtp_client

log = logging.getLogger(__name__)


class Monitor:
    """What the daemon knows about itself; `after_pass` runs on the pass loop's thread, the
    HTTP server reads `health` and `metrics_text` from its own threads."""

    def __init__(self, app: App) -> None:
        self.app = app
        # Over Graph, the mailboxes and the sending are Graph's; else IMAP's and SMTP's.
        self.mailbox_name = imap_name if app.graph is None else graph_name
        self.sender_name = SMTP if app.graph is None else GRAPH_SEND
        names = [self.mailbox_name(mailbox.name) for mailbox in app.settings.mailboxes]
        self.observed = Observed([*names, self.sender_name])
        self.metrics = Metrics(app.settings)
        daemon = app.settings.daemon
        # Someone looks (health and metrics served, or alerts mailed): worth reading the
        # backlog after each pass, and a NOOP to the relay after a pass that sent nothing.
        self.watched = bool(app.settings.observability.listen or app.settings.alerts.admins)
        self.window = timedelta(
            seconds=daemon.poll_seconds * app.settings.observability.healthy_polls
        )

    def after_pass(self, report: PassReport, seconds: float, *, full: bool) -> None:
        app, observed = self.app, self.observed
        now = app.clock.now()
        for name in report.reached:
            observed.reached(self.mailbox_name(name), now)
        for error in report.errors:
            kind, _, mailbox = error.partition(":")
            if kind == "imap":
                observed.failed(self.mailbox_name(mailbox), now, "connection or login failed")
        if report.outbox.unreachable:
            observed.failed(self.sender_name, now, "connection or login failed")
        elif report.outbox.reached_relay:
            observed.reached(self.sender_name, now)
        elif app.graph is not None:
            # Sending shares Graph with reading: Graph answered this pass, or it did not.
            if report.reached:
                observed.reached(GRAPH_SEND, now)
        elif full and self.watched:
            self.probe_smtp()
        self.metrics.count_pass(report, seconds)
        self.metrics.count_parse_worker(app.parse_ahead.failures)
        if app.graph is not None:
            counters = app.graph.counters
            self.metrics.count_graph(counters.requests, counters.throttled, counters.failures)
        if report.ok and full:
            observed.pass_ok(app.clock.now())
        if not self.watched:
            return  # nobody reads health or metrics, nobody gets alerts: no backlog queries
        self.look()
        if not app.settings.alerts.admins:
            return
        observation = observed.observation()
        changed = review_alerts(app, conditions(observation, now, app.settings.alerts), now)
        if changed and observation.servers[self.sender_name].failing_since is None:
            send_outbox(app)  # the alert goes now, not at the next pass

    def look(self) -> None:
        """Read the backlog from the database."""
        app = self.app
        now = app.clock.now()
        with reading(app.engine) as connection:
            braking = service_state.open_alert(connection, PACING) is not None
            found = backlog(
                connection,
                now,
                app.calendar.office_date(now),
                braking=braking,
                restarting=app.settings.restarting_commitments,
            )
        self.observed.looked_at(found, braking=braking)

    def probe_smtp(self) -> None:
        """Log in to the relay and say NOOP: a flush with nothing to send never connects."""
        app = self.app
        now = app.clock.now()
        try:
            asyncio.run(_noop(app, now))
        except (
            TimeoutError,
            ConfigError,
            TokenError,
            aiosmtplib.SMTPException,
            OSError,
            SmtpError,
        ) as exc:
            self.observed.failed(SMTP, now, type(exc).__name__)
        else:
            self.observed.reached(SMTP, now)

    def health(self) -> Health:
        return judge(self.observed.observation(), self.app.clock.now(), self.window)

    def metrics_text(self) -> bytes:
        self.metrics.show(self.observed.observation(), self.app.clock.now(), self.window)
        return self.metrics.exposition()


async def _noop(app: App, now: datetime) -> None:
    smtp = smtp_client(app.settings.smtp)
    await connect_smtp(smtp, app.logins.smtp(), now)
    try:
        await smtp.noop()
    finally:
        await smtp.quit()


class ObservabilityServer:
    """`GET /healthz` and `GET /metrics` on a thread of their own."""

    def __init__(self, monitor: Monitor, host: str, port: int) -> None:
        handler = _handler(monitor)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="observability", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler(monitor: Monitor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mailbot"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/healthz":
                    health = monitor.health()
                    body = json.dumps(health.json(), ensure_ascii=False).encode()
                    self._answer(200 if health.ok else 503, "application/json", body)
                elif path == "/metrics":
                    self._answer(200, CONTENT_TYPE_LATEST, monitor.metrics_text())
                else:
                    self._answer(404, "text/plain; charset=utf-8", b"not found\n")
            except Exception:  # an HTTP client never takes the daemon down
                log.exception("observability: %s failed", path)
                self._answer(500, "text/plain; charset=utf-8", b"internal error\n")

        def _answer(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("observability: " + format, *args)

    return Handler
