"""The exit codes, and what ends a command: an error named in one line, never a traceback.

The codes are the ones the README documents ("Exit codes"); `ERROR_EXITS` says which error
gives which, the first that matches winning.
"""

from __future__ import annotations

import sys

from mailbot.errors import ConfigError, MailbotError, MissingDependency, StoreAhead

EXIT_OK = 0
EXIT_FAILURE = 1  # a server failed in a pass, a check failed, something named was not found
EXIT_CONFIG = 2  # usage or configuration error
EXIT_DEPENDENCY = 3  # an optional package is missing (the message names the extra)
EXIT_INTERNAL = 4  # a bug: one line here, the traceback with -v
EXIT_BEHIND = 5  # the database lacks mail the mail store holds: run `mailbot reconcile`
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_PIPE = 141  # the reader of the output went away (`mailbot tickets --json | head`)

# The errors mailbot raises on purpose, and the code each ends a command with. A subclass comes
# before its base (MissingDependency is a ConfigError); NotFound and ServerError end in 1.
ERROR_EXITS: tuple[tuple[type[MailbotError], int], ...] = (
    (MissingDependency, EXIT_DEPENDENCY),
    (ConfigError, EXIT_CONFIG),
    (StoreAhead, EXIT_BEHIND),
    (MailbotError, EXIT_FAILURE),
)

# The optional packages and the extras that bring them.
EXTRAS = {"aiosmtpd": "sandbox", "psycopg": "postgres", "msal": "microsoft", "google": "google"}


def exit_code_of(exc: MailbotError) -> int:
    return next(code for kind, code in ERROR_EXITS if isinstance(exc, kind))


def first_line(exc: object) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_database_unreachable(exc: BaseException) -> bool:
    """The database server is down or refuses us (a server failure, not a bug)."""
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)


def missing_package(exc: ModuleNotFoundError, verbose: bool) -> int:
    """An optional package not installed: the extra that brings it; any other missing module
    is a bug."""
    package = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        return internal_error(exc, verbose)
    print(
        f'mailbot: the optional package {package} is not installed: pip install "mailbot[{extra}]"',
        file=sys.stderr,
    )
    return EXIT_DEPENDENCY


def internal_error(exc: BaseException, verbose: bool) -> int:
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(
        f"mailbot: internal error: {type(exc).__name__}: {first_line(exc)}"
        + ("" if verbose else " (run again with -v for the details)"),
        file=sys.stderr,
    )
    return EXIT_INTERNAL
