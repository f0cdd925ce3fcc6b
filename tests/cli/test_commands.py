"""The command line, as the IT team and auditors use it, against the real servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.intake import pipeline
from mailbot.intake.quarantine import list_quarantine, retry_quarantined
from mailbot.mail.parse import InboundMail, parse_message
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import REPO, AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office


def mailbot(
    config: Path, environ: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Path:
    return write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")


@pytest.fixture
def environ(settings: Settings) -> dict[str, str]:
    return subprocess_environ(settings)


def test_run_once_then_tickets_and_show_as_json(
    sandbox: Sandbox, config: Path, environ: dict[str, str]
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))

    run = mailbot(config, environ, "--now", "2025-11-03T10:01:00-05:00", "run", "--once")
    listed = mailbot(config, environ, "tickets", "--json")
    shown = mailbot(config, environ, "show", "MRI-2025-00001", "--json")

    assert run.returncode == 0, run.stderr
    assert "CITIZEN" not in run.stderr and CITIZEN not in run.stderr  # logs carry no addresses
    [ticket] = json.loads(listed.stdout)
    expected = {
        "ref": "MRI-2025-00001",
        "mailbox": "renseignements",
        "category": "information",
        "status": "open",
        "requester": CITIZEN,
        "language": "fr",
        "subject": "Demande de renseignements",
        "received_at": "2025-11-03T15:00:00+00:00",
        "receipt_date": "2025-11-03",
        "due_date": "2025-11-17",
        "acknowledged_at": "2025-11-03T15:01:00+00:00",
        "answered_at": None,
        "closed_at": None,
    }
    assert {key: ticket[key] for key in expected} == expected
    detail = json.loads(shown.stdout)
    assert {d["commitment"]: d["due_date"] for d in detail["deadlines"]} == {
        "ack": "2025-11-05",
        "info_reply": "2025-11-17",
    }
    [message] = detail["messages"]
    assert message["kind"] == "new_request" and message["rules"] == []
    assert [e["kind"] for e in detail["events"]][:2] == ["opened", "acknowledgement_queued"]


def test_run_once_exits_non_zero_when_a_server_is_unreachable(
    sandbox: Sandbox, config: Path, environ: dict[str, str]
) -> None:
    sandbox.stop_imap()
    result = mailbot(config, environ, "run", "--once")
    assert result.returncode == 1
    assert "mailbox renseignements" in result.stderr


def test_check_logs_in_to_every_server(
    sandbox: Sandbox, config: Path, environ: dict[str, str]
) -> None:
    good = mailbot(config, environ, "check")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("ok   imap") == 2 and "ok   smtp" in good.stdout
    # Mail to each notes address arrives in the watched folder; the check leaves no trace.
    assert "ok   notes renseignements: renseignements+note@mri.gouv.qc.ca arrives in INBOX" in (
        good.stdout
    )
    assert "ok   notes plaintes: plaintes+note@mri.gouv.qc.ca arrives in INBOX" in good.stdout
    assert sandbox.fetch_all(INFO) == []

    bad = mailbot(config, {**environ, "MAILBOT_IMAP_PASSWORD_PLAINTES": "wrong"}, "check")
    assert bad.returncode == 1
    assert "FAIL imap plaintes" in bad.stdout and "ok   imap renseignements" in bad.stdout


def test_check_says_when_the_notes_address_does_not_reach_the_mailbox(
    sandbox: Sandbox, config: Path, environ: dict[str, str]
) -> None:
    assert sandbox.handler is not None
    sandbox.handler.plus_addressing = False  # a mail system with plus addressing turned off

    result = mailbot(config, environ, "check")

    assert result.returncode == 1
    assert "ok   imap renseignements" in result.stdout and "ok   smtp" in result.stdout
    assert (
        "FAIL notes renseignements: renseignements+note@mri.gouv.qc.ca: refused by the relay "
        "(550 5.1.1 No such user in the sandbox); turn plus addressing on"
    ) in result.stdout


def test_the_daemon_stops_cleanly_on_sigterm(
    sandbox: Sandbox, config: Path, environ: dict[str, str]
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not sandbox.fetch_all(CITIZEN) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in err
    assert len(sandbox.fetch_all(CITIZEN)) == 1


def test_due_prints_the_worked_example(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["--config", str(REPO / "config" / "mailbot.toml"), "due", "2025-12-19T17:05", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["receipt_day"] == "2025-12-22"
    dates = {d["id"]: d["due_date"] for d in report["deadlines"]}
    assert dates["ack"] == "2025-12-29"
    assert dates["info_reply"] == "2026-01-13"
    assert dates["complaint_reply"] == "2026-01-20"
    assert dates["cooperation_result"] == "2026-02-10"


def test_holidays_prints_the_public_service_calendar(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--config", str(REPO / "config" / "mailbot.toml"), "holidays", "2026", "--json"]) == 0
    )
    days = [d["date"] for d in json.loads(capsys.readouterr().out)["2026"]]
    assert days == [
        "2026-01-01",
        "2026-01-02",
        "2026-04-03",
        "2026-04-06",
        "2026-05-18",
        "2026-06-24",
        "2026-07-01",
        "2026-09-07",
        "2026-10-12",
        "2026-12-24",
        "2026-12-25",
        "2026-12-28",
        "2026-12-31",
    ]


def a_parser_bug_on(monkeypatch: pytest.MonkeyPatch, marker: bytes) -> None:
    """Make the parser fail on the message containing `marker` (until monkeypatch.undo())."""
    real_parse = parse_message

    def parser_with_a_bug(raw: bytes) -> InboundMail:
        if marker in raw:
            raise RuntimeError("a parser bug")
        return real_parse(raw)

    monkeypatch.setattr(pipeline, "parse_message", parser_with_a_bug)


def test_quarantine_list_and_retry(
    sandbox: Sandbox, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    sandbox.deliver(
        INFO, citizen_request("<req-2@example.org>"), received_at=office("2025-11-03T10:00")
    )
    app = make_app("2025-11-03T10:01:00-05:00")
    a_parser_bug_on(monkeypatch, b"<req-1@example.org>")
    report = run_pass(app)
    monkeypatch.undo()

    assert (report.outcomes["quarantined"], report.outcomes["new_request"]) == (1, 1)
    [row] = list_quarantine(app)
    assert row.reason == "RuntimeError: a parser bug"
    assert len(sandbox.fetch_all(INFO, "Quarantaine")) == 1
    assert len(sandbox.fetch_all(INFO, "Traites")) == 1  # the one behind it was not blocked

    later = make_app("2025-11-03T10:30:00-05:00")
    state = retry_quarantined(later, row.id)
    run_pass(later)  # the next pass sends what the retry queued

    assert state == "processed"
    assert list_quarantine(app) == []
    assert len(sandbox.fetch_all(CITIZEN)) == 2


def test_report_writes_the_html_page(
    sandbox: Sandbox, config: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    mailbot(config, environ, "--now", "2025-11-03T10:01:00-05:00", "run", "--once")
    page = tmp_path / "rapport.html"

    result = mailbot(
        config,
        environ,
        "--now",
        "2025-12-01T12:00:00-05:00",
        "report",
        "--since",
        "2025-11-01",
        "--until",
        "2025-11-30",
        "--format",
        "html",
        "--output",
        str(page),
    )
    table = mailbot(
        config,
        environ,
        "--now",
        "2025-12-01T12:00:00-05:00",
        "report",
        "--since",
        "2025-11-01",
        "--until",
        "2025-11-30",
        "--format",
        "json",
    )

    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    figures = json.loads(table.stdout)
    assert "MRI-2025-00001" not in html  # no case listing without --details
    assert figures["as_of"].startswith("2025-12-01")
    by_id = {item["id"]: item["all_queues"] for item in figures["commitments"]}
    assert (by_id["ack"]["cases"], by_id["ack"]["met"]) == (1, 1)
    # Never answered and due 2025-11-17: counted late, not left out.
    assert (by_id["info_reply"]["cases"], by_id["info_reply"]["open_late"]) == (1, 1)


def test_export_gives_a_requester_their_tickets_and_messages(
    sandbox: Sandbox, config: Path, environ: dict[str, str]
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    sandbox.deliver(
        INFO,
        citizen_request("<other@example.org>", sender="john.smith@example.com"),
        received_at=office("2025-11-03T10:00"),
    )
    mailbot(config, environ, "--now", "2025-11-03T10:01:00-05:00", "run", "--once")

    result = mailbot(config, environ, "export", "--requester", CITIZEN.upper())

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [ticket] = data["tickets"]
    assert ticket["ref"] == "MRI-2025-00001"
    [received] = ticket["messages_received"]
    assert "bourses" in received["text"]
    [sent] = ticket["messages_sent"]
    assert sent["purpose"] == "acknowledgement" and "MRI-2025-00001" in sent["text"]
    assert "agent.info@mri.gouv.qc.ca" not in result.stdout  # internal details stay out
    assert "john.smith" not in result.stdout
