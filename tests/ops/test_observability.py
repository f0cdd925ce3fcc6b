"""Health, metrics and alerts, against the real servers: `/healthz` turns 503 within a bounded
time when SMTP or IMAP goes down and back to 200 after; `/metrics` parses with the Prometheus
client's own parser and its counters match a known pass; each alert goes to the
administrators once when it starts and once when it ends."""

from __future__ import annotations

import email
import email.policy
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbot.app import App, build_app
from mailbot.clock import parse_instant
from mailbot.db.backlog import Backlog
from mailbot.intake.quarantine import list_quarantine, retry_quarantined
from mailbot.ops.alerts import Firing, conditions
from mailbot.ops.health import Observation, ServerSeen, judge
from mailbot.ops.observe import Monitor
from mailbot.ops.passes import run_pass
from mailbot.sandbox.cli import sandbox_environ
from mailbot.sandbox.servers import Sandbox, free_port
from mailbot.settings import AlertSettings, ObservabilitySettings, Settings
from tests.cli.test_commands import a_parser_bug_on
from tests.conftest import REPO, TEST_SIGNING_KEY, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office
from tests.ops.test_logging import assert_nothing_personal, deliver_two_requests

ADMIN = "exploitation@mri.gouv.qc.ca"
# poll_seconds = 1 and healthy_polls = 2: a server is down after 2 s without an answer; the
# health check must see it within this many seconds (a pass, a probe, the window).
BOUND = 20.0


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_health(port: int, code: int, bound: float = BOUND) -> tuple[float, dict[str, object]]:
    """Seconds until /healthz answers `code`, and its body; fails after `bound` seconds."""
    started = time.monotonic()
    last: tuple[int, bytes] = (0, b"")
    while time.monotonic() - started < bound:
        try:
            last = get(port, "/healthz")
        except OSError:
            last = (0, b"")
        if last[0] == code:
            return time.monotonic() - started, json.loads(last[1])
        time.sleep(0.2)
    raise AssertionError(f"/healthz did not answer {code} within {bound} s: {last!r}")


@pytest.fixture
def daemon(sandbox: Sandbox, settings: Settings, tmp_path: Path) -> Iterator[int]:
    """`mailbot run` with health and metrics on a free port; stopped with SIGTERM."""
    port = free_port()
    config = write_sandbox_config(
        tmp_path / "mailbot.toml",
        sandbox,
        tmp_path / "data",
        daemon={"poll_seconds": 1},
        observability={"listen": f"127.0.0.1:{port}", "healthy_polls": 2},
        logging={"format": "json"},
    )
    deliver_two_requests(sandbox)  # citizens' mail in the log's way
    environ = subprocess_environ(settings)
    environ.pop("MAILBOT_DATABASE_URL", None)
    if not settings.database_url.startswith("sqlite"):
        environ["MAILBOT_DATABASE_URL"] = settings.database_url
    log = tmp_path / "daemon.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=REPO,
        env=environ,
        stderr=log.open("w"),
    )
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()[-3000:]
    # The daemon's log, servers going down and back included: one JSON object a line, with
    # references and never a citizen's address, name, subject or words.
    lines = log.read_text().splitlines()
    assert any('"mailbox": "renseignements"' in line for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict), line
        assert_nothing_personal(line)


def test_healthz_turns_503_when_a_server_goes_down_and_200_when_it_is_back(
    sandbox: Sandbox, daemon: int
) -> None:
    _, body = wait_for_health(daemon, 200, bound=60)
    assert body == {
        "status": "ok",
        "parts": {"imap:plaintes": "ok", "imap:renseignements": "ok", "outbox": "ok", "smtp": "ok"},
    }

    sandbox.stop_smtp()
    took, body = wait_for_health(daemon, 503)
    parts = body["parts"]
    assert isinstance(parts, dict)
    assert parts["smtp"].startswith("not reached since "), parts
    assert [name for name, value in parts.items() if value != "ok"] == ["smtp"]
    assert took < BOUND
    print(f"SMTP down: 503 after {took:.1f} s")
    sandbox.start_smtp()
    took, _ = wait_for_health(daemon, 200)
    print(f"SMTP back: 200 after {took:.1f} s")

    sandbox.stop_imap()
    took, body = wait_for_health(daemon, 503)
    print(f"IMAP down: 503 after {took:.1f} s")
    parts = body["parts"]
    assert isinstance(parts, dict)
    assert sorted(name for name, value in parts.items() if value != "ok") == [
        "imap:plaintes",
        "imap:renseignements",
    ]
    sandbox.start_imap()
    took, _ = wait_for_health(daemon, 200)
    print(f"IMAP back: 200 after {took:.1f} s")

    status, text = get(daemon, "/metrics")
    assert status == 200
    up = {
        sample.labels["server"]: sample.value
        for family in text_string_to_metric_families(text.decode())
        if family.name == "mailbot_server_up"
        for sample in family.samples
    }
    assert up == {"imap:plaintes": 1.0, "imap:renseignements": 1.0, "smtp": 1.0}
    assert get(daemon, "/nope")[0] == 404


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition by (name, labels), parsed by the client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


UNKNOWN = "paul.inconnu@example.com"  # the sandbox's SMTP server refuses it (550 5.1.1)


def test_metrics_parse_and_count_a_known_pass(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    unknown = citizen_request("<req-2@example.com>", sender=UNKNOWN)
    sandbox.deliver(INFO, unknown, received_at=office("2025-11-03T10:00"))
    clock = StepClock(parse_instant("2025-11-03T10:01:00-05:00"))
    served = settings.model_copy(  # metrics are served: the monitor reads the backlog
        update={"observability": ObservabilitySettings(listen=f"127.0.0.1:{free_port()}")}
    )
    app = build_app(served, clock, sandbox_environ(served, {"MAILBOT_SIGNING_KEY": "k" * 32}))
    monitor = Monitor(app)

    report = run_pass(app)
    monitor.after_pass(report, 0.7, full=True)
    found = samples(monitor.metrics_text())
    app.engine.dispose()

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert (
        value("mailbot_messages_processed_total", mailbox="renseignements", kind="new_request") == 2
    )
    assert not any(
        key[0] == "mailbot_messages_processed_total" and ("mailbox", "plaintes") in key[1]
        for key in found
    )
    assert value("mailbot_mail_sent_total", purpose="acknowledgement") == 1
    assert value("mailbot_mail_failed_total", purpose="acknowledgement") == 1
    assert value("mailbot_mail_sent_total", purpose="notice") == 2
    assert value("mailbot_mail_sent_total", purpose="failure_notice") == 1
    assert value("mailbot_outbox_depth") == 0
    assert value("mailbot_outbox_oldest_age_seconds") == 0
    assert value("mailbot_quarantine_size") == 0
    assert value("mailbot_open_tickets", mailbox="renseignements") == 2
    assert value("mailbot_open_tickets", mailbox="plaintes") == 0
    assert value("mailbot_deadlines_due_today", commitment="ack") == 0
    assert value("mailbot_deadlines_overdue", commitment="info_reply") == 0
    assert value("mailbot_pass_duration_seconds_count") == 1
    assert value("mailbot_pass_duration_seconds_sum") == pytest.approx(0.7)
    assert value("mailbot_send_duration_seconds_count") == report.outbox.sent + 1
    assert value("mailbot_server_up", server="smtp") == 1
    assert value("mailbot_server_up", server="imap:renseignements") == 1
    assert value("mailbot_parse_worker_failures_total") == 0
    assert value("mailbot_last_successful_pass_timestamp_seconds") == clock.instant.timestamp()
    text = monitor.metrics_text().decode()
    for personal in (CITIZEN, UNKNOWN, "Demande", "Tremblay"):
        assert personal not in text


@dataclass
class StepClock:
    """A replay clock the test moves forward."""

    instant: datetime

    @property
    def replays(self) -> bool:
        return True

    def now(self) -> datetime:
        return self.instant

    def advance(self, minutes: float) -> None:
        self.instant += timedelta(minutes=minutes)


def admin_mail(sandbox: Sandbox) -> list[str]:
    return [
        str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
        for raw in sandbox.delivered_to(ADMIN)
    ]


def test_each_alert_is_mailed_once_when_it_starts_and_once_when_it_ends(
    sandbox: Sandbox, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.accept_mail_for(ADMIN)
    chosen = settings.model_copy(
        update={
            "alerts": AlertSettings(admins=(ADMIN,), unreachable_minutes=15, outbox_age_minutes=30)
        }
    )
    clock = StepClock(parse_instant("2025-11-03T10:00:00-05:00"))
    app = build_app(
        chosen, clock, sandbox_environ(chosen, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
    )
    monitor = Monitor(app)

    def step(minutes: float) -> None:
        clock.advance(minutes)
        monitor.after_pass(run_pass(app), 0.1, full=True)

    # A message the parser cannot read goes to quarantine; the other one is processed.
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T09:59"))
    sandbox.deliver(
        INFO, citizen_request("<req-2@example.org>"), received_at=office("2025-11-03T09:59")
    )
    a_parser_bug_on(monkeypatch, b"<req-1@example.org>")
    step(0)
    monkeypatch.undo()
    assert admin_mail(sandbox) == ["[mailbot] Alerte : 1 message(s) en quarantaine / Alert"]
    step(1)  # still there: no second mail
    [row] = _quarantined(app)
    retry_quarantined(app, row)
    step(1)
    assert admin_mail(sandbox)[1:] == ["[mailbot] Rétabli : quarantaine vide / Resolved"]

    # The relay goes down with a message to send: nothing for 15 minutes, then one alert.
    sandbox.stop_smtp()
    sandbox.deliver(
        INFO, citizen_request("<req-3@example.org>"), received_at=office("2025-11-03T10:03")
    )
    step(2)  # 10:04, the relay fails
    step(10)  # 10:14
    step(10)  # 10:24: unreachable for 20 minutes
    step(10)  # 10:34: the acknowledgement has waited 30 minutes
    step(10)  # 10:44
    sandbox.start_smtp()
    assert len(admin_mail(sandbox)) == 2  # the alerts wait in the outbox with the rest
    step(1)  # 10:45: the relay answers again
    assert "[mailbot] Rétabli : serveur smtp joignable de nouveau / Resolved" in admin_mail(sandbox)
    step(30)  # 11:15: the rows' retry times have come; everything leaves
    step(1)
    step(20)
    assert Counter(admin_mail(sandbox)[2:]) == {
        "[mailbot] Alerte : serveur smtp injoignable / Alert": 1,
        "[mailbot] Alerte : courriels en attente d'envoi depuis plus de 30 minutes / Alert": 1,
        "[mailbot] Rétabli : serveur smtp joignable de nouveau / Resolved": 1,
        "[mailbot] Rétabli : la file d'envoi repart / Resolved": 1,
    }  # never one per pass
    for raw in sandbox.delivered_to(ADMIN):
        assert CITIZEN.encode() not in raw and b"Demande de renseignements" not in raw
    app.engine.dispose()


def _quarantined(app: App) -> list[int]:
    return [row.id for row in list_quarantine(app)]


NOW = datetime.fromisoformat("2025-11-03T15:00:00+00:00")
WINDOW = timedelta(seconds=180)
RULES = AlertSettings(admins=(ADMIN,), unreachable_minutes=15, outbox_age_minutes=60)


def test_health_names_each_failing_part() -> None:
    fresh = ServerSeen(last_ok=NOW - timedelta(seconds=30))
    stale = ServerSeen(
        last_ok=NOW - timedelta(minutes=10),
        failing_since=NOW - timedelta(minutes=9),
        last_error="ConnectionRefusedError",
    )
    idle = ServerSeen(last_ok=NOW - timedelta(hours=1), idle_alive=True)
    stuck = Backlog(
        outbox_depth=3,
        oldest_pending=NOW - timedelta(minutes=20),
        due_since=NOW - timedelta(minutes=4),
    )
    health = judge(
        Observation(
            {"smtp": stale, "imap:a": fresh, "imap:b": idle, "imap:c": ServerSeen()}, stuck
        ),
        NOW,
        WINDOW,
    )
    assert not health.ok
    assert health.parts == {
        "imap:a": "ok",
        "imap:b": "ok",
        "imap:c": "never reached",
        "smtp": "not reached since 2025-11-03T14:50Z (ConnectionRefusedError)",
        "outbox": "not moving: a due message has waited since 2025-11-03T14:56Z",
    }
    assert judge(Observation({"smtp": fresh}, Backlog()), NOW, WINDOW).ok
    assert (
        judge(Observation({"smtp": fresh}, None), NOW, WINDOW).parts["outbox"]
        == "not looked at yet"
    )


def test_alert_conditions_fire_after_their_thresholds_and_wait_when_unsure() -> None:
    def states(observation: Observation) -> dict[str, Firing]:
        return {c.name: c.state for c in conditions(observation, NOW, RULES)}

    failing = ServerSeen(
        last_ok=NOW - timedelta(minutes=20), failing_since=NOW - timedelta(minutes=14)
    )
    assert states(Observation({"smtp": failing})) == {"admin:server:smtp": Firing.UNKNOWN}
    failing = ServerSeen(last_ok=None, failing_since=NOW - timedelta(minutes=15))
    assert states(Observation({"smtp": failing})) == {"admin:server:smtp": Firing.FIRING}
    assert states(Observation({"smtp": ServerSeen()})) == {"admin:server:smtp": Firing.UNKNOWN}
    busy = Backlog(outbox_depth=1, oldest_pending=NOW - timedelta(minutes=61), quarantined=2)
    assert states(Observation({}, busy, braking=True)) == {
        "admin:outbox": Firing.FIRING,
        "admin:quarantine": Firing.FIRING,
        "admin:brake": Firing.FIRING,
    }
    calm = Backlog(outbox_depth=1, oldest_pending=NOW - timedelta(minutes=59))
    assert set(states(Observation({}, calm)).values()) == {Firing.CLEAR}


def test_a_bad_listen_address_or_threshold_is_named() -> None:
    import re
    import tomllib

    from mailbot.errors import ConfigError
    from mailbot.settings import parse_settings

    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    for section, values, key in (
        ("observability", {"listen": "127.0.0.1"}, "observability.listen"),
        ("observability", {"listen": "127.0.0.1:70000"}, "observability.listen"),
        ("alerts", {"unreachable_minutes": 0}, "alerts.unreachable_minutes"),
    ):
        with pytest.raises(ConfigError, match=re.escape(key)):
            parse_settings({**document, section: values}, base_dir=REPO, environ={})
    good = parse_settings(
        {**document, "observability": {"listen": "127.0.0.1:9464"}}, base_dir=REPO, environ={}
    )
    assert good.observability.address == ("127.0.0.1", 9464)


def test_the_brake_alert_is_mailed_once_when_it_engages_and_once_when_it_releases(
    sandbox: Sandbox, settings: Settings
) -> None:
    people = [f"citoyen{n}@example.org" for n in range(5)]
    sandbox.accept_mail_for(ADMIN, *people)
    for n, person in enumerate(people):
        raw = citizen_request(f"<req-{n}@example.org>", sender=person)
        sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    chosen = settings.model_copy(
        update={
            "alerts": AlertSettings(admins=(ADMIN,)),
            "classification": settings.classification.model_copy(update={"burst_limit": 2}),
        }
    )
    clock = StepClock(parse_instant("2025-11-03T10:01:00-05:00"))
    environ = sandbox_environ(chosen, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
    app = build_app(chosen, clock, environ)
    monitor = Monitor(app)

    seen = []
    for minutes in (0, 1, 10, 11, 11, 11):  # 10:01, 10:02, 10:12, 10:23, 10:34, 10:45
        clock.advance(minutes)
        monitor.after_pass(run_pass(app), 0.1, full=True)
        seen.append(len(admin_mail(sandbox)))
    app.engine.dispose()

    assert admin_mail(sandbox) == [
        "[mailbot] Alerte : frein des accusés de réception enclenché / Alert",
        "[mailbot] Rétabli : frein relâché / Resolved",
    ]
    assert seen[0] == 1 and seen[-1] == 2
    assert sum(len(sandbox.delivered_to(person)) for person in people) == 5
