"""Builds mailbot from its settings and runs its passes: ingest, decide, write, send.

One direction: IMAP -> store the raw message with its outcome in one transaction -> mark
it processed on the server -> the outbox worker sends. A message already stored is never
processed again; one that could not be parsed is quarantined and never blocks the others.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot import tokens
from mailbot.business_calendar import BusinessCalendar, build_calendar
from mailbot.classify import ClassifyContext, Kind, TicketFacts, Verdict, candidate_refs, classify
from mailbot.clock import Clock
from mailbot.errors import ConfigError, ImapError
from mailbot.ingest import FetchedMessage, ImapMailbox
from mailbot.models import (
    AddressState,
    ImapCheckpoint,
    InboundMessage,
    OutboxMessage,
    Ticket,
    TicketCounter,
    TicketDeadline,
    TicketEvent,
)
from mailbot.outbox import FlushReport, flush_outbox
from mailbot.parse import InboundMail, parse_message
from mailbot.render import Envelope, Renderer, compose
from mailbot.settings import MailboxSettings, Settings, secret
from mailbot.store import make_engine, migrate, session_scope
from mailbot.tickets import Decision, NewTicket, Outcome, decide

log = logging.getLogger(__name__)

# The commitments of each category when no mailbox of that category says otherwise.
CATEGORY_COMMITMENTS: Mapping[str, tuple[str, ...]] = {
    "information": ("ack", "info_reply"),
    "complaint": ("ack", "complaint_reply"),
    "internship": ("internship_ack", "internship_result"),
    "cooperation": ("cooperation_ack", "cooperation_result"),
}


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


def run_pass(app: App, should_stop: StopCheck = lambda: False) -> PassReport:
    """One full pass: every mailbox's new mail, then the outbox."""
    report = PassReport()
    for mailbox in app.settings.mailboxes:
        if should_stop():
            break
        try:
            ingest_mailbox(app, mailbox, report, should_stop)
        except ImapError as exc:
            log.error("mailbox %s: %s", mailbox.name, exc)
            report.errors.append(f"imap:{mailbox.name}")
    report.outbox = send_outbox(app)
    return report


def send_outbox(app: App) -> FlushReport:
    smtp = app.settings.smtp
    return flush_outbox(
        app.engine,
        smtp,
        app.password(smtp.password_env, "SMTP password"),
        app.clock.now(),
        give_up_after=timedelta(hours=app.settings.daemon.outbox_max_attempts_hours),
    )


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ingest_mailbox(
    app: App, mailbox: MailboxSettings, report: PassReport, should_stop: StopCheck
) -> None:
    """Store and process each new message of `mailbox`, then move it out of the inbox."""
    password = app.password(mailbox.password_env, f"IMAP password of mailbox {mailbox.name}")
    with ImapMailbox(app.settings.imap, mailbox.login, password) as imap:
        imap.ensure_folder(mailbox.processed_folder)
        imap.ensure_folder(mailbox.quarantine_folder)
        uidvalidity = imap.select(mailbox.folder)
        uids = imap.list_uids()
        stored = _stored_states(app.engine, mailbox.name, uidvalidity, uids)
        # Stored but not yet moved (the process stopped in between): move, never reprocess.
        _move(app, imap, mailbox, uidvalidity, stored, report)
        new = [uid for uid in uids if uid not in stored]
        for batch in _chunks(new, app.settings.daemon.fetch_batch):
            states: dict[int, str] = {}
            for fetched in imap.fetch(batch, app.settings.daemon.max_message_bytes):
                states[fetched.uid] = process_fetched(app, mailbox, uidvalidity, fetched, report)
                report.fetched += 1
                if should_stop():
                    break
            _move(app, imap, mailbox, uidvalidity, states, report)
            if should_stop():
                return


def _stored_states(
    engine: Engine, mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, str]:
    if not uids:
        return {}
    found: dict[int, str] = {}
    with session_scope(engine) as session:
        for batch in _chunks(list(uids), 500):
            rows = session.exec(
                select(InboundMessage.uid, InboundMessage.state)
                .where(InboundMessage.mailbox == mailbox)
                .where(InboundMessage.uidvalidity == uidvalidity)
                .where(col(InboundMessage.uid).in_(batch))
            ).all()
            found.update({int(uid): state for uid, state in rows})
    return found


def _move(
    app: App,
    imap: ImapMailbox,
    mailbox: MailboxSettings,
    uidvalidity: int,
    states: Mapping[int, str],
    report: PassReport,
) -> None:
    """Move stored messages to the processed or quarantine folder and record it."""
    by_folder: dict[str, list[int]] = {}
    for uid, state in states.items():
        folder = mailbox.quarantine_folder if state == "quarantined" else mailbox.processed_folder
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


def process_fetched(
    app: App,
    mailbox: MailboxSettings,
    uidvalidity: int,
    fetched: FetchedMessage,
    report: PassReport,
) -> str:
    """Store one fetched message and everything it causes, in one transaction.

    Returns the message's state. A stored message (same mailbox, UIDVALIDITY, UID) is never
    processed twice, even when another instance got to it first.
    """
    now = app.clock.now()
    digest = hashlib.sha256(fetched.raw).hexdigest()
    with session_scope(app.engine) as session:
        existing = session.exec(
            select(InboundMessage)
            .where(InboundMessage.mailbox == mailbox.name)
            .where(InboundMessage.uidvalidity == uidvalidity)
            .where(InboundMessage.uid == fetched.uid)
        ).first()
        if existing is not None:
            return existing.state
        row = InboundMessage(
            mailbox=mailbox.name,
            folder=mailbox.folder,
            uidvalidity=uidvalidity,
            uid=fetched.uid,
            sha256=digest,
            size=fetched.size,
            raw=fetched.raw,
            internal_date=fetched.internal_date,
            state="received",
            stored_at=now,
        )
        _advance_checkpoint(session, mailbox.name, uidvalidity, fetched.uid, now)
        try:
            with session.begin_nested():
                mail = parse_message(fetched.raw)
                row.message_id = mail.message_id[:1000]
                duplicate = _duplicate_of(session, mailbox.name, digest, mail.message_id)
                if duplicate is not None:
                    row.state = "set_aside"
                    row.reason = f"same message as inbound #{duplicate} (delivered again)"
                    row.kind = "duplicate"
                    session.add(row)
                else:
                    _process_mail(app, session, mailbox, row, mail, fetched, now)
        except Exception as exc:  # a poison message must never block the ones behind it
            log.exception(
                "inbound %s/%s uid %s quarantined", mailbox.name, uidvalidity, fetched.uid
            )
            row = InboundMessage(
                mailbox=mailbox.name,
                folder=mailbox.folder,
                uidvalidity=uidvalidity,
                uid=fetched.uid,
                sha256=digest,
                size=fetched.size,
                raw=fetched.raw,
                internal_date=fetched.internal_date,
                state="quarantined",
                reason=f"{type(exc).__name__}: {exc}"[:2000],
                stored_at=now,
            )
            session.add(row)
        report.count(row.state if row.state != "processed" else row.kind or "processed")
        return row.state


def _advance_checkpoint(
    session: Session, mailbox: str, uidvalidity: int, uid: int, now: datetime
) -> None:
    checkpoint = session.get(ImapCheckpoint, (mailbox, uidvalidity))
    if checkpoint is None:
        session.add(
            ImapCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid, updated_at=now)
        )
    elif uid > checkpoint.last_uid:
        checkpoint.last_uid = uid
        checkpoint.updated_at = now
        session.add(checkpoint)


def _duplicate_of(session: Session, mailbox: str, digest: str, message_id: str) -> int | None:
    if not message_id:
        return None
    return session.exec(
        select(InboundMessage.id)
        .where(InboundMessage.mailbox == mailbox)
        .where(InboundMessage.sha256 == digest)
        .where(InboundMessage.message_id == message_id[:1000])
    ).first()


def _ticket_facts(session: Session, refs: Iterable[str]) -> dict[str, TicketFacts]:
    refs = list(refs)
    if not refs:
        return {}
    rows = session.exec(select(Ticket).where(col(Ticket.ref).in_(refs))).all()
    return {t.ref: TicketFacts(ref=t.ref, requester=t.requester, status=t.status) for t in rows}


def _known_message_ids(session: Session, message_ids: Sequence[str]) -> dict[str, str]:
    if not message_ids:
        return {}
    rows = session.exec(
        select(InboundMessage.message_id, Ticket.ref)
        .join(Ticket, col(Ticket.id) == col(InboundMessage.ticket_id))
        .where(col(InboundMessage.message_id).in_(list(message_ids)[:50]))
    ).all()
    return {message_id: ref for message_id, ref in rows}


def classify_context(
    app: App,
    mailbox: MailboxSettings,
    tickets: Mapping[str, TicketFacts],
    known_message_ids: Mapping[str, str],
) -> ClassifyContext:
    settings = app.settings
    staff = {address.lower() for m in settings.mailboxes for address in (*m.staff, *m.supervisors)}
    return ClassifyContext(
        mailbox=mailbox,
        rules=settings.classification,
        own_addresses=frozenset(m.address.lower() for m in settings.mailboxes),
        message_id_domain=settings.organisation.message_id_domain,
        staff_addresses=frozenset(staff),
        staff_domains=frozenset(d.lower() for d in settings.organisation.staff_domains),
        signing_key=app.signing_key,
        tickets=tickets,
        known_message_ids=known_message_ids,
        available_categories=frozenset(m.category for m in settings.mailboxes),
    )


def _process_mail(
    app: App,
    session: Session,
    mailbox: MailboxSettings,
    row: InboundMessage,
    mail: InboundMail,
    fetched: FetchedMessage,
    now: datetime,
) -> None:
    refs = candidate_refs(mail, app.signing_key, app.settings.organisation.ticket_prefix)
    facts = _ticket_facts(session, refs)
    known = _known_message_ids(session, mail.thread_ids)
    facts.update(_ticket_facts(session, set(known.values()) - set(facts)))
    verdict = classify(mail, classify_context(app, mailbox, facts, known))
    ticket_status = facts[verdict.ticket_ref].status if verdict.ticket_ref in facts else None
    decision = decide(
        mail,
        verdict,
        mailbox=mailbox.name,
        default_category=mailbox.category,
        received_at=fetched.internal_date,
        ticket_status=ticket_status,
    )
    if fetched.truncated:
        decision = replace(
            decision,
            flags=(*decision.flags, "oversized"),
            reason=decision.reason + f"; over the size cap ({fetched.size} bytes), headers only",
        )
    row.kind = verdict.kind.value
    row.rules = ",".join(verdict.rules)[:2000]
    row.flags = ",".join(decision.flags)
    row.reason = decision.reason[:2000]
    row.state = {
        Outcome.OPENED: "processed",
        Outcome.ATTACHED: "processed",
        Outcome.SET_ASIDE: "set_aside",
        Outcome.HELD: "held",
    }[decision.outcome]
    if fetched.truncated and row.state == "processed":
        row.state = "set_aside"
    session.add(row)
    session.flush()
    _record_bounce(session, mail, verdict, now)
    ticket = _apply(app, session, mailbox, row, mail, verdict, decision, now)
    if ticket is not None:
        row.ticket_id = ticket.id
        session.add(row)
    log.info(
        "inbound %s uid %s: %s (%s)%s",
        mailbox.name,
        fetched.uid,
        verdict.kind.value,
        decision.outcome.value,
        f" ticket {ticket.ref}" if ticket else "",
    )


def _record_bounce(session: Session, mail: InboundMail, verdict: Verdict, now: datetime) -> None:
    report = mail.delivery_report
    if verdict.kind is not Kind.BOUNCE or report is None or not report.is_permanent_failure:
        return
    if not report.final_recipient:
        return
    state = session.get(AddressState, report.final_recipient) or AddressState(
        address=report.final_recipient, updated_at=now
    )
    state.undeliverable = True
    state.reason = f"permanent failure {report.status or report.action}"
    state.updated_at = now
    session.add(state)


def _apply(
    app: App,
    session: Session,
    mailbox: MailboxSettings,
    row: InboundMessage,
    mail: InboundMail,
    verdict: Verdict,
    decision: Decision,
    now: datetime,
) -> Ticket | None:
    detail = f"{verdict.kind.value}; rules: {', '.join(verdict.rules) or '-'}; {decision.reason}"
    if decision.open_ticket is not None:
        ticket = open_ticket(app, session, decision.open_ticket, now)
        _event(session, ticket, now, "opened", row, detail, actor=ticket.requester)
        if decision.acknowledge:
            queue_acknowledgement(app, session, mailbox, ticket, mail, row, now)
        else:
            _event(
                session,
                ticket,
                now,
                "acknowledgement_withheld",
                row,
                "automatic message: no automatic answer",
            )
        return ticket
    if decision.ticket_ref is None:
        return None
    existing = session.exec(select(Ticket).where(Ticket.ref == decision.ticket_ref)).first()
    if existing is None:
        return None
    ticket = existing
    kind = {Outcome.ATTACHED: "message_attached", Outcome.HELD: "message_held"}.get(
        decision.outcome, "message_set_aside"
    )
    _event(
        session,
        ticket,
        now,
        kind,
        row,
        detail,
        actor=mail.sender.address if mail.sender else "unknown",
    )
    if decision.reopen and ticket.status in ("answered", "closed"):
        ticket.status = "open"
        ticket.closed_at = None
        ticket.updated_at = now
        session.add(ticket)
        _event(session, ticket, now, "reopened", row, "follow-up from the requester")
    return ticket


def _event(
    session: Session,
    ticket: Ticket,
    now: datetime,
    kind: str,
    row: InboundMessage | None,
    detail: str,
    actor: str = "mailbot",
) -> None:
    assert ticket.id is not None
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            at=now,
            kind=kind,
            actor=actor,
            inbound_id=row.id if row else None,
            detail=detail[:4000],
        )
    )


def commitments_for(settings: Settings, category: str) -> tuple[str, ...]:
    """The commitments of a category: from the mailbox of that category, else the defaults."""
    for mailbox in settings.mailboxes:
        if mailbox.category == category:
            return mailbox.commitments
    return CATEGORY_COMMITMENTS.get(category, ("ack",))


def allocate_ref(session: Session, prefix: str, year: int) -> str:
    """The next reference of the year; the counter row is locked by the write transaction."""
    counter = session.get(TicketCounter, (prefix, year))
    if counter is None:
        counter = TicketCounter(prefix=prefix, year=year, last=0)
    counter.last += 1
    session.add(counter)
    session.flush()
    return f"{prefix}-{year}-{counter.last:05d}"


def open_ticket(app: App, session: Session, new: NewTicket, now: datetime) -> Ticket:
    calendar = app.calendar
    receipt_day = calendar.receipt_day(new.received_at)
    # The year of arrival in office time, even when the receipt day rolls into January.
    year = calendar.office_date(new.received_at).year
    ref = allocate_ref(session, app.settings.organisation.ticket_prefix, year)
    ticket = Ticket(
        ref=ref,
        mailbox=new.mailbox,
        category=new.category,
        status="open",
        requester=new.requester,
        requester_name=new.requester_name,
        language=new.language,
        subject=new.subject,
        received_at=new.received_at,
        receipt_date=receipt_day,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    for commitment_id in commitments_for(app.settings, new.category):
        commitment = app.settings.commitment(commitment_id)
        if commitment.starts_at != "receipt":
            continue  # started later by a date staff give (interview, committee)
        deadline = calendar.deadline(new.received_at, commitment.business_days)
        session.add(
            TicketDeadline(
                ticket_id=ticket.id,
                commitment=commitment.id,
                clock_start=deadline.receipt_day,
                due_date=deadline.due_date,
                due_at=deadline.due_at,
            )
        )
        if commitment.kind == "reply":
            ticket.due_date = deadline.due_date
    session.add(ticket)
    return ticket


def _acks_today(session: Session, recipient: str, since: datetime) -> int:
    return int(
        session.exec(
            select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.recipient == recipient)
            .where(OutboxMessage.purpose == "acknowledgement")
            .where(col(OutboxMessage.created_at) >= since)
        ).one()
    )


def _automatic_mail_blocked(
    app: App, session: Session, recipient: str, now: datetime
) -> str | None:
    """Why no automatic answer may go to `recipient` now, or None."""
    state = session.get(AddressState, recipient)
    if state is not None and state.undeliverable:
        return f"address undeliverable ({state.reason})"
    rules = app.settings.classification
    yesterday = app.calendar.office_date(now) - timedelta(days=1)
    office_midnight = app.calendar.end_of_day(yesterday)
    if _acks_today(session, recipient, office_midnight) >= rules.per_address_daily_limit:
        return f"per-address limit of {rules.per_address_daily_limit} automatic answers a day"
    window = now - timedelta(minutes=rules.burst_window_minutes)
    recent = int(
        session.exec(
            select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.purpose == "acknowledgement")
            .where(col(OutboxMessage.created_at) >= window)
        ).one()
    )
    if recent >= rules.burst_limit:
        return f"global brake: {recent} automatic answers in {rules.burst_window_minutes} minutes"
    return None


def queue_acknowledgement(
    app: App,
    session: Session,
    mailbox: MailboxSettings,
    ticket: Ticket,
    mail: InboundMail,
    row: InboundMessage,
    now: datetime,
) -> None:
    """Write the acknowledgement's outbox row in the ticket's transaction (or say why not)."""
    blocked = _automatic_mail_blocked(app, session, ticket.requester, now)
    if blocked is not None:
        _event(session, ticket, now, "acknowledgement_withheld", row, blocked)
        log.warning("ticket %s: acknowledgement withheld: %s", ticket.ref, blocked)
        return
    settings = app.settings
    english = settings.language.english_policy == "detected_english" and ticket.language == "en"
    rendered = app.renderer.render(
        "acknowledgement",
        {
            "ticket": ticket,
            "org": settings.organisation,
            "mailbox": mailbox,
            "is_complaint": ticket.category == "complaint",
            "english": english or ticket.english_allowed,
        },
    )
    message_id = tokens.make_message_id(
        app.signing_key, ticket.ref, tokens.new_nonce(), settings.organisation.message_id_domain
    )
    references = tuple(item for item in (*mail.references, mail.message_id) if item)
    envelope = Envelope(
        from_address=mailbox.address,
        from_name=mailbox.display_name,
        to_address=ticket.requester,
        to_name=ticket.requester_name,
        message_id=message_id,
        date=now,
        in_reply_to=mail.message_id,
        references=references,
    )
    message = compose(
        envelope,
        rendered,
        auto_submitted="auto-replied",
        loop_token=settings.organisation.message_id_domain,
    )
    outbox = OutboxMessage(
        ticket_id=ticket.id,
        purpose="acknowledgement",
        dedupe_key=f"ack:{ticket.ref}",
        message_id=message_id,
        envelope_from=settings.smtp.bounce_address,
        recipient=ticket.requester,
        raw=message.as_bytes(),
        state="pending",
        next_attempt_at=now,
        created_at=now,
    )
    session.add(outbox)
    session.flush()
    assert ticket.id is not None
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            at=now,
            kind="acknowledgement_queued",
            inbound_id=row.id,
            outbox_id=outbox.id,
            detail=message_id,
        )
    )


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
