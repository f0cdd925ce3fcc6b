"""Configuration errors are clear: each names the key or variable at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.errors import ConfigError
from mailbot.settings import load_settings, secret

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "config" / "mailbot.toml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config").mkdir(exist_ok=True)
    path = tmp_path / "config" / "mailbot.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=environ or {})
    return str(caught.value)


def test_the_example_configuration_is_valid() -> None:
    settings = load_settings(REPO / "config" / "mailbot.toml", environ={})
    assert [m.name for m in settings.mailboxes] == ["renseignements", "plaintes"]
    assert settings.mailbox("plaintes").commitments == ("ack", "complaint_reply")
    assert settings.database_url == f"sqlite:///{REPO / 'data' / 'mailbot.db'}"


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    message = error_for(tmp_path, EXAMPLE.replace("[imap]\n", "[imap]\nhots = 'x'\n"))
    assert "unknown key 'imap.hots'" in message


def test_a_bad_tls_mode_is_named(tmp_path: Path) -> None:
    message = error_for(tmp_path, EXAMPLE.replace('tls = "none"', 'tls = "ssl"', 1))
    assert "imap.tls" in message


def test_a_missing_section_is_named(tmp_path: Path) -> None:
    start = EXAMPLE.index("[smtp]")
    end = EXAMPLE.index("[daemon]")
    message = error_for(tmp_path, EXAMPLE[:start] + EXAMPLE[end:])
    assert "missing key 'smtp'" in message


def test_an_unknown_commitment_is_named(tmp_path: Path) -> None:
    message = error_for(tmp_path, EXAMPLE.replace('"ack", "info_reply"', '"ack", "info"'))
    assert "unknown commitment(s) ['info']" in message


def test_broken_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    message = error_for(tmp_path, EXAMPLE + "\n[imap\n")
    assert "not valid TOML" in message and "mailbot.toml" in message


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"configuration file .*nowhere\.toml"):
        load_settings(tmp_path / "nowhere.toml", environ={})


def test_the_database_url_comes_from_the_environment_first(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, EXAMPLE), environ={"MAILBOT_DATABASE_URL": "sqlite:////tmp/other.db"}
    )
    assert settings.database_url == "sqlite:////tmp/other.db"


def test_a_missing_secret_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="MAILBOT_IMAP_PASSWORD_PLAINTES is not set"):
        secret({}, "MAILBOT_IMAP_PASSWORD_PLAINTES", "mailbox plaintes")


def test_the_command_line_exits_2_and_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, EXAMPLE.replace("[daemon]\n", "[daemon]\npoll = 5\n"))

    code = main(["--config", str(path), "tickets"])

    assert code == 2
    assert "unknown key 'daemon.poll'" in capsys.readouterr().err


def test_now_without_an_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--now", "2025-11-03T10:00", "holidays", "2026"]) == 2
    assert "no UTC offset" in capsys.readouterr().err
