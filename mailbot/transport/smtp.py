"""The relay mailbot sends through over SMTP: `SmtpSender`, the SMTP implementation of `Sender`
(mailbot/transport/base.py), with aiosmtplib over one connection per session.

The outbox (mailbot/sending/outbox.py) talks only to `Sender`: open a session, send one message at a
time, learn its outcome. Both are coroutines: the outbox drives several sessions from one event
loop.

Outcomes: ``sent`` only after the server's 2xx at the end of DATA; ``retry`` for a 4xx, a
connection error or a timeout (also after the final dot: the retry keeps the Message-ID), and
for a 5xx that says the sending account is over its quota (`over_quota`); ``failed`` for any
other permanent refusal (5xx); ``held`` when the relay cannot carry the message at all (an
internationalised address without SMTPUTF8): a person must answer another way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import aiosmtplib

from mailbot.errors import ServerError, SmtpError
from mailbot.settings import SmtpSettings
from mailbot.transport.base import SendResult
from mailbot.transport.logins import Login, Logins, login_smtp

log = logging.getLogger(__name__)


class SmtpSender:
    """aiosmtplib over one connection per session, reconnecting when the server drops it."""

    def __init__(self, settings: SmtpSettings, logins: Logins) -> None:
        self._settings = settings
        self._logins = logins

    @asynccontextmanager
    async def session(self, now: datetime) -> AsyncIterator[SmtpSession]:
        session = SmtpSession(self._settings, self._logins.smtp(), now)
        await session.connect()
        try:
            yield session
        finally:
            await session.close()


class SmtpSession:
    def __init__(self, settings: SmtpSettings, login: Login | None, now: datetime) -> None:
        self._settings = settings
        self._login = login
        self._now = now
        self._smtp = smtp_client(settings)

    async def connect(self) -> None:
        """Connect and log in; SmtpError (naming the server, never a secret) when it fails."""
        try:
            await connect_smtp(self._smtp, self._login, self._now)
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ServerError) as exc:
            self._smtp.close()
            where = f"{self._settings.host}:{self._settings.port}"
            raise SmtpError(f"SMTP {where}: {type(exc).__name__}: {exc}") from exc

    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        if not self._smtp.is_connected:
            await self.connect()
        return await _send(self._smtp, envelope_from, recipient, raw)

    @property
    def announced_size(self) -> int | None:
        """The relay's EHLO SIZE (0: no limit announced, or no SIZE extension at all); None
        before the session's first EHLO (it comes with the first message)."""
        if self._smtp.last_ehlo_response is None:
            return None
        return announced_size(self._smtp.esmtp_extensions)

    async def close(self) -> None:
        if not self._smtp.is_connected:
            return
        try:
            await self._smtp.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            self._smtp.close()


def announced_size(extensions: dict[str, str]) -> int:
    """The SIZE an EHLO answer announced (RFC 1870): its number, 0 when absent or without
    one (the relay then states no fixed limit)."""
    value = extensions.get("size", "").strip()
    return int(value) if value.isdigit() else 0


def smtp_client(settings: SmtpSettings) -> aiosmtplib.SMTP:
    """A client for the relay; `connect_smtp` connects and logs it in."""
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        timeout=settings.timeout_seconds,
        use_tls=settings.tls == "tls",
        start_tls=settings.tls == "starttls",
        tls_context=settings.tls_context() if settings.tls != "none" else None,
    )


async def connect_smtp(smtp: aiosmtplib.SMTP, login: Login | None, now: datetime) -> None:
    await smtp.connect()
    await login_smtp(smtp, login, now)


# Refusals coded as permanent that are about the sending account, not the message or its
# recipient: the relay takes the message again once the quota's window has passed, so it is
# retried with the row's backoff (until `outbox_max_attempts_hours`), never failed for good.
# Hosted relays answer so after a busy day: Exchange Online past its daily recipient limit
# ("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"), Google
# Workspace past its daily sending limit ("550 5.4.5 Daily user sending limit exceeded").
# X.4.5 is "mail system congestion" (RFC 3463): a passing state, whatever the first digit.
_CONGESTION = re.compile(r"\s*[45]\.4\.5\b")  # the enhanced code opens the text
_QUOTA_WORDS = re.compile(r"SubmissionQuotaExceeded", re.IGNORECASE)


def over_quota(text: str) -> bool:
    """Whether a relay's refusal (its text after the reply code) says the sending account is
    over its quota for now."""
    return _CONGESTION.match(text) is not None or _QUOTA_WORDS.search(text) is not None


def _permanent(code: int, text: str) -> bool:
    return code >= 500 and not over_quota(text)


async def _send(
    smtp: aiosmtplib.SMTP, envelope_from: str, recipient: str, raw: bytes
) -> SendResult:
    # An internationalised address can only travel over SMTPUTF8 (RFC 6531).
    utf8 = not (recipient.isascii() and envelope_from.isascii())
    try:
        errors, _response = await smtp.sendmail(
            envelope_from, [recipient], raw, mail_options=["SMTPUTF8"] if utf8 else []
        )
    except aiosmtplib.SMTPNotSupported as exc:
        return SendResult("held", f"not supported by the relay: {exc}")
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return _refusal(exc.recipients)
    except aiosmtplib.SMTPResponseException as exc:
        permanent = _permanent(exc.code, exc.message)
        return SendResult("failed" if permanent else "retry", f"{exc.code} {exc.message}")
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        return SendResult("retry", f"{type(exc).__name__}: {exc}")
    return SendResult("sent") if not errors else _refusal(errors)


def _refusal(recipients: object) -> SendResult:
    if isinstance(recipients, dict):
        items = [(str(k), v) for k, v in recipients.items()]
        answers = [_code_and_text(v) for _, v in items]
        text = "; ".join(f"{k}: {v}" for k, v in items)
    else:
        answers = [_code_and_text(item) for item in recipients]  # type: ignore[attr-defined]
        text = "; ".join(str(item) for item in recipients)  # type: ignore[attr-defined]
    permanent = bool(answers) and all(_permanent(code, said) for code, said in answers)
    return SendResult("failed" if permanent else "retry", f"recipient refused: {text}")


def _code_and_text(answer: object) -> tuple[int, str]:
    """A refused recipient's reply code and text: an SMTPRecipientRefused, or the (code,
    text) pair of sendmail's result."""
    if isinstance(answer, tuple) and answer:
        return int(answer[0] or 0), str(answer[1]) if len(answer) > 1 else ""
    return int(getattr(answer, "code", 0) or 0), str(getattr(answer, "message", ""))
