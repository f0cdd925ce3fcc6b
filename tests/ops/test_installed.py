"""mailbot as the ministry installs it: the wheel and the sdist are built from the checkout,
each is installed into a fresh virtual environment outside it, and the installed `mailbot`
runs from another directory against the real servers. A module, template, migration or data
file left out of the package fails here, where every other test (which runs the checkout)
would pass.

Building takes a few seconds, once per session. The dependencies are not downloaded again:
each fresh environment is given the test environment's site-packages through a `.pth` file
(after its own, so `mailbot` is always the installed copy, which each test checks)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbot.sandbox.servers import Sandbox, write_state
from mailbot.settings import Settings
from tests.conftest import REPO, subprocess_environ

pytestmark = pytest.mark.server

# What the package must carry besides its modules.
SHIPPED = (
    "mailbot/py.typed",
    "mailbot/migrations/script.py.mako",
    "mailbot/migrations/env.py",
    "mailbot/sandbox/samples/demande.eml",
    "mailbot/sandbox/samples/plainte.eml",
    "mailbot/templates/acknowledgement.txt",
    "mailbot/templates/report.html",
    "mailbot/config/mailbot.toml",
    "mailbot/docs/report-rules.md",
)


@dataclass(frozen=True)
class Installed:
    """A virtual environment with mailbot installed from one artefact."""

    artefact: Path
    venv: Path

    @property
    def mailbot(self) -> Path:
        return self.venv / "bin" / "mailbot"

    def run(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.mailbot), *args],
            cwd=cwd,
            env=clean_environ(env if env is not None else dict(os.environ)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def clean_environ(env: dict[str, str]) -> dict[str, str]:
    """Nothing that would point the installed mailbot back at the checkout."""
    return {
        key: value
        for key, value in env.items()
        if key not in ("PYTHONPATH", "MAILBOT_CONFIG", "VIRTUAL_ENV", "PYTHONHOME")
    }


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, the wheel built from the sdist (what `python -m build` does)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [sdist] = out.glob("mailbot-*.tar.gz")
    [wheel] = out.glob("mailbot-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def make_venv(root: Path, artefact: Path) -> Installed:
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies, from the test environment (after the venv's own site-packages).
    Path(purelib, "zz-mailbot-test-dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, str(artefact)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Installed(artefact=artefact, venv=venv)


@pytest.fixture(scope="session")
def installed_wheel(
    artefacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    return make_venv(tmp_path_factory.mktemp("wheel-install"), artefacts["wheel"])


@pytest.fixture(scope="session")
def installed_sdist(
    artefacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    return make_venv(tmp_path_factory.mktemp("sdist-install"), artefacts["sdist"])


@pytest.fixture(params=["wheel", "sdist"])
def installed(request: pytest.FixtureRequest) -> Installed:
    chosen: Installed = request.getfixturevalue(f"installed_{request.param}")
    return chosen


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout, with no config/ of its own."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def installed_config(path: Path, sandbox: Sandbox, data_dir: Path) -> Path:
    """The shipped example configuration pointed at `sandbox`; templates are the shipped ones."""
    import tomli_w

    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["imap"].update(port=sandbox.imap_port)
    document["smtp"].update(port=sandbox.smtp_port)
    document["data_dir"] = str(data_dir)
    path.write_text(tomli_w.dumps(document))
    return path


def installed_environ(settings: Settings) -> dict[str, str]:
    return clean_environ(subprocess_environ(settings))


def test_the_wheel_and_the_sdist_carry_every_module_and_data_file(
    artefacts: dict[str, Path],
) -> None:
    sources = {
        str(path.relative_to(REPO))
        for path in (REPO / "mailbot").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(artefacts["wheel"]) as wheel:
        in_wheel = set(wheel.namelist())
    with tarfile.open(artefacts["sdist"]) as sdist:
        in_sdist = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert sources - in_wheel == set()
    assert set(SHIPPED) - in_wheel == set()
    templates = {f"templates/{p.name}" for p in (REPO / "templates").iterdir() if p.is_file()}
    assert {f"mailbot/{name}" for name in templates} - in_wheel == set()
    assert sources - in_sdist == set()
    assert templates - in_sdist == set()
    assert {"config/mailbot.toml", "docs/report-rules.md", "constraints.txt"} <= in_sdist


def test_the_installed_mailbot_is_not_the_checkout(installed: Installed, elsewhere: Path) -> None:
    python = installed.venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", "import mailbot, mailbot.db; print(mailbot.__file__)"],
        cwd=elsewhere,
        env=clean_environ(dict(os.environ)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip()).is_relative_to(installed.venv)


def test_sandbox_demo_from_the_installed_package(installed: Installed, elsewhere: Path) -> None:
    done = installed.run("sandbox", "demo", cwd=elsewhere)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the example configuration" in done.stdout
    assert str(installed.venv) in done.stdout  # the shipped configuration, not the checkout's
    assert "4. Ticket MRI-" in done.stdout and "Accusé de réception" in done.stdout
    for line in done.stdout.splitlines():
        if line.startswith("  rm -rf "):
            shutil.rmtree(line.removeprefix("  rm -rf "), ignore_errors=True)


def test_check_and_a_pass_from_the_installed_package(
    installed: Installed,
    elsewhere: Path,
    sandbox: Sandbox,
    settings: Settings,
    tmp_path: Path,
) -> None:
    from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office

    config = installed_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    env = installed_environ(settings)
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))

    check = installed.run("--config", str(config), "check", cwd=elsewhere, env=env)
    run = installed.run(
        "--config", str(config), "--now", "2025-11-03T10:01-05:00", "run", "--once",
        cwd=elsewhere, env=env,
    )  # fmt: skip
    shown = installed.run(
        "--config", str(config), "show", "MRI-2025-00001", "--json", cwd=elsewhere, env=env
    )

    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok   smtp" in check.stdout
    assert run.returncode == 0, run.stderr
    assert json.loads(shown.stdout)["requester"] == CITIZEN
    [acknowledgement] = sandbox.fetch_all(CITIZEN)
    assert b"MRI-2025-00001" in acknowledgement


@pytest.fixture
def wheel_world(
    installed_wheel: Installed,
    elsewhere: Path,
    sandbox: Sandbox,
    settings: Settings,
    tmp_path: Path,
) -> Iterator[tuple[Installed, Path, dict[str, str]]]:
    config = installed_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    yield installed_wheel, config, installed_environ(settings)


def test_end_to_end_commands_from_the_installed_wheel(
    wheel_world: tuple[Installed, Path, dict[str, str]],
    elsewhere: Path,
    sandbox: Sandbox,
) -> None:
    """The commands an IT team and a supervisor use, each on the installed wheel: a pass
    (templates, migrations), tickets, show, the HTML report, export, audit and retention."""
    from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office

    installed, config, env = wheel_world

    def mailbot(*args: str) -> subprocess.CompletedProcess[str]:
        return installed.run("--config", str(config), *args, cwd=elsewhere, env=env)

    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    state = elsewhere / "sandbox-state"
    state.mkdir()
    write_state(sandbox, state / "state.json")
    sent = mailbot("sandbox", "send", "--dir", str(state), "--from", "lea.roy@example.test")
    assert sent.returncode == 0, sent.stderr
    run = mailbot("--now", "2025-11-03T10:01-05:00", "run", "--once")
    assert run.returncode == 0, run.stderr
    tickets = mailbot("tickets", "--json")
    assert {t["requester"] for t in json.loads(tickets.stdout)} == {
        CITIZEN,
        "lea.roy@example.test",
    }
    shown = mailbot("show", "MRI-2025-00001")
    assert shown.returncode == 0 and "acknowledgement_sent" in shown.stdout, shown.stderr
    page = elsewhere / "report.html"
    report = mailbot(
        "--now", "2025-11-30T12:00-05:00", "report", "--since", "2025-11-01",
        "--until", "2025-11-30", "--format", "html", "--output", str(page),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "MRI" in page.read_text() or "<html" in page.read_text()
    export = mailbot("export", "--requester", CITIZEN)
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["tickets"][0]["ref"] == "MRI-2025-00001"
    audit = mailbot("audit", "MRI-2025-00001")
    assert audit.returncode == 0, audit.stderr
    dry = mailbot("--now", "2025-11-30T12:00-05:00", "retention", "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    rules = mailbot("report-rules")
    assert rules.returncode == 0 and rules.stdout.startswith("# How `mailbot report` counts")
    assert "docs/report-rules.md" not in page.read_text()
