"""The outbox's pure rules: backoff, and what of an SMTP error may reach the log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailbot.sending.outbox import backoff, error_summary


@pytest.mark.parametrize(
    ("attempts", "minutes"), [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (30, 60)]
)
def test_backoff_grows_to_about_an_hour(attempts: int, minutes: int) -> None:
    assert backoff(attempts) == timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("error", "summary"),
    [
        (
            "recipient refused: josee@example.org: (550, '5.1.1 No such user', "
            "'josee@example.org')",
            "550 5.1.1",
        ),
        ("550 5.1.1 <josee@example.org>: Recipient address rejected", "550 5.1.1"),
        ("451 4.3.0 Temporary failure for josee@example.org", "451 4.3.0"),
        ("421 Service not available", "421"),
        ("connection: Error connecting to 127.0.0.1 on port 25", "connection"),
        ("SMTPServerDisconnected: Connection lost", "SMTPServerDisconnected"),
    ],
)
def test_the_log_gets_codes_never_addresses(error: str, summary: str) -> None:
    assert error_summary(error) == summary
    assert "@" not in error_summary(error)
