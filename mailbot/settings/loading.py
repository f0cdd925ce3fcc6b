"""The configuration read from its file and the environment (effects: reads both), validated
once; every problem is a ConfigError naming the key.

Where the file is found: ``--config PATH``, else ``$MAILBOT_CONFIG``, else ``config/mailbot.toml``.
``$MAILBOT_DATABASE_URL`` overrides ``[database] url``. Secrets (passwords, OAuth2 client
secrets) are never in the file: the file names the environment variable that holds each one,
or the path of a key file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from mailbot.errors import ConfigError
from mailbot.settings.configuration import Settings
from mailbot.settings.handling import AnswersSettings
from mailbot.settings.operations import DatabaseSettings
from mailbot.settings.paths import DEFAULT_CONFIG_PATH
from mailbot.settings.servers import GraphSettings, ServerSettings


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key {where!r}")
        elif item["type"] == "missing":
            lines.append(f"missing key {where!r}")
        else:
            lines.append(f"bad value for {where!r}: {item['msg']}")
    return "; ".join(lines)


def parse_settings(
    document: Mapping[str, object], *, base_dir: Path, environ: Mapping[str, str]
) -> Settings:
    """Validate a parsed TOML document; relative paths are taken from the file's project root."""
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"configuration: {_describe(exc)}") from exc
    updates: dict[str, object] = {}
    if not settings.data_dir.is_absolute():
        updates["data_dir"] = base_dir / settings.data_dir
    if not settings.templates_dir.is_absolute():
        updates["templates_dir"] = base_dir / settings.templates_dir
    if settings.answers.dir is not None and not settings.answers.dir.is_absolute():
        updates["answers"] = AnswersSettings(dir=base_dir / settings.answers.dir)
    for server in ("imap", "smtp"):
        resolved = _resolve_key_files(getattr(settings, server), base_dir)
        if resolved is not None:
            updates[server] = resolved
    if settings.graph is not None:
        resolved_graph = _resolve_key_files(settings.graph, base_dir)
        if resolved_graph is not None:
            updates["graph"] = resolved_graph
    override = environ.get("MAILBOT_DATABASE_URL")
    if override:
        updates["database"] = DatabaseSettings(url=override)
    return settings.model_copy(update=updates) if updates else settings


_WithAuth = TypeVar("_WithAuth", ServerSettings, GraphSettings)


def _resolve_key_files(server: _WithAuth, base_dir: Path) -> _WithAuth | None:
    """The server with its key file paths made absolute, or None when none is relative."""
    auth = server.auth
    keys = ("certificate_file", "private_key_file", "service_account_file")
    relative = {
        key: base_dir / path
        for key in keys
        if (path := getattr(auth, key)) is not None and not path.is_absolute()
    }
    if not relative:
        return None
    return server.model_copy(update={"auth": auth.model_copy(update=relative)})


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    if explicit:
        return Path(explicit)
    if environ.get("MAILBOT_CONFIG"):
        return Path(environ["MAILBOT_CONFIG"])
    return DEFAULT_CONFIG_PATH


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the file at `path`; every problem is a ConfigError naming the key."""
    env = os.environ if environ is None else environ
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"configuration file {path}: {exc.strerror or exc}") from exc
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path}: not valid TOML: {exc}") from exc
    # Relative paths in the file are relative to the project root (the folder above config/).
    base_dir = path.resolve().parent
    if base_dir.name == "config":
        base_dir = base_dir.parent
    return parse_settings(document, base_dir=base_dir, environ=env)


def secret(environ: Mapping[str, str], variable: str | None, what: str) -> str:
    """The value of a secret's environment variable, or a ConfigError saying which is missing."""
    if not variable:
        return ""
    value = environ.get(variable)
    if value is None:
        raise ConfigError(f"{what}: environment variable {variable} is not set")
    return value
