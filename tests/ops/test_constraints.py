"""The tested set of versions: constraints.txt pins every package mailbot, its extras and its
tests need, each inside the range pyproject.toml declares, so that CI and a fresh machine
install what the suite last passed with, whatever was released since. (The sdist carries the
file: tests/ops/test_installed.py.)"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO


def pinned() -> dict[str, Version]:
    """constraints.txt as name → version; every line that is not a comment is `name==version`."""
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator, f"constraints.txt: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = Version(version)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    pins = pinned()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, "
            f"outside pyproject.toml's {requirement.specifier}"
        )


def test_the_pins_are_what_the_test_environment_runs() -> None:
    """Bootstrap installs with the constraints: a pin edited by hand without reinstalling, or
    an environment older than the file, shows here rather than as a puzzle in CI."""
    different = {}
    for name, expected in pinned().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            different[name] = "not installed"
            continue
        if installed != expected:
            different[name] = f"{installed} installed"
    assert not different, f"run scripts/bootstrap: constraints.txt differs from {different}"
