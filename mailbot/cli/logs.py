"""Logging for a command: one handler on standard error, in the configured format and level."""

from __future__ import annotations

import logging
import sys

from mailbot.logformat import LIBRARY_LOGGERS, JsonFormatter, OwnRecordsOnly, TextFormatter
from mailbot.settings import LoggingSettings

# Names the handler mailbot installs, so that loading the configuration can replace it.
LOG_HANDLER = "mailbot-stderr"


def configure_logging(*, verbose: bool, quiet: bool, chosen: LoggingSettings | None = None) -> None:
    """One handler on standard error, in the configured format and level.

    Called once before the configuration is read (text, INFO) and again with its `[logging]`
    section. Commands that print results (`quiet`) keep the log to warnings; `verbose` (-v)
    gives DEBUG. When something else already configured logging (a program embedding mailbot,
    pytest), it is left as it is.
    """
    chosen = chosen or LoggingSettings()
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if handler.get_name() == LOG_HANDLER]
    # Migrations and the scheduler say what they do at INFO on every start; keep it for -v.
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # Protocol traffic and SQL parameters carry mail: never logged, even with -v.
    for library in LIBRARY_LOGGERS:
        logging.getLogger(library).setLevel(logging.WARNING)
    if root.handlers and not ours:
        return
    level = logging.getLevelNamesMapping()[chosen.level]
    if quiet:
        level = max(level, logging.WARNING)
    if verbose:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(LOG_HANDLER)
    handler.setFormatter(JsonFormatter() if chosen.format == "json" else TextFormatter())
    handler.addFilter(OwnRecordsOnly())
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
