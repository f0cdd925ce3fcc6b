"""The command line tried as a new user would: every mistake, closed pipe, missing package or
internal error ends in one clear line on standard error and a documented exit code, never a
traceback; the sandbox works from any directory and honours --config; global options are
accepted after the command; every option says what it does; people read office time."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w

from mailbot.cli import (
    EXIT_CONFIG,
    EXIT_DEPENDENCY,
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    main,
)
from mailbot.cli.commands import COMMANDS
from mailbot.cli.parser import build_parser
from mailbot.sandbox.servers import Sandbox, free_port
from mailbot.settings import Settings
from tests.conftest import REPO, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import INFO, citizen_request, office

# Each test runs mailbot as a separate process (several start Dovecot): not the fast suite.
pytestmark = pytest.mark.server


def offline_config(tmp_path: Path, **top: object) -> Path:
    """The example configuration with its data in the test's directory and servers that
    nobody listens on."""
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["data_dir"] = str(tmp_path / "data")
    document["imap"]["port"] = free_port()
    document["smtp"]["port"] = free_port()
    document.update(top)
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def mailbot(
    *args: str, cwd: Path = REPO, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = environ or {
        **os.environ,
        "MAILBOT_SIGNING_KEY": "k" * 32,
        "MAILBOT_IMAP_PASSWORD_RENSEIGNEMENTS": "x",
        "MAILBOT_IMAP_PASSWORD_PLAINTES": "x",
    }
    env.pop("MAILBOT_DATABASE_URL", None)
    env.pop("MAILBOT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command wrote on standard error (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_input_is_one_line_naming_the_problem(tmp_path: Path) -> None:
    config = str(offline_config(tmp_path))

    year = mailbot("--config", config, "holidays", "1800")
    not_a_year = mailbot("--config", config, "holidays", "l'an 2000")
    since = mailbot("--config", config, "report", "--since", "2025-13-01", "--until", "2025-12-31")
    now = mailbot("--config", config, "--now", "hier", "tickets")
    missing = mailbot("--config", str(tmp_path / "absent.toml"), "tickets")

    assert year.returncode == EXIT_CONFIG
    assert one_line(year) == (
        "mailbot: holidays: year 1800 is outside the calendar (years 2003 to 2100)"
    )
    assert not_a_year.returncode == EXIT_CONFIG
    assert 'argument year: "l\'an 2000" is not a year' in one_line(not_a_year)
    assert since.returncode == EXIT_CONFIG
    assert one_line(since) == (
        "mailbot report: argument --since: '2025-13-01' is not a date (write YYYY-MM-DD) "
        "(see mailbot report --help)"
    )
    assert now.returncode == EXIT_CONFIG and one_line(now).startswith("mailbot: --now: ")
    assert missing.returncode == EXIT_CONFIG and "absent.toml" in one_line(missing)


def test_an_unknown_mailbox_is_refused_like_an_unknown_queue(tmp_path: Path) -> None:
    config = str(offline_config(tmp_path))

    tickets = mailbot("--config", config, "tickets", "--mailbox", "NOPE")
    report = mailbot(
        "--config", config, "report", "--since", "2025-11-01", "--until", "2025-11-30",
        "--queue", "NOPE",
    )  # fmt: skip
    known = mailbot("--config", config, "tickets", "--mailbox", "plaintes")

    assert tickets.returncode == report.returncode == EXIT_FAILURE
    assert one_line(tickets) == "mailbot: no mailbox 'NOPE' (configured: renseignements, plaintes)"
    assert one_line(report) == "mailbot: no queue 'NOPE' (configured: renseignements, plaintes)"
    assert known.returncode == EXIT_OK and known.stdout == "no tickets\n"


def test_global_options_are_accepted_after_the_command(tmp_path: Path) -> None:
    config = str(offline_config(tmp_path))

    after = mailbot("tickets", "--json", "--config", config, "--now", "2025-11-03T10:00-05:00")
    nested = mailbot("quarantine", "list", "--config", config)
    before_wins = mailbot("--config", config, "holidays", "2026", "--json")

    assert after.returncode == EXIT_OK, after.stderr
    assert after.stdout == "[]\n"
    assert nested.returncode == EXIT_OK and nested.stdout == "quarantine is empty\n"
    assert before_wins.returncode == EXIT_OK and '"2026-01-01"' in before_wins.stdout


def test_a_closed_pipe_ends_with_one_line_and_141(tmp_path: Path) -> None:
    config = str(offline_config(tmp_path))
    env = {**os.environ, "MAILBOT_SIGNING_KEY": "k" * 32}
    env.pop("MAILBOT_DATABASE_URL", None)
    for command in (["tickets", "--json"], ["holidays", "2026", "2027", "--json"]):
        # `mailbot tickets --json | head -0`: the reader is gone before mailbot writes.
        process = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", config, *command],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(60) == EXIT_PIPE, err
        assert err == "mailbot: output closed by its reader; stopped\n", err


def test_a_server_failing_in_a_pass_is_named_without_a_traceback(tmp_path: Path) -> None:
    config = str(offline_config(tmp_path))

    result = mailbot("--config", config, "--now", "2025-11-03T10:00-05:00", "run", "--once")

    assert result.returncode == EXIT_FAILURE
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 2 and "mailbox renseignements" in errors[0], result.stderr
    assert "Connection refused" in errors[0]


def test_a_missing_optional_package_names_the_extra_and_leaves_no_server_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtpd", None)  # as if `mailbot[sandbox]` was not installed
    monkeypatch.setitem(sys.modules, "aiosmtpd.controller", None)

    code = main(["sandbox", "demo"])

    out, err = capsys.readouterr()
    assert code == EXIT_DEPENDENCY
    assert err == (
        'mailbot: the optional package aiosmtpd is not installed: pip install "mailbot[sandbox]"\n'
    )
    # Dovecot had started: the failed command stopped it, and said where its files are.
    [root] = [line.split()[-1] for line in out.splitlines() if line.startswith("  rm -rf ")]
    config = f"{root}/mail-system/dovecot.conf"
    assert Path(config).exists()
    assert not [pid for pid in _processes() if config in _command_line(pid)]
    subprocess.run(["rm", "-rf", root], check=True)


def _processes() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def _command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_an_internal_error_or_an_interruption_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = str(offline_config(tmp_path))

    def broken(*_args: object) -> int:
        raise RuntimeError("a bug")

    def interrupted(*_args: object) -> int:
        raise KeyboardInterrupt

    holidays = COMMANDS["holidays"]
    monkeypatch.setitem(COMMANDS, "holidays", replace(holidays, run=broken))
    assert main(["--config", config, "holidays", "2026"]) == EXIT_INTERNAL
    assert capsys.readouterr().err == (
        "mailbot: internal error: RuntimeError: a bug (run again with -v for the details)\n"
    )
    assert main(["--config", config, "holidays", "2026", "-v"]) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err  # asked for with -v
    monkeypatch.setitem(COMMANDS, "holidays", replace(holidays, run=interrupted))
    assert main(["--config", config, "holidays", "2026"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "mailbot: interrupted\n"


def test_every_option_and_argument_has_help() -> None:
    def walk(parser: argparse.ArgumentParser, where: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{where} {name}")
            elif not action.help:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(COMMANDS.values()), "mailbot") == []


def test_the_sandbox_demo_works_from_any_directory_honours_config_and_says_where_it_left_files(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["organisation"]["ticket_prefix"] = "ESSAI"
    config = tmp_path / "mine.toml"
    config.write_text(tomli_w.dumps(document))

    clean = {key: value for key, value in os.environ.items() if not key.startswith("MAILBOT_")}
    demo = ("sandbox", "demo")
    plain = mailbot(*demo, "--now", "2025-11-03T10:01:00-05:00", cwd=elsewhere, environ=clean)
    mine = mailbot(*demo, "--config", str(config), cwd=elsewhere, environ=dict(clean))

    assert plain.returncode == EXIT_OK, plain.stdout + plain.stderr
    assert "the example configuration" in plain.stdout
    assert "Ticket MRI-2025-00001 (information)" in plain.stdout
    assert "acknowledged 2025-11-03 10:01" in plain.stdout  # office time, to the minute
    assert mine.returncode == EXIT_OK, mine.stdout + mine.stderr
    assert "Ticket ESSAI-" in mine.stdout
    for result in (plain, mine):
        [root] = [line.split()[-1] for line in result.stdout.splitlines() if "rm -rf" in line]
        assert (Path(root) / "data" / "mailbot.db").exists()
        subprocess.run(["rm", "-rf", root], check=True)
    assert list(elsewhere.iterdir()) == []  # nothing left in the directory it ran from


def test_show_gives_times_in_office_time_to_the_minute(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    environ = subprocess_environ(settings)
    run = mailbot("--config", str(config), "--now", "2025-11-03T15:01:00Z", "run", "--once",
                  environ=environ)  # fmt: skip
    shown = mailbot("show", "MRI-2025-00001", "--config", str(config), environ=environ)

    assert run.returncode == EXIT_OK, run.stderr
    assert shown.returncode == EXIT_OK, shown.stderr
    lines = shown.stdout.splitlines()
    assert "received_at:     2025-11-03 10:00" in lines
    assert "acknowledged_at: 2025-11-03 10:01" in lines
    assert "(times are office time, America/Toronto)" in lines
    assert any(line.startswith("  2025-11-03 10:01 acknowledgement_queued") for line in lines)


def test_an_unreachable_database_or_a_missing_driver_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(offline_config(tmp_path))
    url = f"postgresql+psycopg://mailbot@127.0.0.1:{free_port()}/mailbot"
    environ = {**os.environ, "MAILBOT_SIGNING_KEY": "k" * 32}

    down = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", config, "tickets"],
        cwd=REPO,
        env={**environ, "MAILBOT_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    monkeypatch.setenv("MAILBOT_DATABASE_URL", url)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if `mailbot[postgres]` was missing
    code = main(["--config", config, "tickets"])

    assert down.returncode == EXIT_FAILURE
    assert one_line(down).startswith("mailbot: database: connection failed: ")
    assert code == EXIT_DEPENDENCY
    assert capsys.readouterr().err == (
        'mailbot: the optional package psycopg is not installed: pip install "mailbot[postgres]"\n'
    )
