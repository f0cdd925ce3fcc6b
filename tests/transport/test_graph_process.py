"""mailbot as a process over Microsoft Graph (the local Graph of tests/graph_server.py): the
daemon's delta poll, `mailbot check`, and SIGKILL at any moment of a pass."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import GRAPH_SECRET_ENV, REPO, TEST_SIGNING_KEY
from tests.graph_server import GraphServer
from tests.intake.test_spine import INFO, citizen_request, office, parsed

pytestmark = pytest.mark.server  # runs mailbot as a separate process

SECRET_ENV = GRAPH_SECRET_ENV


def write_graph_config(path: Path, graph: GraphServer, data: Path, **sections: object) -> Path:
    """The example configuration with a [graph] section instead of [imap] and [smtp]."""
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    del document["imap"], document["smtp"]
    for mailbox in document["mailboxes"]:
        mailbox.pop("password_env", None)
        if mailbox["address"].lower() not in graph.mailboxes:
            graph.register(mailbox["address"])
    document["graph"] = {
        "base_url": graph.base_url,
        "poll_seconds": 0.5,
        "auth": {
            "method": "oauth2",
            "provider": "generic",
            "token_endpoint": graph.token_endpoint,
            "client_id": graph.client_id,
            "client_secret_env": SECRET_ENV,
        },
    }
    document["data_dir"] = str(data)
    document["templates_dir"] = str(REPO / "templates")
    for name, values in sections.items():
        assert isinstance(values, dict)
        document.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(document))
    return path


def environ(graph: GraphServer, secret: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY,
        SECRET_ENV: graph.client_secret if secret is None else secret,
    }


def mailbot(
    config: Path, graph: GraphServer, *args: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *args],
        cwd=REPO,
        env=environ(graph, secret),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_reports_the_token_the_folders_and_which_headers_survive(
    graph: GraphServer, tmp_path: Path
) -> None:
    config = write_graph_config(tmp_path / "mailbot.toml", graph, tmp_path / "data")
    graph.drop_headers = frozenset({"Auto-Submitted"})
    result = mailbot(config, graph, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   token for graph" in result.stdout
    assert "ok   graph renseignements: renseignements@mri.gouv.qc.ca, INBOX read" in result.stdout
    assert result.stdout.count("sent to itself and read back") == 2
    assert "kept: Message-ID, In-Reply-To, References, X-Auto-Response-Suppress" in result.stdout
    assert "NOT kept: Auto-Submitted dropped; the draft's Message-ID arrived" in result.stdout
    # Mail to the notes address (plus addressing) reaches each mailbox.
    assert "ok   notes renseignements: renseignements+note@mri.gouv.qc.ca arrives" in result.stdout
    assert "ok   notes plaintes: plaintes+note@mri.gouv.qc.ca arrives" in result.stdout
    # The check's own messages left no trace in the inbox the daemon watches.
    assert graph.folder(INFO, "Inbox") == []

    graph.granted = {"renseignements@mri.gouv.qc.ca"}
    refused = mailbot(config, graph, "check")
    assert refused.returncode == 1
    assert "FAIL graph plaintes" in refused.stdout
    assert "Test-ServicePrincipalAuthorization" in refused.stdout


def test_check_says_when_the_tenant_does_not_deliver_the_notes_address(
    graph: GraphServer, tmp_path: Path
) -> None:
    config = write_graph_config(tmp_path / "mailbot.toml", graph, tmp_path / "data")
    graph.plus_addressing = False  # DisablePlusAddressInRecipients $true

    result = mailbot(config, graph, "check", "--wait", "1")

    assert result.returncode == 1
    assert "sent to itself and read back" in result.stdout  # the mailbox itself works
    assert (
        "FAIL notes renseignements: renseignements+note@mri.gouv.qc.ca: sent, not received "
        "within 1 s; turn plus addressing on"
    ) in result.stdout


def test_check_names_a_wrong_secret(graph: GraphServer, tmp_path: Path) -> None:
    config = write_graph_config(tmp_path / "mailbot.toml", graph, tmp_path / "data")
    result = mailbot(config, graph, "check", secret="an-old-secret")
    assert result.returncode == 1
    assert "FAIL token for graph" in result.stdout and "invalid_client" in result.stdout


def test_the_daemon_finds_new_mail_by_the_delta_poll(graph: GraphServer, tmp_path: Path) -> None:
    # The full poll is an hour away: only the delta poll can find the request in time.
    config = write_graph_config(
        tmp_path / "mailbot.toml", graph, tmp_path / "data", daemon={"poll_seconds": 3600}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=REPO,
        env=environ(graph),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while graph.count("GET", r"/messages/delta$") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        graph.deliver(INFO, citizen_request())
        while not graph.to("josee.tremblay@example.org") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Microsoft Graph delta every 0.5 s" in err
    assert len(graph.to("josee.tremblay@example.org")) == 1


REQUESTS = 60


def counts(database: Path) -> tuple[int, int]:
    """(stored inbound messages, outbox rows sent)."""
    if not database.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            stored = int(db.execute("SELECT count(*) FROM inbound_message").fetchone()[0])
            sent = int(db.execute("SELECT count(*) FROM outbox WHERE state='sent'").fetchone()[0])
            return stored, sent
    except sqlite3.OperationalError:
        return 0, 0


def test_sigkill_at_any_moment_loses_nothing_and_sends_nothing_twice(
    graph: GraphServer, tmp_path: Path
) -> None:
    """Killed again and again, while it stores messages and while it sends: Graph's Sent
    Items tells a later attempt that a message went out before the outbox recorded it."""
    data = tmp_path / "data"
    config = write_graph_config(
        tmp_path / "mailbot.toml",
        graph,
        data,
        daemon={"fetch_batch": 20},
        classification={"per_address_daily_limit": 10_000, "burst_limit": 10_000},
    )
    for n in range(REQUESTS):
        graph.deliver(
            INFO,
            citizen_request(f"<req-{n}@example.org>", sender=f"c{n}@example.org"),
            at=office("2025-11-03T10:00"),
        )
    # Slow enough for the kills to land inside the pass, fast enough for the test.
    graph.slow_seconds = 0.01

    def command(attempt: int) -> list[str]:
        # Each run later than the last: a row a killed run had claimed is free again.
        now = datetime(2025, 11, 3, 15, 5, tzinfo=UTC) + timedelta(minutes=30 * attempt)
        config_args = ["--config", str(config), "--now", now.isoformat()]
        return [sys.executable, "-m", "mailbot", *config_args, "run", "--once"]

    kills = {"storing": 0, "sending": 0, "after_202": 0}
    delivered_at_kill = 0
    for attempt in range(60):
        stored_before, _sent = counts(data / "mailbot.db")
        process = subprocess.Popen(
            command(attempt),
            cwd=REPO,
            env=environ(graph),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            stored, _sent = counts(data / "mailbot.db")
            delivered = len(graph.outgoing)
            if stored_before + 7 <= stored < REQUESTS:
                phase = "storing"
            elif stored == REQUESTS and delivered >= delivered_at_kill + 25:
                phase = "sending"
            else:
                time.sleep(0.005)
                continue
            os.kill(process.pid, signal.SIGKILL)
            kills[phase] += 1
            if phase == "sending":
                delivered_at_kill = len(graph.outgoing)
                # Graph took more than the outbox had recorded as sent when it died.
                kills["after_202"] += delivered_at_kill > counts(data / "mailbot.db")[1]
            break
        if process.wait(60) == 0:
            break
    else:
        raise AssertionError("mailbot never completed a pass")
    assert kills["storing"] >= 2 and kills["sending"] >= 2, kills
    # Whatever a killed run left claimed or due is sent by a run a day later, once.
    final = subprocess.run(command(48), cwd=REPO, env=environ(graph), capture_output=True)
    assert final.returncode == 0, final.stderr
    assert counts(data / "mailbot.db")[0] == REQUESTS
    assert graph.folder(INFO, "Inbox") == []
    acks = [parsed(raw) for who, raw in graph.outgoing if who.startswith("c")]
    per_request = Counter(str(ack["In-Reply-To"]) for ack in acks)
    assert len(per_request) == REQUESTS
    assert set(per_request.values()) == {1}, kills


def test_check_then_run_on_a_new_configuration_acknowledges_the_request(
    graph: GraphServer, tmp_path: Path
) -> None:
    """`check` removes both copies of its round trips (the received one, and the one Graph
    keeps in Sent Items), to the mailbox itself and to its notes address, so the start-up
    check of the first `run` finds nothing it does not know."""
    config = write_graph_config(tmp_path / "mailbot.toml", graph, tmp_path / "data")
    graph.deliver(INFO, citizen_request())
    checked = mailbot(config, graph, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("both copies deleted") == 4  # 2 mailboxes, 2 round trips each
    for address in graph.mailboxes:
        for folder in ("Sent Items", "Drafts"):
            assert not any(b"mailbot check" in raw for raw in graph.folder(address, folder))
    run = mailbot(config, graph, "run", "--once")
    assert run.returncode == 0, run.stderr
    [ack] = graph.to("josee.tremblay@example.org")
    assert parsed(ack)["Auto-Submitted"] == "auto-replied"
    assert graph.drafts(INFO) == []


def test_a_leftover_imap_section_is_named_by_check_and_at_start(
    graph: GraphServer, tmp_path: Path
) -> None:
    config = write_graph_config(
        tmp_path / "mailbot.toml",
        graph,
        tmp_path / "data",
        imap={"host": "outlook.office365.com", "port": 993, "tls": "tls"},
        daemon={"idle": True},
    )
    checked = mailbot(config, graph, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "warn ignored under [graph]: [imap] (Graph reads the mailboxes)" in checked.stdout
    assert "warn ignored under [graph]: [daemon] idle" in checked.stdout
    run = mailbot(config, graph, "run", "--once")
    assert run.returncode == 0, run.stderr
    assert "ignored under [graph]: [imap] (Graph reads the mailboxes)" in run.stderr
    assert "ignored under [graph]: [daemon] idle" in run.stderr


@pytest.mark.parametrize(
    ("method", "held"),
    [("POST", r"/send$"), ("PATCH", r"/messages/[^/]+$")],
    ids=["before-send", "before-its-key"],
)
def test_kill_9_between_a_draft_and_its_send_leaves_no_draft_and_sends_once(
    graph: GraphServer, tmp_path: Path, method: str, held: str
) -> None:
    """The first run makes the acknowledgement's draft, and dies (SIGKILL) while Graph holds
    the request that follows it (the draft's key, or its send). The next run, on the same
    host, takes the dead process's rows back, finds the draft, deletes it, and sends the
    acknowledgement once through a new one."""
    data = tmp_path / "data"
    config = write_graph_config(tmp_path / "mailbot.toml", graph, data)
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    graph.fail(method, held, "hang")
    graph.hang_seconds = 60

    def command(now: str) -> list[str]:
        return [sys.executable, "-m", "mailbot", "--config", str(config), "--now", now]

    process = subprocess.Popen(
        [*command("2025-11-03T10:01:00-05:00"), "run", "--once"],
        cwd=REPO,
        env=environ(graph),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while graph.faults_hit == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert graph.faults_hit == 1
        assert graph.drafts(INFO), "the draft was made before the held request"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        graph.release()  # the held request ends unanswered, undone
    later = subprocess.run(
        [*command("2025-11-03T10:31:00-05:00"), "run", "--once"],
        cwd=REPO,
        env=environ(graph),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert later.returncode == 0, later.stderr
    assert "deleted: left by an attempt that did not send it" in later.stderr
    delivered = Counter(str(parsed(raw)["Message-ID"]) for _who, raw in graph.outgoing)
    assert set(delivered.values()) == {1}
    assert len(graph.to("josee.tremblay@example.org")) == 1
    assert graph.drafts(INFO) == []
