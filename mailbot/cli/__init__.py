"""The command line, `mailbot COMMAND`: the console script and `python -m mailbot`.

The only place that exits the process or configures logging. `entry.main` runs one command:
the parser (`parser.py`) is built from the command table (`commands.py`: each command's help,
arguments, handler and what it needs), logging is set up (`logs.py`), the command is given
what it needs (the configuration, the database held, the application: `startup.py`), and what
happens ends in one of the exit codes of `exits.py`. The handlers sit by group of commands
(`service.py`, `casework.py`, `records.py`, `reference.py`); the text they print is built in
`views.py`, their JSON in `mailbot/reporting/shapes.py`. `mailbot sandbox` is run by
`mailbot/sandbox/cli.py`.

`main` and the exit codes are importable from here, the one import surface of the package.
"""

from mailbot.cli.entry import main
from mailbot.cli.exits import (
    EXIT_BEHIND,
    EXIT_CONFIG,
    EXIT_DEPENDENCY,
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
)

__all__ = [
    "EXIT_BEHIND",
    "EXIT_CONFIG",
    "EXIT_DEPENDENCY",
    "EXIT_FAILURE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE",
    "main",
]
