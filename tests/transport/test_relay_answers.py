"""What each answer of a real SMTP server (aiosmtpd, on a free port) means for a message: sent,
tried again later, or failed for good. A sending account over its quota is a wait, not a
failure, even when the relay words it as a permanent refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mailbot.sandbox.servers import free_port
from mailbot.settings import SmtpSettings
from mailbot.transport.base import SendResult
from mailbot.transport.smtp import SmtpSession, over_quota

EXCHANGE_DAILY_LIMIT = (
    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
    "process message due to a permanent exception with message [BeginDiagnosticData]"
)
GOOGLE_DAILY_LIMIT = "550 5.4.5 Daily user sending limit exceeded."


class Relay:
    """Answers RCPT and the end of DATA with the replies it is given (250 by default)."""

    def __init__(self) -> None:
        self.rcpt = "250 OK"
        self.data = "250 2.0.0 Accepted"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.data


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler = Relay()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def send_one(port: int) -> SendResult:
    settings = SmtpSettings(host="127.0.0.1", port=port, tls="none")

    async def go() -> SendResult:
        session = SmtpSession(settings, None, datetime(2025, 11, 3, 15, tzinfo=UTC))
        await session.connect()
        try:
            return await session.send("", "citoyen@example.org", b"Subject: x\r\n\r\nbody\r\n")
        finally:
            await session.close()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("rcpt", "data", "outcome"),
    [
        ("250 OK", "250 2.0.0 Accepted", "sent"),
        ("250 OK", "451 4.3.0 Try again later", "retry"),
        ("250 OK", EXCHANGE_DAILY_LIMIT, "retry"),
        (GOOGLE_DAILY_LIMIT, "250 2.0.0 Accepted", "retry"),
        ("250 OK", GOOGLE_DAILY_LIMIT, "retry"),
        ("550 5.1.1 <citoyen@example.org>: no such user", "250 2.0.0 Accepted", "failed"),
        ("250 OK", "554 5.6.0 Message content rejected", "failed"),
    ],
    ids=[
        "accepted",
        "temporary",
        "exchange-daily-limit",
        "google-limit-at-rcpt",
        "google-limit-at-data",
        "unknown-recipient",
        "content-refused",
    ],
)
def test_each_relay_answer_decides_the_messages_fate(
    relay: tuple[Relay, int], rcpt: str, data: str, outcome: str
) -> None:
    handler, port = relay
    handler.rcpt, handler.data = rcpt, data

    result = send_one(port)

    assert result.outcome == outcome
    refusal = data if rcpt.startswith("250") else rcpt
    assert result.error == "" if outcome == "sent" else refusal[:3] in result.error


def test_only_a_quota_is_read_as_a_wait() -> None:
    assert over_quota("5.4.5 Daily user sending limit exceeded.")
    assert over_quota("5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException")
    assert not over_quota("5.1.1 <user@5.4.5.example>: no such user")  # an address is no code
    assert not over_quota("5.7.1 Relaying denied")
