"""SMTP (aiosmtplib): send queued outbox rows, retry temporary failures, give up on permanent ones.

A row is `sent` only after the server's 2xx to the end of DATA. Rows are claimed with a lease
(an UPDATE that succeeds for one worker only), so two instances never send the same row; a
worker that dies leaves a lease that simply expires.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col, select

from mailbot.errors import ServerError
from mailbot.logins import Login, login_smtp
from mailbot.models import OutboxMessage, Ticket, TicketDeadline, TicketEvent
from mailbot.settings import SmtpSettings
from mailbot.store import session_scope

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How long to keep retrying, and what a sent message of each purpose fulfils.

    `meets` maps a purpose ("acknowledgement", "reply") to the commitments its sending meets:
    the server's acceptance is the instant the compliance figures count.
    """

    give_up_after: timedelta
    meets: Mapping[str, tuple[str, ...]]


# The ticket column each fulfilling purpose stamps when it is first sent.
STAMPS = {"acknowledgement": "acknowledged_at", "reply": "answered_at"}


@dataclass(frozen=True, slots=True)
class FlushReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unreachable: bool = False

    def plus(self, other: FlushReport) -> FlushReport:
        return FlushReport(
            sent=self.sent + other.sent,
            retrying=self.retrying + other.retrying,
            failed=self.failed + other.failed,
            unreachable=self.unreachable or other.unreachable,
        )


_SMTP_CODES = re.compile(r"\b([245]\d\d)\b(?:[ ,']+([245]\.\d{1,3}\.\d{1,3}))?")


def error_summary(error: str) -> str:
    """The SMTP codes of an error, or its first word: server texts often name the recipient,
    and logs carry no addresses (the full text stays on the outbox row)."""
    match = _SMTP_CODES.search(error)
    if match:
        return " ".join(code for code in match.groups() if code)
    return error.split(":", 1)[0].split(" ", 1)[0][:40] or "error"


def backoff(attempts: int) -> timedelta:
    """Minutes at first, growing to about an hour: 1, 2, 4, 8, 16, 32, 60, 60... minutes."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def claim_rows(engine: Engine, now: datetime, owner: str, limit: int) -> list[OutboxMessage]:
    """Lease up to `limit` due rows to `owner`; rows another worker holds are skipped.

    One UPDATE both chooses and leases the rows, inside a write transaction, so two workers
    can never lease the same row; the rows are then read back by their lease.
    """
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    available = sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now)
    due = (
        sa.select(table.c.id)
        .where(table.c.state == "pending")
        .where(table.c.next_attempt_at <= now)
        .where(available)
        .order_by(table.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    with engine.begin() as connection:
        claimed = (
            connection.execute(
                sa.update(table)
                .where(table.c.id.in_(due))
                .where(table.c.state == "pending")
                .where(available)
                .values(lease_owner=owner, lease_until=now + LEASE)
                .returning(table.c.id)
            )
            .scalars()
            .all()
        )
    if not claimed:
        return []
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.id).in_(list(claimed)))
            .where(col(OutboxMessage.lease_owner) == owner)
            .order_by(col(OutboxMessage.id))
        ).all()
        return list(rows)


def _record(
    engine: Engine,
    row: OutboxMessage,
    now: datetime,
    *,
    state: str,
    error: str = "",
    policy: SendPolicy,
) -> str:
    """Write the outcome of one attempt in its own transaction; returns the row's new state.

    The update only applies while we still hold the row's lease, so a worker whose lease
    expired (and whose row another worker took) cannot overwrite that worker's outcome.
    """
    attempts = row.attempts + 1
    values: dict[str, object] = {"attempts": attempts, "lease_owner": None, "lease_until": None}
    if state == "sent":
        values.update(state="sent", sent_at=now, last_error="")
    elif state == "retry" and now - row.created_at < policy.give_up_after:
        values.update(next_attempt_at=now + backoff(attempts), last_error=error[:2000])
    else:
        values.update(
            state="failed",
            last_error=error[:2000] or "gave up after repeated temporary failures",
        )
    new_state = str(values.get("state", "pending"))
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .where(col(OutboxMessage.state) == "pending")
            .where(col(OutboxMessage.lease_owner) == row.lease_owner)
            .values(**values)
        )
        if result.rowcount != 1:
            return "lease_lost"
        if new_state == "sent" and row.purpose in policy.meets:
            _mark_fulfilled(connection, row, policy.meets[row.purpose], now)
        if row.ticket_id is not None and new_state in ("sent", "failed"):
            connection.execute(
                sa.insert(TicketEvent).values(
                    ticket_id=row.ticket_id,
                    at=now,
                    kind=f"{row.purpose}_{new_state}",
                    actor="mailbot",
                    outbox_id=row.id,
                    detail=str(values["last_error"]) if new_state == "failed" else "",
                )
            )
    return new_state


def _mark_fulfilled(
    connection: Connection, row: OutboxMessage, commitments: Sequence[str], now: datetime
) -> None:
    """Stamp the ticket (first time only) and meet its open deadlines of `commitments`."""
    if row.ticket_id is None:
        return
    column = STAMPS.get(row.purpose)
    if column is not None:
        values: dict[str, object] = {column: now}
        connection.execute(
            sa.update(Ticket)
            .where(col(Ticket.id) == row.ticket_id)
            .where(getattr(Ticket, column).is_(None))
            .values(**values)
        )
    if row.purpose == "reply":
        connection.execute(
            sa.update(Ticket)
            .where(col(Ticket.id) == row.ticket_id)
            .where(col(Ticket.status) == "open")
            .values(status="answered", updated_at=now)
        )
    connection.execute(
        sa.update(TicketDeadline)
        .where(col(TicketDeadline.ticket_id) == row.ticket_id)
        .where(col(TicketDeadline.commitment).in_(list(commitments)))
        .where(col(TicketDeadline.met_at).is_(None))
        .values(met_at=now)
    )


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


async def _send_rows(
    engine: Engine,
    settings: SmtpSettings,
    login: Login | None,
    rows: Sequence[OutboxMessage],
    now: datetime,
    policy: SendPolicy,
) -> FlushReport:
    sent = retrying = failed = 0
    smtp = smtp_client(settings)
    try:
        await connect_smtp(smtp, login, now)
    except (TimeoutError, aiosmtplib.SMTPException, OSError, ServerError) as exc:
        log.warning("SMTP %s:%s unreachable or refused: %s", settings.host, settings.port, exc)
        for row in rows:
            state = _record(
                engine,
                row,
                now,
                state="retry",
                error=f"connection: {exc}",
                policy=policy,
            )
            failed += state == "failed"
            retrying += state == "pending"
        return FlushReport(retrying=retrying, failed=failed, unreachable=True)
    try:
        for row in rows:
            try:
                errors, _response = await smtp.sendmail(row.envelope_from, [row.recipient], row.raw)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                outcome, error = _classify_refusal(exc.recipients)
            except aiosmtplib.SMTPResponseException as exc:
                outcome = "failed" if exc.code >= 500 else "retry"
                error = f"{exc.code} {exc.message}"
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                # Includes a timeout after the final dot: retried with the same Message-ID.
                outcome, error = "retry", f"{type(exc).__name__}: {exc}"
            else:
                outcome, error = ("sent", "") if not errors else _classify_refusal(errors)
            state = _record(engine, row, now, state=outcome, error=error, policy=policy)
            sent += state == "sent"
            failed += state == "failed"
            retrying += state == "pending"
            if state == "sent":
                log.info("sent %s %s", row.purpose, row.message_id)
            else:
                log.warning(
                    "outbox row %s %s (%s): %s", row.id, row.message_id, state, error_summary(error)
                )
            if outcome == "retry" and not smtp.is_connected:
                await connect_smtp(smtp, login, now)
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                smtp.close()
    return FlushReport(sent=sent, retrying=retrying, failed=failed)


def _classify_refusal(recipients: object) -> tuple[str, str]:
    if isinstance(recipients, dict):
        items = [(str(k), v) for k, v in recipients.items()]
        codes = [getattr(v, "code", 0) or (v[0] if isinstance(v, tuple) else 0) for _, v in items]
        text = "; ".join(f"{k}: {v}" for k, v in items)
    else:
        codes = [getattr(item, "code", 0) for item in recipients]  # type: ignore[attr-defined]
        text = "; ".join(str(item) for item in recipients)  # type: ignore[attr-defined]
    permanent = bool(codes) and all(int(code) >= 500 for code in codes)
    return ("failed" if permanent else "retry"), f"recipient refused: {text}"


def flush_outbox(
    engine: Engine,
    settings: SmtpSettings,
    login: Login | None,
    now: datetime,
    *,
    policy: SendPolicy,
    batch: int = 500,
    owner: str | None = None,
) -> FlushReport:
    """Send every due row (in batches under one SMTP connection each) and report the counts."""
    owner = owner or uuid.uuid4().hex[:16]
    total = FlushReport()
    while True:
        rows = claim_rows(engine, now, owner, batch)
        if not rows:
            return total
        report = asyncio.run(_send_rows(engine, settings, login, rows, now, policy))
        total = total.plus(report)
        if report.unreachable or report.sent == 0:
            return total
