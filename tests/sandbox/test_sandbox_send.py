"""`mailbot sandbox send` puts mail into a running sandbox; the sandbox's relay delivers to any
address (the rest kept in a catch-all mailbox); a relay's refusal is shown with its text."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import CATCH_ALL, Sandbox, free_port, make_sandbox_dir, write_state
from mailbot.settings import Settings
from tests.conftest import REPO, AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import INFO, parsed, text_of

LEA = "lea.roy@example.org"  # not a sandbox user


def mailbot(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The sandbox as `mailbot sandbox serve` runs it: its relay delivers to any address."""
    root = make_sandbox_dir("mailbot-send-")
    box = Sandbox(root=root, catch_all=CATCH_ALL)
    box.start()
    try:
        yield box
    finally:
        box.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def state_dir(sandbox: Sandbox, tmp_path: Path) -> Path:
    """What `mailbot sandbox serve --dir DIR` leaves for the other commands."""
    directory = tmp_path / "sandbox-state"
    directory.mkdir()
    write_state(sandbox, directory / "state.json")
    return directory


def test_send_puts_a_request_in_and_the_acknowledgement_reaches_the_catch_all(
    sandbox: Sandbox, state_dir: Path, make_app: AppFactory
) -> None:
    sent = mailbot(
        "sandbox", "send", "--dir", str(state_dir), "--from", LEA, "--to", "renseignements",
        "--subject", "Question sur les bourses", cwd=REPO,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert f"sent from {LEA} to {INFO}" in sent.stdout
    [arrived] = sandbox.fetch_all(INFO)
    assert parsed(arrived)["Subject"] == "Question sur les bourses"

    # The message arrived now (the IMAP server's clock): a pass as of now.
    report = run_pass(make_app(datetime.now(UTC).isoformat()))

    assert report.ok and report.summary().count("failed=0") == 1, report.summary()
    [acknowledgement] = sandbox.fetch_all(CATCH_ALL)
    message = parsed(acknowledgement)
    assert message["To"].addresses[0].addr_spec == LEA
    assert message["Delivered-To"] == LEA
    assert f"[MRI-{datetime.now(UTC).year}-00001]" in str(message["Subject"])


def test_send_a_file_with_its_sender_replaced(
    sandbox: Sandbox, state_dir: Path, tmp_path: Path
) -> None:
    eml = tmp_path / "plainte.eml"
    eml.write_bytes((REPO / "mailbot" / "sandbox" / "samples" / "plainte.eml").read_bytes())
    sent = mailbot(
        "sandbox", "send", str(eml), "--dir", str(state_dir), "--from", LEA, "--to", "plaintes",
        cwd=tmp_path,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    [arrived] = sandbox.fetch_all("plaintes@mri.gouv.qc.ca")
    message = parsed(arrived)
    assert message["From"].addresses[0].addr_spec == LEA
    assert "plainte" in text_of(message).lower() or message["Subject"]


def test_send_without_a_running_sandbox_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"smtp_port": free_port()}))
    sent = mailbot("sandbox", "send", "--dir", str(tmp_path), cwd=tmp_path)
    assert sent.returncode == 1
    [line] = sent.stderr.splitlines()
    assert "nothing answers on 127.0.0.1" in line and "mailbot sandbox serve" in line


def test_send_to_an_unknown_mailbox_is_a_usage_error(tmp_path: Path) -> None:
    sent = mailbot("sandbox", "send", "--to", "nope", "--dir", str(tmp_path), cwd=tmp_path)
    assert sent.returncode == 2
    [line] = sent.stderr.splitlines()
    assert "no mailbox 'nope'" in line and "renseignements" in line


def test_show_gives_the_relays_own_text_for_a_failed_acknowledgement(
    sandbox: Sandbox, state_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    assert sandbox.handler is not None
    sandbox.handler.catch_all = None  # a relay that refuses unknown recipients
    sent = mailbot("sandbox", "send", "--dir", str(state_dir), "--from", LEA, cwd=REPO)
    assert sent.returncode == 0, sent.stderr
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    env = subprocess_environ(settings)

    run = mailbot("--config", str(config), "run", "--once", cwd=REPO, env=env)
    ref = f"MRI-{datetime.now(UTC).year}-00001"
    shown = mailbot("--config", str(config), "show", ref, cwd=REPO, env=env)

    assert run.returncode == 0, run.stderr
    [failed] = [line for line in shown.stdout.splitlines() if "acknowledgement_failed" in line]
    assert "550" in failed and "No such user in the sandbox" in failed, shown.stdout


def test_serve_keeps_the_sandbox_where_dovecots_mail_user_can_reach_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root in a folder other users cannot enter (/root, a mktemp folder): `serve` and `send`
    agree on a folder under the system's temporary directory instead of failing."""
    import os
    import tempfile

    from mailbot.sandbox.cli import DEFAULT_SERVE_DIR, serve_dir

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.chdir(private)
    assert serve_dir(tmp_path / "given") == tmp_path / "given"
    if os.geteuid() == 0:
        assert serve_dir(None) == Path(tempfile.gettempdir()) / f"mailbot-sandbox-{os.getuid()}"
    else:
        assert serve_dir(None) == DEFAULT_SERVE_DIR


def test_serve_gives_the_other_commands_a_configuration_with_its_own_data_folder(
    tmp_path: Path,
) -> None:
    import tomllib

    from mailbot.sandbox.cli import EXAMPLE_CONFIG, sandbox_config_copy

    text = sandbox_config_copy(EXAMPLE_CONFIG.read_text(), tmp_path / "sb" / "data")
    assert tomllib.loads(text)["data_dir"] == str(tmp_path / "sb" / "data")
    assert text.count("data_dir") == EXAMPLE_CONFIG.read_text().count("data_dir")
