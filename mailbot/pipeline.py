"""One fetched message -> stored, classified, decided and applied, in one transaction.

The raw bytes, the classification, the ticket change, the outgoing mail rows and the IMAP key
are written together; the caller moves the message on the server only after the commit. A
message that raises anywhere in here is stored raw and quarantined with the reason, and
never blocks the messages behind it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot import records, tokens, workflow
from mailbot.business_calendar import BusinessCalendar
from mailbot.classify import ClassifyContext, Kind, TicketFacts, Verdict, candidate_refs, classify
from mailbot.ingest import FetchedMessage
from mailbot.logformat import log_fields
from mailbot.parse import InboundMail, parse_message, request_fingerprint
from mailbot.render import Envelope, Renderer, compose
from mailbot.settings import MailboxSettings, Settings
from mailbot.tickets import Decision, Outcome, decide

log = logging.getLogger(__name__)

# A message over the size cap: a ticket from its headers; the whole message stays on the
# server, in the quarantine folder, where staff open it (the notice says so).
OVERSIZED = "oversized"

STATE_OF_OUTCOME: Mapping[Outcome, str] = {
    Outcome.OPENED: "processed",
    Outcome.ATTACHED: "processed",
    Outcome.SET_ASIDE: "set_aside",
    Outcome.HELD: "held",
}


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What processing a message needs; built once per pass."""

    settings: Settings
    calendar: BusinessCalendar
    renderer: Renderer
    signing_key: bytes
    staff_addresses: frozenset[str]
    staff_domains: frozenset[str]
    own_addresses: frozenset[str]
    categories: frozenset[str]
    complaint_addresses: frozenset[str]
    workflow: workflow.Context

    @classmethod
    def build(
        cls, settings: Settings, calendar: BusinessCalendar, renderer: Renderer, signing_key: bytes
    ) -> Pipeline:
        staff = {a.lower() for m in settings.mailboxes for a in (*m.staff, *m.supervisors)}
        complaints = {m.address.lower() for m in settings.mailboxes if m.category == "complaint"}
        return cls(
            settings=settings,
            calendar=calendar,
            renderer=renderer,
            signing_key=signing_key,
            staff_addresses=frozenset(staff),
            staff_domains=frozenset(d.lower() for d in settings.organisation.staff_domains),
            own_addresses=frozenset(m.address.lower() for m in settings.mailboxes),
            categories=frozenset(m.category for m in settings.mailboxes),
            complaint_addresses=frozenset(complaints),
            workflow=workflow.Context(
                settings=settings, renderer=renderer, signing_key=signing_key, calendar=calendar
            ),
        )

    def context(
        self,
        mailbox: MailboxSettings,
        tickets: Mapping[str, TicketFacts],
        known_message_ids: Mapping[str, str],
    ) -> ClassifyContext:
        settings = self.settings
        return ClassifyContext(
            mailbox=mailbox,
            rules=settings.classification,
            own_addresses=self.own_addresses,
            message_id_domain=settings.organisation.message_id_domain,
            staff_addresses=self.staff_addresses,
            staff_domains=self.staff_domains,
            signing_key=self.signing_key,
            tickets=tickets,
            known_message_ids=known_message_ids,
            available_categories=self.categories,
            complaint_addresses=self.complaint_addresses,
        )


@dataclass(frozen=True, slots=True)
class Processed:
    """What became of one message: its stored state and a label for the pass report."""

    state: str
    label: str
    flags: tuple[str, ...] = ()

    @property
    def goes_to_quarantine(self) -> bool:
        return goes_to_quarantine(self.state, self.flags)


def goes_to_quarantine(state: str, flags: Sequence[str]) -> bool:
    """Which folder a stored message moves to on the server: the quarantine folder for a
    message that could not be processed, and for one over the size cap (mailbot read only its
    headers; staff open it whole there); the processed folder otherwise."""
    return state == "quarantined" or OVERSIZED in flags


def process_fetched(
    connection: Connection,
    pipeline: Pipeline,
    mailbox: MailboxSettings,
    uidvalidity: int,
    fetched: FetchedMessage,
    now: datetime,
) -> Processed:
    """Store and process one message on `connection` (the caller's transaction)."""
    existing = records.stored_state(connection, mailbox.name, uidvalidity, fetched.uid)
    if existing is not None:  # another instance got here first
        return Processed(existing, "already_stored")
    base: dict[str, object] = {
        "mailbox": mailbox.name,
        "folder": mailbox.folder,
        "uidvalidity": uidvalidity,
        "uid": fetched.uid,
        "sha256": hashlib.sha256(fetched.raw).hexdigest(),
        "size": fetched.size,
        "raw": fetched.raw,
        "internal_date": fetched.internal_date,
        "stored_at": now,
        "message_id": "",
        "fingerprint": "",
        "kind": "",
        "rules": "",
        "flags": "",
    }
    try:
        with connection.begin_nested():
            return _process(connection, pipeline, mailbox, base, fetched, now)
    except Exception as exc:  # a poison message must never block the ones behind it
        log.exception(
            "inbound message quarantined", extra=log_fields(mailbox=mailbox.name, uid=fetched.uid)
        )
        records.insert_inbound(
            connection,
            {
                **base,
                "state": "quarantined",
                "reason": f"{type(exc).__name__}: {exc}"[:2000],
            },
        )
        return Processed("quarantined", "quarantined")


def _process(
    connection: Connection,
    pipeline: Pipeline,
    mailbox: MailboxSettings,
    base: dict[str, object],
    fetched: FetchedMessage,
    now: datetime,
) -> Processed:
    mail = parse_message(fetched.raw)
    base["message_id"] = mail.message_id[:1000]
    base["fingerprint"] = request_fingerprint(mail, fetched.raw)
    duplicate = records.duplicate_of(connection, str(base["fingerprint"]), str(base["sha256"]))
    if duplicate is not None:
        return _record_duplicate(
            connection, pipeline, mailbox, base, duplicate, mail, fetched.raw, now
        )
    verdict = _classify(connection, pipeline, mailbox, mail)
    ticket = records.ticket_by_ref(connection, verdict.ticket_ref) if verdict.ticket_ref else None
    decision = decide(
        mail,
        verdict,
        mailbox=mailbox.name,
        default_category=mailbox.category,
        received_at=fetched.internal_date,
        ticket_status=ticket.status if ticket else None,
    )
    if fetched.truncated:
        decision = replace(
            decision,
            flags=(*decision.flags, OVERSIZED),
            reason=f"{decision.reason}; over the size cap ({fetched.size} bytes): headers "
            "only; the whole message is kept in the quarantine folder",
        )
    if decision.open_ticket is not None:
        ticket = records.insert_ticket(
            connection, pipeline.settings, pipeline.calendar, decision.open_ticket, now
        )
    state = STATE_OF_OUTCOME[decision.outcome]
    inbound_id = records.insert_inbound(
        connection,
        {
            **base,
            "state": state,
            "kind": verdict.kind.value,
            "rules": ",".join(verdict.rules)[:2000],
            "flags": ",".join(decision.flags),
            "reason": decision.reason[:2000],
            "ticket_id": ticket.id if ticket else None,
        },
    )
    if verdict.kind is Kind.BOUNCE:
        _record_bounce(connection, mail, ticket, inbound_id, now)
    elif verdict.kind in (Kind.NEW_REQUEST, Kind.FOLLOW_UP) and mail.from_address is not None:
        # A person who writes again is reachable again (a bounce may have been transient).
        records.clear_undeliverable(connection, mail.from_address.address)
    staff = None
    if verdict.kind is Kind.STAFF_REPLY:
        staff = workflow.handle_staff_message(
            connection, pipeline.workflow, mailbox, ticket, mail, fetched.raw, inbound_id, now
        )
    elif decision.outcome is Outcome.HELD:
        workflow.hold_for_review(
            connection, pipeline.workflow, mailbox, ticket, mail, inbound_id, [decision.reason], now
        )
    elif ticket is not None:
        _apply(
            connection, pipeline, mailbox, ticket, inbound_id, mail, fetched, verdict, decision, now
        )
    if staff is not None and (staff.state, staff.reason) != (state, decision.reason):
        state = staff.state
        records.update_inbound(
            connection,
            inbound_id,
            state=state,
            reason=staff.reason[:2000],
            flags=",".join((*decision.flags, *staff.flags)),
        )
    log.info(
        "inbound %s (%s)",
        verdict.kind.value,
        decision.outcome.value,
        extra=log_fields(mailbox=mailbox.name, uid=fetched.uid, ref=ticket.ref if ticket else None),
    )
    label = verdict.kind.value if state == "processed" else state
    return Processed(state, label, decision.flags)


def _classify(
    connection: Connection, pipeline: Pipeline, mailbox: MailboxSettings, mail: InboundMail
) -> Verdict:
    refs = candidate_refs(mail, pipeline.signing_key, pipeline.settings.organisation.ticket_prefix)
    known = records.tickets_of_message_ids(connection, mail.thread_ids)
    rows = records.tickets_by_ref(connection, set(refs) | set(known.values()))
    facts = {
        ref: TicketFacts(ref=t.ref, requester=t.requester, status=t.status)
        for ref, t in rows.items()
    }
    return classify(mail, pipeline.context(mailbox, facts, known))


def _record_bounce(
    connection: Connection,
    mail: InboundMail,
    ticket: records.TicketRow | None,
    inbound_id: int,
    now: datetime,
) -> None:
    """A permanent failure stops automatic mail to an address only when the report names a
    message we really sent to that address (its Message-ID is an outbox row's, and the failed
    recipient is that row's): anyone can mail a report naming any address."""
    report = mail.delivery_report
    if report is None or not report.is_permanent_failure:
        return
    sent = records.outbox_row_by_message_id(connection, report.original_message_id)
    failed = report.final_recipient.lower()
    if sent is None or (failed and failed != sent.recipient.lower()):
        records.update_inbound(
            connection,
            inbound_id,
            reason="delivery report that matches no message we sent to that address: ignored",
        )
        return
    records.mark_undeliverable(
        connection, sent.recipient, f"permanent failure {report.status or report.action}", now
    )
    if sent.ticket_id is not None:
        records.add_event(
            connection,
            sent.ticket_id,
            now,
            "address_undeliverable",
            f"permanent failure {report.status or report.action} for outbox #{sent.id}",
            inbound_id=inbound_id,
            outbox_id=sent.id,
        )


def _record_duplicate(
    connection: Connection,
    pipeline: Pipeline,
    mailbox: MailboxSettings,
    base: dict[str, object],
    duplicate: records.Duplicate,
    mail: InboundMail,
    raw: bytes,
    now: datetime,
) -> Processed:
    """The same request again (an MTA redelivery, or one message sent to several of our
    mailboxes): one ticket, one acknowledgement. A copy that reached a complaint mailbox
    makes its ticket a complaint: a complaint stays a complaint."""
    where = f" to {mailbox.name}" if mailbox.name != duplicate.mailbox else ""
    inbound_id = records.insert_inbound(
        connection,
        {
            **base,
            "state": "set_aside",
            "kind": "duplicate",
            "reason": f"same message as inbound #{duplicate.inbound_id} (delivered again{where})",
            "ticket_id": duplicate.ticket_id,
        },
    )
    if duplicate.ticket_id is not None and mailbox.category == "complaint":
        ticket = records.ticket_by_id(connection, duplicate.ticket_id)
        if ticket is not None and ticket.category != "complaint":
            workflow.reclassify(
                connection,
                pipeline.workflow,
                ticket,
                "complaint",
                actor="mailbot",
                inbound_id=inbound_id,
                now=now,
                reason=f"the same message reached the {mailbox.name} mailbox",
            )
            current = records.ticket_by_id(connection, duplicate.ticket_id) or ticket
            workflow.notify_new_ticket(
                connection,
                pipeline.workflow,
                current,
                mail,
                raw,
                inbound_id,
                now,
                reason="complaint_copy",
            )
    return Processed("set_aside", "duplicate")


def _apply(
    connection: Connection,
    pipeline: Pipeline,
    mailbox: MailboxSettings,
    ticket: records.TicketRow,
    inbound_id: int,
    mail: InboundMail,
    fetched: FetchedMessage,
    verdict: Verdict,
    decision: Decision,
    now: datetime,
) -> None:
    """What a citizen's or a machine's message does to its ticket."""
    detail = f"{verdict.kind.value}; rules: {', '.join(verdict.rules) or '-'}; {decision.reason}"
    sender = mail.from_address.address if mail.from_address else "unknown"
    if decision.open_ticket is not None:
        records.add_event(
            connection, ticket.id, now, "opened", detail, actor=sender, inbound_id=inbound_id
        )
        if decision.acknowledge:
            queue_acknowledgement(connection, pipeline, mailbox, ticket, mail, inbound_id, now)
        else:
            records.add_event(
                connection,
                ticket.id,
                now,
                "acknowledgement_withheld",
                "automatic message: no automatic answer",
                inbound_id=inbound_id,
            )
        workflow.notify_new_ticket(
            connection,
            pipeline.workflow,
            ticket,
            mail,
            fetched.raw,
            inbound_id,
            now,
            reason=OVERSIZED if OVERSIZED in decision.flags else "",
        )
        return
    kind = "message_attached" if decision.outcome is Outcome.ATTACHED else "message_set_aside"
    records.add_event(connection, ticket.id, now, kind, detail, actor=sender, inbound_id=inbound_id)
    if verdict.kind is Kind.FOLLOW_UP:
        workflow.handle_follow_up(
            connection,
            pipeline.workflow,
            ticket,
            mail,
            fetched.raw,
            inbound_id,
            fetched.internal_date,
            now,
        )


def automatic_mail_blocked(
    connection: Connection,
    settings: Settings,
    calendar: BusinessCalendar,
    recipient: str,
    now: datetime,
) -> str | None:
    """Why no automatic answer may go to `recipient` now, or None.

    The per-address cap stops loops with one correspondent; a flood from many addresses is
    not refused here but paced by the sender (mailbot/pacing.py): it never drops anyone.
    """
    undeliverable = records.undeliverable_reason(connection, recipient)
    if undeliverable is not None:
        return f"address undeliverable ({undeliverable})"
    rules = settings.classification
    today = records.start_of_office_day(calendar, now)
    if (
        records.automatic_answers_since(connection, today, recipient)
        >= rules.per_address_daily_limit
    ):
        return f"per-address limit of {rules.per_address_daily_limit} automatic answers a day"
    return None


def queue_acknowledgement(
    connection: Connection,
    pipeline: Pipeline,
    mailbox: MailboxSettings,
    ticket: records.TicketRow,
    mail: InboundMail,
    inbound_id: int,
    now: datetime,
) -> None:
    """Write the acknowledgement's outbox row in the ticket's transaction (or say why not)."""
    settings = pipeline.settings
    blocked = automatic_mail_blocked(connection, settings, pipeline.calendar, ticket.requester, now)
    if blocked is not None:
        records.add_event(
            connection, ticket.id, now, "acknowledgement_withheld", blocked, inbound_id=inbound_id
        )
        log.warning(
            "acknowledgement withheld: %s",
            blocked,
            extra=log_fields(mailbox=mailbox.name, ref=ticket.ref, inbound=inbound_id),
        )
        return
    english = settings.language.english_policy == "detected_english" and ticket.language == "en"
    rendered = pipeline.renderer.render(
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
        pipeline.signing_key,
        ticket.ref,
        tokens.new_nonce(),
        settings.organisation.message_id_domain,
    )
    envelope = Envelope(
        from_address=mailbox.address,
        from_name=mailbox.display_name,
        to_address=ticket.requester,
        to_name=ticket.requester_name,
        message_id=message_id,
        date=now,
        in_reply_to=mail.message_id,
        references=tuple(item for item in (*mail.references, mail.message_id) if item),
    )
    message = compose(
        envelope,
        rendered,
        auto_submitted="auto-replied",
        loop_token=settings.organisation.message_id_domain,
    )
    outbox_id = records.queue_message(
        connection,
        ticket_id=ticket.id,
        purpose="acknowledgement",
        dedupe_key=f"ack:{ticket.ref}",
        message_id=message_id,
        envelope_from=settings.smtp.bounce_address,
        recipient=ticket.requester,
        raw=message.as_bytes(),
        now=now,
    )
    records.add_event(
        connection,
        ticket.id,
        now,
        "acknowledgement_queued",
        message_id,
        inbound_id=inbound_id,
        outbox_id=outbox_id,
    )
