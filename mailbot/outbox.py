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
from mailbot.logformat import log_fields
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
    # The brake: at most `pace_limit` automatic answers sent in any `pace_window`; the rest
    # wait for the next pass. It paces; it never drops (mailbot/pacing.py tells staff).
    pace_limit: int | None = None
    pace_window: timedelta = timedelta(minutes=10)


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


def smtp_code(error: str) -> str | None:
    """The SMTP reply code of an error and its enhanced status code ("550 5.1.1"), if any."""
    match = _SMTP_CODES.search(error)
    return " ".join(code for code in match.groups() if code) if match else None


def error_summary(error: str) -> str:
    """The SMTP codes of an error, or its first word: server texts often name the recipient,
    and logs carry no addresses (the full text stays on the outbox row)."""
    return smtp_code(error) or error.split(":", 1)[0].split(" ", 1)[0][:40] or "error"


def backoff(attempts: int) -> timedelta:
    """Minutes at first, growing to about an hour: 1, 2, 4, 8, 16, 32, 60, 60... minutes."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


PACED_PURPOSE = "acknowledgement"
_TABLE = OutboxMessage.__table__  # type: ignore[attr-defined]


def paced_capacity(connection: Connection, policy: SendPolicy, now: datetime) -> int | None:
    """How many automatic answers may still be sent now under the brake (None: no brake)."""
    if policy.pace_limit is None:
        return None
    sent = connection.execute(
        sa.select(sa.func.count())
        .select_from(_TABLE)
        .where(_TABLE.c.purpose == PACED_PURPOSE)
        .where(_TABLE.c.state == "sent")
        .where(_TABLE.c.sent_at > now - policy.pace_window)
    ).scalar_one()
    return max(policy.pace_limit - int(sent), 0)


def due_paced(connection: Connection, now: datetime) -> int:
    """Automatic answers due now and not sent yet (what the brake may hold back)."""
    return int(
        connection.execute(
            sa.select(sa.func.count())
            .select_from(_TABLE)
            .where(_TABLE.c.purpose == PACED_PURPOSE)
            .where(_TABLE.c.state == "pending")
            .where(_TABLE.c.next_attempt_at <= now)
        ).scalar_one()
    )


def _lease(
    connection: Connection,
    now: datetime,
    owner: str,
    limit: int,
    purpose: sa.ColumnElement[bool],
) -> list[int]:
    """One UPDATE both chooses and leases up to `limit` due rows matching `purpose`."""
    if limit <= 0:
        return []
    table = _TABLE
    available = sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now)
    due = (
        sa.select(table.c.id)
        .where(table.c.state == "pending")
        .where(table.c.next_attempt_at <= now)
        .where(available)
        .where(purpose)
        .order_by(table.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    return list(
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


def claim_rows(
    engine: Engine,
    now: datetime,
    owner: str,
    limit: int,
    policy: SendPolicy | None = None,
) -> list[OutboxMessage]:
    """Lease up to `limit` due rows to `owner`; rows another worker holds are skipped, and
    automatic answers beyond the brake's capacity wait (they stay pending, never dropped).

    Each UPDATE both chooses and leases the rows, inside a write transaction, so two workers
    can never lease the same row; the rows are then read back by their lease.
    """
    table = _TABLE
    with engine.begin() as connection:
        capacity = paced_capacity(connection, policy, now) if policy is not None else None
        if capacity is None:
            claimed = _lease(connection, now, owner, limit, sa.true())
        else:
            claimed = _lease(connection, now, owner, limit, table.c.purpose != PACED_PURPOSE)
            paced = min(capacity, limit - len(claimed))
            claimed += _lease(connection, now, owner, paced, table.c.purpose == PACED_PURPOSE)
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
    elif state == "held":
        values.update(state="held", last_error=error[:2000])
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
        if row.ticket_id is not None and new_state in ("sent", "failed", "held"):
            connection.execute(
                sa.insert(TicketEvent).values(
                    ticket_id=row.ticket_id,
                    at=now,
                    kind=f"{row.purpose}_{new_state}",
                    actor="mailbot",
                    outbox_id=row.id,
                    detail=error_summary(str(values["last_error"])) if new_state != "sent" else "",
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
    tally = _Tally()
    smtp = smtp_client(settings)
    pending = list(rows)
    try:
        try:
            await connect_smtp(smtp, login, now)
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ServerError) as exc:
            log.warning("SMTP %s:%s unreachable or refused: %s", settings.host, settings.port, exc)
            _retry_all(engine, pending, now, f"connection: {exc}", policy, tally)
            return tally.report(unreachable=True)
        while pending:
            row = pending.pop(0)
            outcome, error = await _send_one(smtp, row)
            state = _record(engine, row, now, state=outcome, error=error, policy=policy)
            tally.count(state)
            fields = log_fields(outbox=row.id, purpose=row.purpose, smtp_code=smtp_code(error))
            if state == "sent":
                log.info("sent %s", row.message_id, extra=fields)
            else:
                log.warning(
                    "outbox %s %s: %s", row.message_id, state, error_summary(error), extra=fields
                )
            if pending and not smtp.is_connected:
                try:
                    await connect_smtp(smtp, login, now)
                except (TimeoutError, aiosmtplib.SMTPException, OSError, ServerError) as exc:
                    # The relay went away mid-batch: what is left waits for the next pass.
                    log.warning("SMTP %s:%s lost: %s", settings.host, settings.port, exc)
                    _retry_all(engine, pending, now, f"connection: {exc}", policy, tally)
                    return tally.report(unreachable=True)
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                smtp.close()
    return tally.report()


async def _send_one(smtp: aiosmtplib.SMTP, row: OutboxMessage) -> tuple[str, str]:
    """One message over the open session: ("sent" | "retry" | "failed" | "held", error)."""
    # An internationalised address can only travel over SMTPUTF8 (RFC 6531).
    utf8 = not (row.recipient.isascii() and row.envelope_from.isascii())
    try:
        errors, _response = await smtp.sendmail(
            row.envelope_from,
            [row.recipient],
            row.raw,
            mail_options=["SMTPUTF8"] if utf8 else [],
        )
    except aiosmtplib.SMTPNotSupported as exc:
        # The relay cannot carry this address at all: a person must answer another way.
        return "held", f"not supported by the relay: {exc}"
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return _classify_refusal(exc.recipients)
    except aiosmtplib.SMTPResponseException as exc:
        return ("failed" if exc.code >= 500 else "retry"), f"{exc.code} {exc.message}"
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        # Includes a timeout after the final dot: retried with the same Message-ID.
        return "retry", f"{type(exc).__name__}: {exc}"
    return ("sent", "") if not errors else _classify_refusal(errors)


@dataclass
class _Tally:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def count(self, state: str) -> None:
        self.sent += state == "sent"
        self.failed += state in ("failed", "held")
        self.retrying += state == "pending"

    def report(self, *, unreachable: bool = False) -> FlushReport:
        return FlushReport(
            sent=self.sent, retrying=self.retrying, failed=self.failed, unreachable=unreachable
        )


def _retry_all(
    engine: Engine,
    rows: Sequence[OutboxMessage],
    now: datetime,
    error: str,
    policy: SendPolicy,
    tally: _Tally,
) -> None:
    for row in rows:
        tally.count(_record(engine, row, now, state="retry", error=error, policy=policy))


def release_leases(engine: Engine, owner: str) -> int:
    """Give back every row `owner` still holds, at once (not after the lease expires)."""
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.lease_owner == owner)
            .where(_TABLE.c.state == "pending")
            .values(lease_owner=None, lease_until=None)
        )
    return int(result.rowcount or 0)


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
    """Send every due row (in batches under one SMTP connection each) and report the counts.

    Whatever goes wrong while sending, the rows this worker still holds are released before
    it returns, so another pass or instance can take them at once.
    """
    owner = owner or uuid.uuid4().hex[:16]
    total = FlushReport()
    try:
        while True:
            rows = claim_rows(engine, now, owner, batch, policy)
            if not rows:
                return total
            report = asyncio.run(_send_rows(engine, settings, login, rows, now, policy))
            total = total.plus(report)
            if report.unreachable or report.sent == 0:
                return total
    except Exception as exc:  # never leave rows leased behind a crash of the sender
        log.error("sending stopped: %s", error_summary(f"{type(exc).__name__}: {exc}"))
        log.debug("sending stopped", exc_info=True)
        return total.plus(FlushReport(unreachable=True))
    finally:
        release_leases(engine, owner)
