"""The outbox worker: send due rows through the `Sender`, retry temporary failures with
backoff, give up on permanent ones, and record every outcome.

A row is `sent` only after the relay accepted it. Rows are claimed with a lease (an UPDATE
that succeeds for one worker only), so two instances never send the same row; whatever goes
wrong while sending, the rows this worker still holds are released before it returns. A
worker killed outright (kill -9, power loss) cannot release them: the next worker on the same
host takes back the leases of a process that no longer runs (`leases`), so a restarted
mailbot resends at once instead of after `LEASE`. The brake paces automatic answers here:
beyond its rate they stay pending, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import graph_rows, outbox_rows, ticket_rows
from mailbot.db.outbox_rows import OutboxRow
from mailbot.errors import SmtpError
from mailbot.logformat import log_fields
from mailbot.sending import leases, sizes
from mailbot.settings import Settings
from mailbot.standards import deadlines
from mailbot.states import OutboxState
from mailbot.transport.base import SenderSession, SendResult

log = logging.getLogger(__name__)

# The default of `[daemon] outbox_lease_seconds`.
LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=1)
# A relay that cannot be reached is no fault of the rows: they are tried again a minute later
# however long the outage lasts, so mail leaves as soon as the relay is back (not up to an hour
# after), until `give_up_after`.
RELAY_DOWN_RETRY = timedelta(minutes=1)


# A row of a ticket was sent: (connection, settings, ticket id, purpose, the instant it meets).
OnSent = Callable[[Connection, Settings, int, str, datetime], None]


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How long to keep retrying, the brake (at most `pace_limit` automatic answers sent in any
    `pace_window`; None: no brake), and what a sent row of a ticket changes on that ticket
    (`on_sent`, given by the caller: the ticket's deadlines are met in `mailbot.tickets`)."""

    give_up_after: timedelta
    on_sent: OnSent
    pace_limit: int | None = None
    pace_window: timedelta = timedelta(minutes=10)

    @classmethod
    def of(cls, settings: Settings, on_sent: OnSent) -> SendPolicy:
        rules = settings.classification
        return cls(
            give_up_after=timedelta(hours=settings.daemon.outbox_max_attempts_hours),
            on_sent=on_sent,
            pace_limit=rules.burst_limit,
            pace_window=timedelta(minutes=rules.burst_window_minutes),
        )


@dataclass(frozen=True, slots=True)
class FlushReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unreachable: bool = False
    # ((purpose, state), count): what the metrics count by purpose.
    outcomes: tuple[tuple[tuple[str, str], int], ...] = ()
    # Seconds each message took the relay to answer.
    send_seconds: tuple[float, ...] = ()

    def plus(self, other: FlushReport) -> FlushReport:
        outcomes = Counter(dict(self.outcomes))
        outcomes.update(dict(other.outcomes))
        return FlushReport(
            sent=self.sent + other.sent,
            retrying=self.retrying + other.retrying,
            failed=self.failed + other.failed,
            unreachable=self.unreachable or other.unreachable,
            outcomes=tuple(sorted(outcomes.items())),
            send_seconds=self.send_seconds + other.send_seconds,
        )

    @property
    def reached_relay(self) -> bool:
        """Whether the relay answered during the flush (a flush with nothing to send never
        connects)."""
        return not self.unreachable and bool(self.outcomes)


_SMTP_CODES = re.compile(r"\b([245]\d\d)\b(?:[ ,']+([245]\.\d{1,3}\.\d{1,3}))?")


def smtp_code(error: str) -> str | None:
    """The SMTP reply code of an error and its enhanced status code ("550 5.1.1"), if any."""
    match = _SMTP_CODES.search(error)
    return " ".join(code for code in match.groups() if code) if match else None


def error_summary(error: str) -> str:
    """The SMTP codes of an error, or its first word: server texts often name the recipient,
    and logs carry no addresses (the full text stays on the outbox row)."""
    return smtp_code(error) or error.split(":", 1)[0].split(" ", 1)[0][:40] or "error"


def failure_detail(error: str) -> str:
    """A failure's detail on the ticket's history (shown by `mailbot show`): the relay's own
    text, which says why ("550 5.1.1 <x@example.org>: Recipient address rejected: User
    unknown"), on one line. It stays in the database, never in the log (`error_summary`)."""
    text = " ".join(error.split())
    return text[:500] or "error"


def backoff(attempts: int) -> timedelta:
    """Minutes at first, growing to about an hour: 1, 2, 4, 8, 16, 32, 60, 60... minutes."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def paced_capacity(connection: Connection, policy: SendPolicy, now: datetime) -> int | None:
    """How many automatic answers may still be sent now under the brake (None: no brake)."""
    if policy.pace_limit is None:
        return None
    return max(
        policy.pace_limit - outbox_rows.paced_sent_since(connection, now - policy.pace_window), 0
    )


def take_back_dead_leases(connection: Connection, now: datetime) -> int:
    """Release the leases held by a process of this host that died (a kill -9 mid-send), so
    the rows are sent now rather than after `LEASE`; a live process's are left alone
    (`leases.is_dead`). How many rows were released."""
    here = leases.me()
    released = 0
    for owner in outbox_rows.live_lease_owners(connection, now, f"{here.host}."):
        if leases.is_dead(owner, here):
            released += outbox_rows.release_leases(connection, owner)
    if released:
        log.warning("took back %d outbox row(s) leased by a process that died", released)
    return released


def claim_rows(
    app: App, now: datetime, owner: str, limit: int, policy: SendPolicy
) -> list[OutboxRow]:
    """Lease up to `limit` due rows to `owner`; rows another worker holds are skipped, and
    automatic answers beyond the brake's capacity wait (they stay pending)."""
    with app.engine.begin() as connection:
        take_back_dead_leases(connection, now)
        capacity = paced_capacity(connection, policy, now)
        until = now + timedelta(seconds=app.settings.daemon.outbox_lease_seconds)
        if capacity is None:
            claimed = outbox_rows.lease(connection, now, until, owner, limit, paced=None)
        else:
            claimed = outbox_rows.lease(connection, now, until, owner, limit, paced=False)
            paced = min(capacity, limit - len(claimed))
            claimed += outbox_rows.lease(connection, now, until, owner, paced, paced=True)
        return outbox_rows.leased_rows(connection, claimed, owner)


def met_at(row: OutboxRow, now: datetime) -> datetime:
    """The instant a sent row meets its ticket's deadline: for a staff reply or a referral,
    when staff acted (the command was applied and the row queued), however late the relay
    took it (a retry, a resend after a crash); for the others, the relay's acceptance. Never
    before the relay accepted it: a referral refused for good meets nothing."""
    return min(row.created_at, now) if row.purpose in deadlines.MET_WHEN_QUEUED else now


def record(
    connection: Connection,
    app: App,
    row: OutboxRow,
    now: datetime,
    result: SendResult,
    policy: SendPolicy,
    *,
    retry_in: timedelta | None = None,
) -> str:
    """Write the outcome of one attempt on `connection` (the caller's transaction); returns the
    row's new state ("lease_lost" when another worker took the row meanwhile). A temporary
    failure is tried again after `retry_in`, else after the row's growing backoff."""
    attempts = row.attempts + 1
    values: dict[str, object] = {"attempts": attempts}
    error = result.error[:2000]
    if result.outcome == "sent":
        values.update(state=OutboxState.SENT.value, sent_at=now, last_error="")
        if result.assigned_message_id and result.assigned_message_id != row.message_id:
            graph_rows.record_alias(connection, result.assigned_message_id, row.message_id, now)
    elif result.outcome == "held":
        values.update(state=OutboxState.HELD.value, last_error=error)
    elif result.outcome == "retry" and now - row.created_at < policy.give_up_after:
        delay = backoff(attempts) if retry_in is None else retry_in
        values.update(next_attempt_at=now + delay, last_error=error)
    else:
        values.update(
            state=OutboxState.FAILED.value,
            last_error=error or "gave up after repeated temporary failures",
        )
    state = str(values.get("state", OutboxState.PENDING.value))
    if not outbox_rows.record_attempt(connection, row, values):
        return "lease_lost"
    if row.purpose in outbox_rows.WAITED_FOR and state == OutboxState.SENT:
        outbox_rows.release_waiting(connection, row.id, now)
    elif row.purpose in outbox_rows.WAITED_FOR and state != OutboxState.PENDING:
        _withdraw_waiting(connection, row, now)
    if row.ticket_id is None or state == OutboxState.PENDING:
        return state
    if state == OutboxState.SENT:
        policy.on_sent(connection, app.settings, row.ticket_id, row.purpose, met_at(row, now))
    ticket_rows.add_event(
        connection,
        row.ticket_id,
        now,
        f"{row.purpose}_{state}",
        failure_detail(str(values["last_error"])) if state != OutboxState.SENT else "",
        outbox_id=row.id,
    )
    return state


def _withdraw_waiting(connection: Connection, row: OutboxRow, now: datetime) -> None:
    """What waited for `row` (refused for good) is never sent: a referral's notice to the
    citizen announces nothing that did not happen."""
    reason = f"withdrawn: outbox #{row.id} ({row.purpose}) it announces was not delivered"
    for withdrawn in outbox_rows.withdraw_waiting(connection, row.id, reason):
        if row.ticket_id is not None:
            ticket_rows.add_event(
                connection,
                row.ticket_id,
                now,
                "notice_withdrawn",
                f"outbox #{withdrawn}: outbox #{row.id} ({row.purpose}) was not delivered",
                outbox_id=withdrawn,
            )


@dataclass
class _Tally:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    send_seconds: list[float] = field(default_factory=list)

    def count(self, state: str, purpose: str = "") -> None:
        self.sent += state == OutboxState.SENT
        self.failed += state in (OutboxState.FAILED, OutboxState.HELD)
        self.retrying += state == OutboxState.PENDING
        if purpose:
            self.outcomes[(purpose, str(state))] += 1

    def report(self, *, unreachable: bool = False) -> FlushReport:
        return FlushReport(
            self.sent,
            self.retrying,
            self.failed,
            unreachable,
            tuple(sorted(self.outcomes.items())),
            tuple(self.send_seconds),
        )


class _Lanes:
    """The rows of one claim, sent over several relay sessions at once, from one event loop.

    Rows are split by ticket (`lanes_of`), so a ticket's messages leave in the order they
    were queued, over one session. A lane sends its next message only once the outcome of the
    one before is committed, so at most one accepted message per session is ever unrecorded
    (the window a crash can turn into a second copy). Outcomes that are ready together, from
    several lanes, are written in one transaction. When the relay goes away, every lane stops
    after its current message and the rows not sent wait for the next pass."""

    def __init__(self, app: App, now: datetime, policy: SendPolicy) -> None:
        self.app, self.now, self.policy = app, now, policy
        self.tally = _Tally()
        self.unsent: list[OutboxRow] = []
        self.lost: str | None = None
        self._ready: list[tuple[OutboxRow, SendResult, asyncio.Future[str]]] = []
        self._connection: Connection | None = None  # the lanes' one, for their outcomes

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def run(self, relay: Relay, rows: list[OutboxRow]) -> None:
        for number, row in enumerate(rows):
            if self.lost is not None:
                self.unsent.extend(rows[number:])
                return
            started = time.perf_counter()
            try:
                session = await relay.session(self.now)
                result = await session.send(row.envelope_from, row.recipient, row.raw)
            except SmtpError as exc:
                # The relay went away mid-batch: this row and the rest wait for the next pass.
                if self.lost is None:
                    log.warning("relay lost: %s", error_summary(str(exc)))
                    self.lost = f"connection: {exc}"
                self.unsent.extend(rows[number:])
                return
            self.tally.send_seconds.append(time.perf_counter() - started)
            state = await self._recorded(row, result)
            self.tally.count(state, row.purpose)
            _log_outcome(row, state, result)

    async def guarded(self, relay: Relay, rows: list[OutboxRow]) -> None:
        """`run`, stopping the other lanes when this one fails."""
        try:
            await self.run(relay, rows)
        except BaseException as exc:
            self.lost = self.lost or f"sending stopped: {type(exc).__name__}"
            raise

    async def _recorded(self, row: OutboxRow, result: SendResult) -> str:
        """The outcome, once written (with whatever other lane's outcome is ready then)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        self._ready.append((row, result, done))
        if len(self._ready) == 1:
            loop.call_soon(self._write_ready)
        return await done

    def _write_ready(self) -> None:
        ready, self._ready = self._ready, []
        try:
            connection = self._connection = self._connection or self.app.engine.connect()
            with connection.begin():
                states = [
                    record(connection, self.app, row, self.now, result, self.policy)
                    for row, result, _ in ready
                ]
        except Exception as exc:  # raised again in each lane that waits for it
            for _, _, done in ready:
                if not done.done():  # a lane cancelled (the flush interrupted) waits no more
                    done.set_exception(exc)
            return
        for (_, _, done), state in zip(ready, states, strict=True):
            if not done.done():
                done.set_result(state)


def lanes_of(rows: Sequence[OutboxRow], count: int) -> list[list[OutboxRow]]:
    """`rows` split into at most `count` lanes; the rows of one ticket (and those of no ticket
    to one recipient) stay in one lane, in the order they were queued: a reply never
    overtakes its ticket's acknowledgement."""
    lanes: dict[int, list[OutboxRow]] = {}
    for row in rows:
        key = row.ticket_id if row.ticket_id is not None else zlib.crc32(row.recipient.encode())
        lanes.setdefault(key % count, []).append(row)
    return list(lanes.values())


async def _send_rows(
    app: App, relays: Sequence[Relay], pending: list[OutboxRow], now: datetime, policy: SendPolicy
) -> FlushReport:
    """Send `pending` over as many of `relays` as there are lanes (sessions opened first)."""
    work = _Lanes(app, now, policy)
    lanes = lanes_of(pending, len(relays))
    relays = await _opened(relays[: len(lanes)], now)
    if len(relays) < len(lanes):
        lanes = lanes_of(pending, len(relays))
    try:
        outcomes = await asyncio.gather(
            *(work.guarded(relay, rows) for relay, rows in zip(relays, lanes, strict=False)),
            return_exceptions=True,
        )
    finally:
        work.close()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    if work.lost is not None:
        _retry_all(app, work.unsent, now, work.lost, policy, work.tally)
        return work.tally.report(unreachable=True)
    return work.tally.report()


def _log_outcome(row: OutboxRow, state: str, result: SendResult) -> None:
    fields = log_fields(outbox=row.id, purpose=row.purpose, smtp_code=smtp_code(result.error))
    if state == OutboxState.SENT:
        log.info("sent %s", row.message_id, extra=fields)
    else:
        log.warning(
            "outbox %s %s: %s", row.message_id, state, error_summary(result.error), extra=fields
        )


def _retry_all(
    app: App,
    pending: Sequence[OutboxRow],
    now: datetime,
    error: str,
    policy: SendPolicy,
    tally: _Tally,
) -> None:
    """The relay could not be reached: every row waits for it, a minute at a time."""
    result = SendResult("retry", error)
    with app.engine.begin() as connection:
        for row in pending:
            state = record(connection, app, row, now, result, policy, retry_in=RELAY_DOWN_RETRY)
            tally.count(state)


class Relay:
    """A sender session opened on first use (nothing to send, no connection) and kept for
    every batch of a flush; `close` ends it."""

    def __init__(self, app: App, sizes: list[int] | None = None) -> None:
        self._app = app
        self._stack: AsyncExitStack | None = None
        self._session: SenderSession | None = None
        # Where the relay's announced SIZE goes when a session opens (`sizes.record_relay_size`).
        self._sizes = sizes

    async def session(self, now: datetime) -> SenderSession:
        if self._session is None:
            stack = AsyncExitStack()
            self._session = await stack.enter_async_context(self._app.sender.session(now))
            self._stack = stack
        return self._session

    async def close(self) -> None:
        # What the relay announced in the EHLO of this session (it comes with the first
        # message), for the referrals to come (mailbot/sending/sizes.py).
        size = self._session.announced_size if self._session is not None else None
        if size is not None and self._sizes is not None:
            self._sizes.append(size)
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except (SmtpError, OSError) as exc:
                log.warning("closing the relay session: %s", error_summary(str(exc)))


async def _opened(relays: Sequence[Relay], now: datetime) -> list[Relay]:
    """The relays whose session is open, opening them first, before any lane starts. The first
    must open (SmtpError: the relay cannot be reached); the others then open at once, side by
    side (a relay across a network takes a few round trips for each), and one the relay
    refuses (it may allow fewer sessions than configured) is left out of this flush."""
    await relays[0].session(now)
    outcomes = await asyncio.gather(
        *(relay.session(now) for relay in relays[1:]), return_exceptions=True
    )
    opened = [relays[0]]
    for relay, outcome in zip(relays[1:], outcomes, strict=True):
        if isinstance(outcome, SmtpError):
            log.info("a further relay session refused: %s", error_summary(str(outcome)))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            opened.append(relay)
    return opened


async def _close(relays: Sequence[Relay]) -> None:
    await asyncio.gather(*(relay.close() for relay in relays))


def flush_outbox(
    app: App,
    now: datetime,
    policy: SendPolicy,
    *,
    batch: int = 500,
    owner: str | None = None,
) -> FlushReport:
    """Send every due row (over up to `[smtp] connections` relay sessions) and report the
    counts.

    Whatever goes wrong while sending, the rows this worker still holds are released before
    it returns, so another pass or instance can take them at once.
    """
    owner = owner or leases.lease_owner()
    announced: list[int] = []
    try:
        return asyncio.run(_flush(app, now, policy, batch, owner, announced))
    finally:
        with app.engine.begin() as connection:
            outbox_rows.release_leases(connection, owner)
            if announced:  # what a referral must fit (mailbot/sending/sizes.py)
                sizes.record_relay_size(connection, announced[-1])


async def _flush(
    app: App,
    now: datetime,
    policy: SendPolicy,
    batch: int,
    owner: str,
    announced: list[int] | None = None,
) -> FlushReport:
    relays = [Relay(app, announced) for _ in range(app.settings.smtp.connections)]
    total = FlushReport()
    try:
        while True:
            claimed = claim_rows(app, now, owner, batch, policy)
            if not claimed:
                return total
            try:
                report = await _send_rows(app, relays, claimed, now, policy)
            except SmtpError as exc:
                log.warning("relay unreachable: %s", error_summary(str(exc)))
                await _close(relays)
                tally = _Tally()
                _retry_all(app, claimed, now, f"connection: {exc}", policy, tally)
                report = tally.report(unreachable=True)
            if report.unreachable:
                await _close(relays)
            total = total.plus(report)
            if report.unreachable or report.sent == 0:
                return total
    except Exception as exc:  # never leave rows leased behind a crash of the sender
        log.error("sending stopped: %s", error_summary(f"{type(exc).__name__}: {exc}"))
        log.debug("sending stopped", exc_info=True)
        return total.plus(FlushReport(unreachable=True))
    finally:
        await _close(relays)
