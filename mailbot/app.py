"""Builds mailbot from its settings and runs its passes: ingest, decide, write, send.

One direction: IMAP -> store the raw message with its outcome in one transaction -> mark
it processed on the server -> the outbox worker sends. A message already stored is never
processed again; one that could not be parsed is quarantined and never blocks the others.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col, select

from mailbot import workflow
from mailbot.business_calendar import BusinessCalendar, build_calendar
from mailbot.clock import Clock
from mailbot.delivery import report_failures, review_pacing
from mailbot.errors import ClockRefused, ConfigError, ImapError, NotFound
from mailbot.ingest import FetchedMessage, ImapMailbox
from mailbot.jobs import run_due_jobs
from mailbot.logformat import log_fields
from mailbot.logins import Logins
from mailbot.models import ImapCheckpoint, InboundMessage, Ticket
from mailbot.outbox import FlushReport, SendPolicy, flush_outbox
from mailbot.pipeline import Pipeline, goes_to_quarantine, process_fetched
from mailbot.records import INBOUND, claim_meta
from mailbot.render import Renderer
from mailbot.settings import MailboxSettings, Settings, secret
from mailbot.store import make_engine, migrate, session_scope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class App:
    """Everything a pass needs, built once from the settings."""

    settings: Settings
    engine: Engine
    clock: Clock
    renderer: Renderer
    calendar: BusinessCalendar
    signing_key: bytes
    environ: Mapping[str, str]
    logins: Logins  # kept for the process's life: OAuth2 tokens are cached across passes

    def password(self, variable: str | None, what: str) -> str:
        return secret(self.environ, variable, what)


def load_signing_key(settings: Settings, environ: Mapping[str, str]) -> bytes:
    """The key from the environment, else a key file in the data directory (made once)."""
    value = environ.get(settings.organisation.signing_key_env)
    if value:
        if len(value) < 16:
            raise ConfigError(f"{settings.organisation.signing_key_env} must be 16+ characters")
        return value.encode()
    path = settings.data_dir / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        log.info("created a signing key in %s", path)
    return path.read_text().strip().encode()


def build_app(
    settings: Settings,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    engine: Engine | None = None,
) -> App:
    env = os.environ if environ is None else environ
    engine = engine or make_engine(settings.database_url)
    migrate(engine)
    return App(
        settings=settings,
        engine=engine,
        clock=clock,
        renderer=Renderer(settings.templates_dir),
        calendar=build_calendar(settings.calendar, settings.organisation.timezone),
        signing_key=load_signing_key(settings, env),
        environ=env,
        logins=Logins(settings, env),
    )


@dataclass
class PassReport:
    """What one pass did, for the exit code and the log."""

    fetched: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    outbox: FlushReport = field(default_factory=FlushReport)
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    @property
    def ok(self) -> bool:
        return not self.errors and not self.outbox.unreachable

    def summary(self) -> str:
        parts = [f"fetched={self.fetched}"]
        parts += [f"{name}={n}" for name, n in sorted(self.outcomes.items())]
        parts += [
            f"moved={self.moved}",
            f"sent={self.outbox.sent}",
            f"retrying={self.outbox.retrying}",
            f"failed={self.outbox.failed}",
        ]
        if self.outbox.unreachable:
            parts.append("smtp=unreachable")
        parts += [f"error={error}" for error in self.errors]
        return " ".join(parts)


StopCheck = Callable[[], bool]


LIVE, REPLAY = "live", "replay"


def guard_clock(app: App) -> None:
    """Refuse to mix replayed and real time in one database.

    The first command that writes a database fixes which clock writes it from then on: the
    real one (a live database) or `--now` (a replay database: tests, demos, audits on a
    copy). A pass as of another instant on a live database would record late answers, send
    reminders early and use up today's digest; the real clock on a replay database would mix
    invented dates with real ones. Both are refused before anything is written.
    """
    wanted = REPLAY if app.clock.replays else LIVE
    with app.engine.begin() as connection:
        mode = claim_meta(connection, "clock", wanted)
    if mode == wanted:
        return
    if mode == LIVE:
        raise ClockRefused(
            "--now cannot write to this database: it is a live one (written by the real "
            "clock). Read-only commands (report, tickets, show, due) accept --now; replay a "
            "pass on a separate database (MAILBOT_DATABASE_URL) against test mail servers"
        )
    raise ClockRefused(
        "this database holds replayed time (it was written under --now): the real clock "
        "never writes to it; give --now, or point mailbot at the live database"
    )


def run_pass(app: App, should_stop: StopCheck = lambda: False) -> PassReport:
    """One full pass: every mailbox's new mail, then the outbox."""
    guard_clock(app)
    report = PassReport()
    for mailbox in app.settings.mailboxes:
        if should_stop():
            break
        try:
            ingest_mailbox(app, mailbox, report, should_stop)
        except ImapError as exc:
            log.error("mailbox %s: %s", mailbox.name, exc, extra=log_fields(mailbox=mailbox.name))
            report.errors.append(f"imap:{mailbox.name}")
    try:
        jobs = run_due_jobs(app, app.clock.now())
    except Exception:  # reminders must never stop ingestion or sending
        log.exception("scheduled jobs failed")
        report.errors.append("jobs")
    else:
        for name, n in jobs.counts().items():
            report.outcomes[name] = report.outcomes.get(name, 0) + n
        if jobs.failed:
            report.errors.append("jobs")
    report.outbox = send_outbox(app)
    return report


def send_outbox(app: App) -> FlushReport:
    """Flush the outbox; the brake's notices go before, failure reports after (and out)."""
    smtp = app.settings.smtp
    policy = send_policy(app.settings)
    context = workflow_context(app)
    now = app.clock.now()
    review_pacing(app.engine, context, policy, now)
    login = app.logins.smtp()
    report = flush_outbox(app.engine, smtp, login, now, policy=policy)
    if report_failures(app.engine, context, now):
        report = report.plus(flush_outbox(app.engine, smtp, login, now, policy=policy))
    return report


def workflow_context(app: App) -> workflow.Context:
    return workflow.Context(
        settings=app.settings,
        renderer=app.renderer,
        signing_key=app.signing_key,
        calendar=app.calendar,
    )


def send_policy(settings: Settings) -> SendPolicy:
    """Acknowledgements meet the acknowledgement commitments; replies the reply and result ones."""
    by_kind: dict[str, list[str]] = {}
    for commitment in settings.commitments:
        by_kind.setdefault(commitment.kind, []).append(commitment.id)
    rules = settings.classification
    return SendPolicy(
        pace_limit=rules.burst_limit,
        pace_window=timedelta(minutes=rules.burst_window_minutes),
        give_up_after=timedelta(hours=settings.daemon.outbox_max_attempts_hours),
        meets={
            "acknowledgement": tuple(by_kind.get("acknowledgement", ())),
            "reply": (*by_kind.get("reply", ()), *by_kind.get("result", ())),
        },
    )


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ingest_mailbox(
    app: App, mailbox: MailboxSettings, report: PassReport, should_stop: StopCheck
) -> None:
    """Store and process each new message of `mailbox`, then move it out of the inbox."""
    login = app.logins.imap(mailbox)
    pipeline = Pipeline.build(app.settings, app.calendar, app.renderer, app.signing_key)
    with ImapMailbox(app.settings.imap, login, app.clock.now()) as imap:
        imap.ensure_folder(mailbox.processed_folder)
        imap.ensure_folder(mailbox.quarantine_folder)
        uidvalidity = imap.select(mailbox.folder)
        _warn_if_uidvalidity_changed(app.engine, mailbox.name, uidvalidity)
        uids = imap.list_uids()
        stored = _stored_states(app.engine, mailbox.name, uidvalidity, uids)
        # Stored but not yet moved (the process stopped in between): move, never reprocess.
        _move(app, imap, mailbox, uidvalidity, stored, report)
        new = [uid for uid in uids if uid not in stored]
        for batch in _chunks(new, app.settings.daemon.fetch_batch):
            states: dict[int, bool] = {}
            for fetched in imap.fetch(batch, app.settings.daemon.max_message_bytes):
                with app.engine.begin() as connection:
                    processed = process_fetched(
                        connection, pipeline, mailbox, uidvalidity, fetched, app.clock.now()
                    )
                    _advance_checkpoint(
                        connection, mailbox.name, uidvalidity, fetched.uid, app.clock.now()
                    )
                states[fetched.uid] = processed.goes_to_quarantine
                report.count(processed.label)
                report.fetched += 1
                if should_stop():
                    break
            _move(app, imap, mailbox, uidvalidity, states, report)
            if should_stop():
                return


def _warn_if_uidvalidity_changed(engine: Engine, mailbox: str, uidvalidity: int) -> None:
    """A new UIDVALIDITY (the mailbox was rebuilt or restored) is worth a person's look.

    Nothing is processed twice: a message seen before is recognised by its Message-ID and
    hash and set aside as a duplicate.
    """
    table = ImapCheckpoint.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        known = set(
            connection.execute(
                sa.select(table.c.uidvalidity).where(table.c.mailbox == mailbox)
            ).scalars()
        )
    if known and uidvalidity not in known:
        log.warning(
            "mailbox %s: UIDVALIDITY changed (%s, was %s); earlier messages found again "
            "are recognised by Message-ID and hash and set aside as duplicates",
            mailbox,
            uidvalidity,
            max(known),
            extra=log_fields(mailbox=mailbox),
        )


def _advance_checkpoint(
    connection: Connection, mailbox: str, uidvalidity: int, uid: int, now: datetime
) -> None:
    """Record the highest UID stored for (mailbox, UIDVALIDITY), in the message's transaction."""
    table = ImapCheckpoint.__table__  # type: ignore[attr-defined]
    updated = connection.execute(
        sa.update(table)
        .where(table.c.mailbox == mailbox)
        .where(table.c.uidvalidity == uidvalidity)
        .where(table.c.last_uid < uid)
        .values(last_uid=uid, updated_at=now)
    )
    if updated.rowcount == 0:
        exists = connection.execute(
            sa.select(table.c.last_uid)
            .where(table.c.mailbox == mailbox)
            .where(table.c.uidvalidity == uidvalidity)
        ).first()
        if exists is None:
            connection.execute(
                sa.insert(table).values(
                    mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid, updated_at=now
                )
            )


def _stored_states(
    engine: Engine, mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, bool]:
    """Messages of `uids` already stored: whether each goes to the quarantine folder."""
    if not uids:
        return {}
    found: dict[int, bool] = {}
    with session_scope(engine) as session:
        for batch in _chunks(list(uids), 500):
            rows = session.exec(
                select(InboundMessage.uid, InboundMessage.state, InboundMessage.flags)
                .where(InboundMessage.mailbox == mailbox)
                .where(InboundMessage.uidvalidity == uidvalidity)
                .where(col(InboundMessage.uid).in_(batch))
            ).all()
            found.update(
                {
                    int(uid): goes_to_quarantine(state, flags.split(","))
                    for uid, state, flags in rows
                }
            )
    return found


def _move(
    app: App,
    imap: ImapMailbox,
    mailbox: MailboxSettings,
    uidvalidity: int,
    quarantine: Mapping[int, bool],
    report: PassReport,
) -> None:
    """Move stored messages to the processed or quarantine folder and record it."""
    by_folder: dict[str, list[int]] = {}
    for uid, to_quarantine in quarantine.items():
        folder = mailbox.quarantine_folder if to_quarantine else mailbox.processed_folder
        by_folder.setdefault(folder, []).append(uid)
    now = app.clock.now()
    for folder, uids in by_folder.items():
        imap.move(sorted(uids), folder)
        report.moved += len(uids)
        with session_scope(app.engine) as session:
            for batch in _chunks(sorted(uids), 500):
                session.execute(
                    sa.update(InboundMessage)
                    .where(col(InboundMessage.mailbox) == mailbox.name)
                    .where(col(InboundMessage.uidvalidity) == uidvalidity)
                    .where(col(InboundMessage.uid).in_(batch))
                    .values(moved_at=now, folder=folder)
                )


def list_quarantine(app: App) -> list[dict[str, Any]]:
    """Quarantined messages, oldest first: number, mailbox, arrival, size and reason."""
    with session_scope(app.engine) as session:
        rows = session.exec(
            select(InboundMessage)
            .where(InboundMessage.state == "quarantined")
            .order_by(col(InboundMessage.id))
        ).all()
        return [
            {
                "id": row.id,
                "mailbox": row.mailbox,
                "received_at": row.internal_date.isoformat(),
                "size": row.size,
                "message_id": row.message_id,
                "reason": row.reason,
            }
            for row in rows
        ]


def retry_quarantined(app: App, inbound_id: int) -> str:
    """Process a quarantined message again from its stored bytes; returns its new state.

    The stored row is replaced in the same transaction by the outcome of a fresh pass over
    the same bytes, keeping its IMAP key; a message that fails again stays quarantined.
    """
    guard_clock(app)
    pipeline = Pipeline.build(app.settings, app.calendar, app.renderer, app.signing_key)
    now = app.clock.now()
    with app.engine.begin() as connection:
        row = connection.execute(sa.select(INBOUND).where(INBOUND.c.id == inbound_id)).first()
        if row is None or row.state != "quarantined":
            raise NotFound(f"no quarantined message #{inbound_id}")
        mailbox = app.settings.mailbox(row.mailbox)
        fetched = FetchedMessage(
            uid=row.uid,
            internal_date=row.internal_date,
            size=row.size,
            raw=row.raw,
            truncated=False,
        )
        connection.execute(sa.delete(INBOUND).where(INBOUND.c.id == inbound_id))
        processed = process_fetched(connection, pipeline, mailbox, row.uidvalidity, fetched, now)
    log.info(
        "quarantined message #%s retried: %s",
        inbound_id,
        processed.state,
        extra=log_fields(mailbox=row.mailbox, uid=row.uid, inbound=inbound_id),
    )
    return processed.state


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    """The public JSON shape of a ticket (instants with offset, dates as YYYY-MM-DD)."""

    def instant(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "ref": ticket.ref,
        "mailbox": ticket.mailbox,
        "category": ticket.category,
        "status": ticket.status,
        "requester": ticket.requester,
        "language": ticket.language,
        "subject": ticket.subject,
        "received_at": instant(ticket.received_at),
        "receipt_date": ticket.receipt_date.isoformat(),
        "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
        "acknowledged_at": instant(ticket.acknowledged_at),
        "answered_at": instant(ticket.answered_at),
        "closed_at": instant(ticket.closed_at),
        "assignee": ticket.assignee,
    }
