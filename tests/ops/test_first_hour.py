"""The rough edges an IT team met in its first hour with mailbot, each as it met it: the
command, its exit code, and one line on standard error, never a traceback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import REPO, AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office

NOW = "2025-11-03T10:01:07.123456-05:00"  # an instant with microseconds, as real clocks give
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(sandbox: Sandbox, settings: Settings, tmp_path: Path) -> Run:
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    environ = subprocess_environ(settings)

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(config), *args],
            cwd=REPO,
            env={**environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.fixture
def opened(sandbox: Sandbox, make_app: AppFactory) -> str:
    """One request, acknowledged: its reference."""
    body = "Bonjour,\r\n\r\nJe voudrais savoir...\r\nMerci.\r\n"
    sandbox.deliver(INFO, citizen_request(body=body), received_at=office("2025-11-03T10:00"))
    report = run_pass(make_app(NOW))
    assert report.ok, report.summary()
    return "MRI-2025-00001"


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_check_with_a_wrong_password_gives_the_servers_words(cli: Run) -> None:
    result = cli("check", env={"MAILBOT_IMAP_PASSWORD_PLAINTES": "wrong"})
    assert result.returncode == 1
    [failed] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert "b'" not in failed and 'b"' not in failed, failed
    assert failed.endswith("[AUTHENTICATIONFAILED] Authentication failed."), failed


def test_export_of_something_that_is_not_an_address_is_a_usage_error(cli: Run) -> None:
    result = cli("export", "--requester", "not-an-address")
    assert result.returncode == 2
    assert one_line(result) == (
        "mailbot: export: --requester 'not-an-address' is not an email address"
    )


def test_audit_of_a_ticket_that_does_not_exist_says_so(cli: Run, opened: str) -> None:
    result = cli("--now", NOW, "audit", "NOPE-1")
    assert result.returncode == 1
    assert one_line(result) == "mailbot: no ticket NOPE-1"


def test_audit_since_a_word_is_a_usage_error_that_says_what_is_expected(cli: Run) -> None:
    result = cli("audit", "--since", "yesterday")
    assert result.returncode == 2
    line = one_line(result)
    assert "isoformat" not in line
    assert "--since 'yesterday': expected a day (YYYY-MM-DD" in line


def test_audit_has_column_headers(cli: Run, opened: str) -> None:
    cli("--now", NOW, "show", opened)
    result = cli("--now", NOW, "audit", opened)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["when", "who", "action", "ticket", "detail"]
    assert any(" show " in row for row in rows)


def test_show_prints_no_empty_details(cli: Run, opened: str) -> None:
    result = cli("--now", NOW, "show", opened)
    assert result.returncode == 0, result.stderr
    events = result.stdout.split("events:\n", 1)[1].splitlines()
    assert any("acknowledgement_sent by mailbot" in line for line in events)
    assert not [line for line in events if line.rstrip() != line or line.endswith(":")]


def test_retention_dry_run_says_what_it_would_do_in_plain_words(cli: Run, opened: str) -> None:
    result = cli("--now", NOW, "retention", "run", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "'" not in result.stdout
    assert "(dry run, nothing changed): would destroy the raw messages of 0 ticket(s)" in (
        result.stdout
    )


def test_export_json_has_one_kind_of_line_ending(cli: Run, opened: str) -> None:
    result = cli("--now", NOW, "export", "--requester", CITIZEN)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    texts = [
        m["text"] for t in data["tickets"] for m in t["messages_received"] + t["messages_sent"]
    ]
    assert texts and all("\r" not in text for text in texts)
    assert any("\n" in text for text in texts)


def test_no_timestamp_shown_carries_microseconds(cli: Run, opened: str) -> None:
    outputs = [
        cli("--now", NOW, *args).stdout
        for args in (
            ("tickets", "--json"),
            ("show", opened, "--json"),
            ("export", "--requester", CITIZEN),
            ("audit", "--json"),
        )
    ]
    for output in outputs:
        assert output and not re.search(r"T\d\d:\d\d:\d\d\.\d", output), output


def test_the_html_report_speaks_french_and_points_to_no_repository_path(
    cli: Run, opened: str, tmp_path: Path
) -> None:
    page = tmp_path / "rapport.html"
    result = cli(
        "--now", NOW, "report", "--since", "2025-11-01", "--until", "2025-11-30",
        "--format", "html", "--output", str(page),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "docs/" not in html.split("-#}")[-1] and "docs/report-rules.md" not in html
    assert "America/Toronto" not in html
    assert "(heure de l'Est)" in html or "(heure de l&#39;Est)" in html
    assert "mailbot report-rules" in html
    rules = cli("report-rules")
    assert rules.returncode == 0 and rules.stdout.startswith("# How `mailbot report` counts")


def test_ctrl_c_stops_the_daemon_cleanly_with_130(
    sandbox: Sandbox, cli: Run, settings: Settings, tmp_path: Path
) -> None:
    """The README's exit codes: 130 for Ctrl-C (SIGTERM, systemd's stop, is 0)."""
    config = tmp_path / "mailbot.toml"
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=REPO,
        env=subprocess_environ(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not sandbox.fetch_all(CITIZEN) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopped" in err and "Traceback" not in err
