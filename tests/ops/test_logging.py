"""Structured logs: `[logging] format = "json"` gives one JSON object a line, with the mailbox,
UID, ticket reference and SMTP code of each event, and never a citizen's address, name,
subject or words; the text format shows the same fields; `level` filters."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.errors import ConfigError
from mailbot.logformat import JsonFormatter, TextFormatter, log_fields
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings, parse_settings
from tests.conftest import REPO, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import INFO, citizen_request, office

CITIZEN = "josee.tremblay@example.org"
# An address the sandbox's SMTP server refuses (550 5.1.1): its acknowledgement fails.
UNKNOWN = "paul.inconnu@example.com"
SUBJECT = "Bourses pour ma fille Léa"
BODY = "Ma fille Léa Tremblay souhaite étudier à Lyon en septembre."
# Nothing of this may reach the log.
NOW = "2025-11-03T10:01:00-05:00"
PERSONAL = (CITIZEN, UNKNOWN, "Josée", "Tremblay", "Inconnu", SUBJECT, "Bourses", "Léa", "Lyon")


def deliver_two_requests(sandbox: Sandbox) -> None:
    raw = citizen_request(subject=SUBJECT, body=BODY)
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    unknown = citizen_request("<req-2@example.com>", sender=UNKNOWN, subject=SUBJECT, body=BODY)
    sandbox.deliver(INFO, unknown, received_at=office("2025-11-03T10:00"))


def run_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, **logging_section: str
) -> subprocess.CompletedProcess[str]:
    config = write_sandbox_config(
        tmp_path / "mailbot.toml", sandbox, tmp_path / "data", logging=dict(logging_section)
    )
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "--now", NOW, "run", "--once"],
        cwd=REPO,
        env=subprocess_environ(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_nothing_personal(text: str) -> None:
    for secret in PERSONAL:
        assert secret not in text, secret


def test_a_pass_logs_one_json_object_a_line_with_its_fields_and_nothing_personal(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    deliver_two_requests(sandbox)

    result = run_once(sandbox, settings, tmp_path, format="json", level="INFO")

    assert result.returncode == 0, result.stderr
    entries = []
    for line in result.stderr.splitlines():
        entry = json.loads(line)  # every line is one JSON object
        assert isinstance(entry, dict), line
        assert_nothing_personal(line)
        assert_nothing_personal(" ".join(str(value) for value in entry.values()))
        entries.append(entry)
    for entry in entries:
        assert {"timestamp", "level", "logger", "event"} <= entry.keys(), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])
        assert datetime.fromisoformat(entry["timestamp"]).tzinfo == UTC
        assert entry["level"] in ("INFO", "WARNING"), entry
        assert entry["logger"].startswith("mailbot"), entry

    inbound = [e for e in entries if e["event"] == "inbound new_request (opened)"]
    assert [(e["mailbox"], e["uid"], e["ref"]) for e in inbound] == [
        ("renseignements", 1, "MRI-2025-00001"),
        ("renseignements", 2, "MRI-2025-00002"),
    ]
    [refused] = [e for e in entries if e["level"] == "WARNING" and "smtp_code" in e]
    assert refused["smtp_code"] == "550 5.1.1"
    assert refused["purpose"] == "acknowledgement"
    assert isinstance(refused["outbox"], int)
    assert refused["logger"] == "mailbot.sending.outbox"
    sent = [e for e in entries if e["event"].startswith("sent ")]
    # The refused acknowledgement is reported to the queue's staff (a failure notice).
    assert sorted(e["purpose"] for e in sent) == [
        "acknowledgement",
        "digest",
        "failure_notice",
        "notice",
        "notice",
    ]
    assert all(isinstance(e["outbox"], int) and "smtp_code" not in e for e in sent)
    [summary] = [e for e in entries if e["event"].startswith("pass done: ")]
    assert "fetched=2" in summary["event"] and "failed=1" in summary["event"]


def test_the_text_format_shows_the_same_fields_and_the_level_filters(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    deliver_two_requests(sandbox)

    result = run_once(sandbox, settings, tmp_path, format="text", level="warning")

    assert result.returncode == 0, result.stderr
    assert_nothing_personal(result.stderr)
    lines = result.stderr.splitlines()
    assert lines and all(" WARNING " in line or " ERROR " in line for line in lines), lines
    [refused] = [line for line in lines if "mailbot.sending.outbox" in line]
    assert re.search(r" outbox=\d+ purpose=acknowledgement smtp_code=550 5\.1\.1$", refused)


def test_an_unknown_format_or_level_is_named() -> None:
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    for values, key in (
        ({"format": "xml"}, "logging.format"),
        ({"level": "LOUD"}, "logging.level"),
    ):
        with pytest.raises(ConfigError, match=re.escape(key)):
            parse_settings({**document, "logging": values}, base_dir=REPO, environ={})


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "mailbot.intake.pipeline", logging.INFO, __file__, 1, "inbound %s", ("x",), None
    )
    made.__dict__.update(extra)
    return made


def test_the_formats_show_the_fields_in_order_and_the_exception() -> None:
    fields = log_fields(ref="MRI-2025-00001", uid=7, mailbox="plaintes", smtp_code=None)
    assert fields == {"ref": "MRI-2025-00001", "uid": 7, "mailbox": "plaintes"}
    text = TextFormatter().format(record(**fields))
    assert text.endswith(
        "INFO mailbot.intake.pipeline: inbound x mailbox=plaintes uid=7 ref=MRI-2025-00001"
    )
    try:
        raise ValueError("no such header")
    except ValueError:
        failing = record(**fields)
        failing.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(failing))
    assert {key: entry[key] for key in ("level", "logger", "event", "mailbox", "uid", "ref")} == {
        "level": "INFO",
        "logger": "mailbot.intake.pipeline",
        "event": "inbound x",
        "mailbox": "plaintes",
        "uid": 7,
        "ref": "MRI-2025-00001",
    }
    assert (
        entry["exception"].startswith("Traceback")
        and "ValueError: no such header" in entry["exception"]
    )
    assert "\n" not in JsonFormatter().format(failing)


SECRET_NUMBER = "046 454 286"  # a social insurance number, in the request's text
MAIL_WORDS = (*(w for w in PERSONAL if w != "Inconnu"), SECRET_NUMBER, "example.org", "example.com")


def found_in(text: str) -> list[str]:
    """The handled mail's addresses and words that `text` holds (as written, or as a
    library would print bytes: repr escapes, quoted-printable)."""
    escaped = text.encode("utf-8", "replace").decode("unicode_escape", "replace")
    try:
        escaped_utf8 = escaped.encode("latin-1").decode("utf-8")
    except UnicodeError:
        escaped_utf8 = escaped
    return [word for word in MAIL_WORDS if word in text or word in escaped_utf8]


def test_a_verbose_daemon_logs_tracebacks_and_its_own_details_never_the_mail(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    raw = citizen_request(subject=SUBJECT, body=f"{BODY} Mon NAS : {SECRET_NUMBER}.")
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    unknown = citizen_request("<req-2@example.com>", sender=UNKNOWN, subject=SUBJECT, body=BODY)
    sandbox.deliver(INFO, unknown, received_at=office("2025-11-03T10:00"))
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")

    verbose = ["--config", str(config), "--now", NOW, "-v", "run", "--once"]
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", *verbose],
        cwd=REPO,
        env=subprocess_environ(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert " DEBUG " in result.stderr  # -v was on
    assert "inbound new_request (opened)" in result.stderr
    # Control: the same scan finds every word in the mail itself, and in a library's dump.
    assert found_in(raw.decode() + unknown.decode()) == list(MAIL_WORDS)
    assert found_in(repr(raw + unknown)) == list(MAIL_WORDS)
    assert found_in(result.stderr) == []
