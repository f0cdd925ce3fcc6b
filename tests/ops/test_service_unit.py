"""deploy/mailbot.service: `systemd-analyze verify` accepts it, and it keeps its hardening.

The unit names /opt/mailbot/bin/mailbot, which a test machine does not have, and `verify`
refuses a unit whose program is missing: each check runs on a copy whose ExecStart points at
a stand-in program in a temporary directory, the rest of the unit unchanged. `verify` only
warns (and exits 0) about an unknown key or a bad value, so any output at all is a failure.
systemd-analyze comes with Debian's systemd package (scripts/bootstrap installs it); without
it these tests fail, they never skip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.server  # real servers or system tools: not the fast suite

UNIT = REPO / "deploy" / "mailbot.service"
PROGRAM = "/opt/mailbot/bin/mailbot"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd (scripts/bootstrap)")
    return found


def directives(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value given, in order (systemd allows repeated keys)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def with_stand_in(text: str, directory: Path) -> str:
    """The unit with its program replaced by an executable stand-in in `directory`."""
    stand_in = directory / "mailbot"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    assert text.count(f"ExecStart={PROGRAM} ") == 1
    return text.replace(f"ExecStart={PROGRAM} ", f"ExecStart={stand_in} ")


def verify(text: str, directory: Path) -> tuple[int, str]:
    """Exit code and everything `systemd-analyze verify` printed for `text` as a unit."""
    unit = directory / "mailbot.service"
    unit.write_text(text)
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    code, output = verify(with_stand_in(UNIT.read_text(), tmp_path), tmp_path)
    assert (code, output) == (0, "")


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (("ProtectSystem=strict", "ProtectSytem=strict"), "Unknown key"),
        (("Restart=on-failure", "Restart=sometimes"), "restart specifier"),
        (("KillSignal=SIGTERM", "KillSignal=SIGTERMINATE"), "signal"),
        (("[Service]", "[Servise]"), "Unknown section"),
        (("ExecStart=", "ExecStart=/nonexistent"), "not executable"),
    ],
    ids=["misspelled-key", "bad-restart", "bad-signal", "bad-section", "missing-program"],
)
def test_verify_rejects_a_broken_unit(
    tmp_path: Path, broken: tuple[str, str], expected: str
) -> None:
    """The check above can fail: each of these breakages is reported."""
    text = with_stand_in(UNIT.read_text(), tmp_path)
    assert broken[0] in text
    code, output = verify(text.replace(broken[0], broken[1], 1), tmp_path)
    assert code != 0 or output, "systemd-analyze verify said nothing about a broken unit"
    assert expected.lower() in output.lower(), output


def test_the_unit_runs_mailbot_unprivileged_hardened_and_stoppable() -> None:
    unit = directives(UNIT.read_text())
    expected = {
        "Service.User": ["mailbot"],
        "Service.Group": ["mailbot"],
        "Service.EnvironmentFile": ["/etc/mailbot/secrets"],
        "Service.ExecStart": [f"{PROGRAM} --config /etc/mailbot/mailbot.toml run"],
        "Service.StateDirectory": ["mailbot"],
        "Service.WorkingDirectory": ["/var/lib/mailbot"],
        "Service.KillSignal": ["SIGTERM"],
        "Service.Restart": ["on-failure"],
        "Service.RestartPreventExitStatus": ["2"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.CapabilityBoundingSet": [""],
        "Service.AmbientCapabilities": [""],
        "Service.ProtectSystem": ["strict"],
        "Service.ProtectHome": ["yes"],
        "Service.PrivateTmp": ["yes"],
        "Service.PrivateDevices": ["yes"],
        "Service.UMask": ["0077"],
        "Install.WantedBy": ["multi-user.target"],
    }
    assert {key: unit.get(key) for key in expected} == expected


def test_the_units_command_line_is_one_mailbot_accepts() -> None:
    [command] = directives(UNIT.read_text())["Service.ExecStart"]
    arguments = command.split()[1:]
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", *arguments, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--once" in result.stdout  # the help of `mailbot run`


def test_the_units_exposure_is_low(tmp_path: Path) -> None:
    """systemd's own offline review scores the unit's exposure (0 to 10): at most 2.0."""
    unit = tmp_path / "mailbot.service"
    unit.write_text(with_stand_in(UNIT.read_text(), tmp_path))
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "Overall exposure level for mailbot.service" in result.stdout
