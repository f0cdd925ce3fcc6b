"""Where the configuration file and the templates are found by default (looked for once, at
import: the repository's templates/ in a checkout, else the copy inside the package)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CONFIG_PATH = Path("config/mailbot.toml")
# The mailbot package (this file sits in mailbot/settings/).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# The repository's templates/ in a checkout; the copy shipped inside the package otherwise.
DEFAULT_TEMPLATES_DIR = next(
    (
        path
        for path in (PACKAGE_ROOT.parent / "templates", PACKAGE_ROOT / "templates")
        if (path / "acknowledgement.txt").exists()
    ),
    PACKAGE_ROOT.parent / "templates",
)
