"""One fetched message -> stored, classified, decided and applied, on the caller's connection.

The raw bytes, the classification, the ticket change, the outgoing mail rows and the IMAP key
are written in the caller's transaction (one per batch, with a savepoint per message); the
caller moves the message on the server only after the commit. A message that raises anywhere
in here is stored raw and quarantined with the reason (its savepoint undoes the rest), and
never blocks the messages behind it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mailbot.app import App
from mailbot.db import graph_rows, handoff, inbound_rows, ticket_rows
from mailbot.db.inbound_rows import Duplicate
from mailbot.db.ticket_rows import TicketRow
from mailbot.intake.classify import classify
from mailbot.intake.decide import NOTE_FLAG, Decision, Disposition, decide
from mailbot.intake.thread_links import candidate_refs
from mailbot.intake.verdicts import ClassifyContext, Kind, TicketFacts, Verdict
from mailbot.logformat import log_fields
from mailbot.mail.parse import InboundMail, parse_message, request_fingerprint
from mailbot.settings import MailboxSettings, Settings
from mailbot.staff import replies, which_ticket
from mailbot.standards import authority
from mailbot.states import MessageState
from mailbot.tickets import acknowledge, bounces, clocks, failures, follow_up, notices, reclassify
from mailbot.tickets.facts import OVERSIZED, Arrival
from mailbot.transport.base import FetchedMessage

log = logging.getLogger(__name__)

STATE_OF_DISPOSITION: Mapping[Disposition, MessageState] = {
    Disposition.OPENED: MessageState.PROCESSED,
    Disposition.ATTACHED: MessageState.PROCESSED,
    Disposition.SET_ASIDE: MessageState.SET_ASIDE,
    Disposition.HELD: MessageState.HELD,
}


@dataclass(frozen=True, slots=True)
class Processed:
    """What became of one message: its stored state, a label for the pass report, flags."""

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
    return state == MessageState.QUARANTINED or OVERSIZED in flags


def process_fetched(
    connection: Connection,
    app: App,
    mailbox: MailboxSettings,
    uidvalidity: int,
    fetched: FetchedMessage,
    now: datetime,
    *,
    known_new: bool = False,
    mail: InboundMail | None = None,
) -> Processed:
    """Store and process one message on `connection` (the caller's transaction);
    `known_new`: the caller checked, in this transaction, that it is not stored yet; `mail`:
    its parse, when done ahead (mailbot/transport/parse_ahead.py)."""
    if not known_new:
        existing = inbound_rows.stored_state(connection, mailbox.name, uidvalidity, fetched.uid)
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
            return _process(connection, app, mailbox, base, fetched, now, mail)
    except IntegrityError:
        # Another instance stored it meanwhile (its transaction committed first).
        existing = inbound_rows.stored_state(connection, mailbox.name, uidvalidity, fetched.uid)
        if existing is None:
            raise
        return Processed(existing, "already_stored")
    except Exception as exc:  # a poison message must never block the ones behind it
        log.exception(
            "inbound message quarantined", extra=log_fields(mailbox=mailbox.name, uid=fetched.uid)
        )
        state = MessageState.QUARANTINED
        inbound_rows.insert_inbound(
            connection,
            {**base, "state": state.value, "reason": f"{type(exc).__name__}: {exc}"[:2000]},
        )
        return Processed(state, state.value)


def _process(
    connection: Connection,
    app: App,
    mailbox: MailboxSettings,
    base: dict[str, object],
    fetched: FetchedMessage,
    now: datetime,
    parsed: InboundMail | None,
) -> Processed:
    """The flow of one new message, inside its savepoint: parse, classify, decide, apply.

    1. Parse the bytes (unless `parsed` was done ahead) and fingerprint the request; the same
       request delivered twice (two mailboxes, an MTA's redelivery) is stored as a duplicate
       of the first and goes no further (`_duplicate`).
    2. Classify (`classify.classify`, the rule table; the database is read only to look up
       the tickets the message names) and find the ticket the verdict names.
    3. Decide (`tickets.decide`, pure) what the message does: open a ticket, attach to one,
       hold for review or set aside; a truncated message is flagged. A new ticket is opened
       with its deadlines (`clocks.open_ticket`).
    4. Store the inbound row with the verdict's kind, rules, flags and reason, and its state
       (a staff message's state waits for the staff work).
    5. Apply: a staff reply goes to `replies.handle` (authenticate, commands, relay),
       whose outcome is then recorded; a held message is put before staff
       (`notices.hold_for_review`); any other message with a ticket is applied to it
       (`_apply`: a new ticket is acknowledged and its queue told; a follow-up ends a hold,
       reopens when decided, and is forwarded to staff). A bounce is recorded against the
       message it answers.

    Returns the stored state, a label for the pass report and the flags. Any exception undoes
    all of it (the caller's savepoint) and quarantines the raw message.
    """
    mail = parsed or parse_message(fetched.raw)
    base["message_id"] = mail.message_id[:1000]
    base["fingerprint"] = request_fingerprint(mail, fetched.raw)
    duplicate = inbound_rows.duplicate_of(connection, str(base["fingerprint"]), str(base["sha256"]))
    if duplicate is not None:
        return _duplicate(connection, app, mailbox, base, duplicate, mail, fetched, now)
    mail = _with_our_message_ids(connection, mail)
    verdict = _classify(connection, app.settings, app.signing_key, mailbox, mail)
    ticket = (
        ticket_rows.ticket_by_ref(connection, verdict.ticket_ref) if verdict.ticket_ref else None
    )
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
        ticket = clocks.open_ticket(connection, app, decision.open_ticket, now)
    is_staff = verdict.kind is Kind.STAFF_REPLY
    bounce = bounces.match_bounce(connection, mail) if verdict.kind is Kind.BOUNCE else None
    reason = decision.reason
    if bounce is not None and bounce.sent is None:
        reason = f"{reason}; {bounces.Bounce.IGNORED}"
    # A staff message's outcome is decided by the staff work below, written once then.
    state = MessageState.RECEIVED if is_staff else STATE_OF_DISPOSITION[decision.disposition]
    inbound_id = inbound_rows.insert_inbound(
        connection,
        {
            **base,
            "state": state.value,
            "kind": verdict.kind.value,
            "rules": ",".join(verdict.rules)[:2000],
            "flags": ",".join(decision.flags),
            "reason": reason[:2000],
            "ticket_id": ticket.id if ticket else None,
        },
    )
    if verdict.kind in (Kind.NEW_REQUEST, Kind.FOLLOW_UP) and mail.from_address is not None:
        bounces.mark_reachable(connection, mail.from_address.address)
    arrival = Arrival(mailbox, mail, fetched.raw, inbound_id, fetched.internal_date)
    flags = decision.flags
    if is_staff:
        as_note = NOTE_FLAG in decision.flags
        staff = (
            which_ticket.ask(connection, app, ticket, arrival, verdict.named_tickets, now)
            if "several_tickets" in verdict.rules
            else replies.handle(connection, app, ticket, arrival, now, as_note=as_note)
        )
        state, flags = staff.state, (*decision.flags, *staff.flags)
        inbound_rows.record_outcome(
            connection, inbound_id, state=state, reason=staff.reason, flags=",".join(flags)
        )
    elif decision.disposition is Disposition.HELD:
        notices.hold_for_review(connection, app, ticket, arrival, [decision.reason], now)
    elif ticket is not None:
        _apply(connection, app, ticket, arrival, verdict, decision, now)
    if bounce is not None:
        bounces.record_bounce(connection, bounce, inbound_id, now)
        if bounce.sent is not None:
            failures.report_bounce(connection, app, bounce.sent, bounce.status, now)
    log.info(
        "inbound %s (%s)",
        verdict.kind.value,
        decision.disposition.value,
        extra=log_fields(mailbox=mailbox.name, uid=fetched.uid, ref=ticket.ref if ticket else None),
    )
    label = verdict.kind.value if state == MessageState.PROCESSED else state.value
    return Processed(state, label, flags)


_STATIC: dict[int, tuple[Settings, tuple[frozenset[str], ...]]] = {}


def _static_context(settings: Settings) -> tuple[frozenset[str], ...]:
    """The address sets classification needs, computed once per configuration object (found
    by identity: hashing the whole frozen configuration costs more than the sets)."""
    cached = _STATIC.get(id(settings))
    if cached is None or cached[0] is not settings:
        if len(_STATIC) >= 8:
            _STATIC.clear()
        cached = _STATIC[id(settings)] = (
            settings,
            (
                settings.own_addresses,
                settings.staff_addresses,
                frozenset(d.lower() for d in settings.organisation.staff_domains),
                frozenset(m.category for m in settings.mailboxes),
                frozenset(
                    m.address.lower() for m in settings.mailboxes if m.category == "complaint"
                ),
                settings.notes_addresses,
            ),
        )
    return cached[1]


def _with_our_message_ids(connection: Connection, mail: InboundMail) -> InboundMail:
    """A reply citing the Message-ID Exchange gave one of ours (Graph may not keep ours)
    cites ours too, with its signed token: it threads as a reply to ours."""
    ours = graph_rows.our_message_ids(connection, mail.thread_ids)
    if not ours:
        return mail
    return replace(mail, references=(*mail.references, *ours))


def _classify(
    connection: Connection,
    settings: Settings,
    signing_key: bytes,
    mailbox: MailboxSettings,
    mail: InboundMail,
) -> Verdict:
    refs = candidate_refs(mail, signing_key, settings.organisation.ticket_prefix)
    known = ticket_rows.tickets_of_message_ids(connection, mail.thread_ids)
    # A merged ticket's reference stands for the ticket kept (mailbot/tickets/merge.py).
    rows = handoff.follow_merges(
        connection, ticket_rows.tickets_by_ref(connection, set(refs) | set(known.values()))
    )
    own, staff, domains, categories, complaints, notes = _static_context(settings)
    context = ClassifyContext(
        mailbox=mailbox,
        rules=settings.classification,
        own_addresses=own,
        message_id_domain=settings.organisation.message_id_domain,
        staff_addresses=staff,
        staff_domains=domains,
        signing_key=signing_key,
        tickets={
            found: TicketFacts(
                ref=t.ref, requester=t.requester, status=t.status, workers=_workers(settings, t)
            )
            for ref, t in rows.items()
            for found in (ref, t.ref)  # a merged reference, and the ticket kept
        },
        known_message_ids=known,
        available_categories=categories,
        complaint_addresses=complaints,
        notes_addresses=notes,
    )
    return classify(mail, context)


def _workers(settings: Settings, ticket: TicketRow) -> frozenset[str]:
    """The staff and supervisors of the ticket's current queue (none when it is no longer
    configured)."""
    try:
        queue = authority.queue_of(settings, ticket)
    except KeyError:
        return frozenset()
    return queue.workers


def _duplicate(
    connection: Connection,
    app: App,
    mailbox: MailboxSettings,
    base: dict[str, object],
    duplicate: Duplicate,
    mail: InboundMail,
    fetched: FetchedMessage,
    now: datetime,
) -> Processed:
    """The same request again (an MTA redelivery, or one message sent to several of our
    mailboxes): one ticket, one acknowledgement."""
    where = f" to {mailbox.name}" if mailbox.name != duplicate.mailbox else ""
    state = MessageState.SET_ASIDE
    inbound_id = inbound_rows.insert_inbound(
        connection,
        {
            **base,
            "state": state.value,
            "kind": "duplicate",
            "reason": f"same message as inbound #{duplicate.inbound_id} (delivered again{where})",
            "ticket_id": duplicate.ticket_id,
        },
    )
    arrival = Arrival(mailbox, mail, fetched.raw, inbound_id, fetched.internal_date)
    reclassify.copy_reached_complaints(connection, app, duplicate, arrival, now)
    return Processed(state, "duplicate")


def _apply(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
    verdict: Verdict,
    decision: Decision,
    now: datetime,
) -> None:
    """What a citizen's or a machine's message does to its ticket."""
    detail = f"{verdict.kind.value}; rules: {', '.join(verdict.rules) or '-'}; {decision.reason}"
    actor, inbound_id = arrival.sender or "unknown", arrival.inbound_id
    if decision.open_ticket is not None:
        ticket_rows.add_event(
            connection, ticket.id, now, "opened", detail, actor=actor, inbound_id=inbound_id
        )
        acknowledge.acknowledge(
            connection, app, ticket, arrival, now, automatic=not decision.acknowledge
        )
        reason = OVERSIZED if OVERSIZED in decision.flags else ""
        notices.notify_new_ticket(connection, app, ticket, arrival, now, reason=reason)
        return
    kind = (
        "message_attached" if decision.disposition is Disposition.ATTACHED else "message_set_aside"
    )
    ticket_rows.add_event(
        connection, ticket.id, now, kind, detail, actor=actor, inbound_id=inbound_id
    )
    if verdict.kind is Kind.FOLLOW_UP:
        follow_up.follow_up(connection, app, ticket, arrival, now, reopen=decision.reopen)
