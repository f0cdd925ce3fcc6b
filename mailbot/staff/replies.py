"""Staff work from their mail client: a staff reply is authenticated, cut, its commands
applied in order and its text relayed to the citizen, all or nothing.

A staff message reaches a citizen only when all of these hold: the sender's strictly parsed
address is staff, the ministry's receiving server vouches for it (one Authentication-Results
verdict with its server id and no failure in it, or the Exchange Online tenant's own
headers), and it answers one of our messages carrying the ticket's signed token (the
classifier's verdict names the ticket only then). Anything short of that is held, the queue's
staff are told, and nothing is relayed. Then the sender must work on the ticket's queue at
that moment (`authority.may_act_on`), for the message as a whole and again for each command
and for the relay after the commands before it: whatever that rule refuses changes nothing,
is answered to the sender with the reason and is held for the queue's supervisors. Everything
runs on the caller's connection, in the inbound message's transaction.

A reply sent as the queue's own address is read as the person its `Sender:` names, or held
(mailbot/staff/send_as.py). A reply that would close, refer, merge or relay past its
author's hourly limit is held whole (mailbot/staff/limits.py). Every refusal is written in
the access trail (mailbot/staff/trail.py).

What reaches the citizen: the reply's text, with each `#réponse type : NOM` line replaced by
that canned answer rendered for the ticket (mailbot/staff/answers.py); after `#fusionner` or
`#référer` nothing is relayed, the merge's or the referral's own notice carries the text
(mailbot/staff/merge.py, mailbot/staff/referral.py). A reply whose text opens with what looks
like a command left unmarked (`Fermer`, `Note interne`: mailbot/staff/unmarked_commands.py) is
held, neither applied nor sent, until its sender confirms it. Mail sent to the queue's notes
address is an internal note, whatever its text: recorded on the ticket, never relayed, and
never an answer (`record_note`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, inbound_rows, outbox_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.intake import citizens
from mailbot.mail import canned as answers
from mailbot.mail.parse import InboundMail, parse_message
from mailbot.mail.quotes import extract_new_text
from mailbot.mail.render import INTERNAL_MARKER
from mailbot.sending import outgoing
from mailbot.staff import apply_commands, limits, send_as, trail
from mailbot.staff.authresults import check_authentication
from mailbot.staff.command_table import Command, CommandName
from mailbot.staff.exchange import check_exchange_origin
from mailbot.staff.parse_commands import StaffMessage, parse_commands
from mailbot.standards import authority, completeness
from mailbot.states import MessageState

log = logging.getLogger(__name__)

CONFIRM_WORDS = frozenset({"confirmer", "confirm", "#confirmer", "#confirm"})
UNCERTAIN_CUT = "uncertain_cut"
UNMARKED_COMMAND = "unmarked_command"


@dataclass(frozen=True, slots=True)
class StaffOutcome:
    """What became of the staff message: its stored state, reason and flags."""

    state: MessageState
    reason: str
    flags: tuple[str, ...] = ()


class _NeedsConfirmation(Exception):
    """The commands are valid but the cut is doubtful: nothing applies until `confirmer`."""


def authenticate(app: App, mail: InboundMail, ticket: TicketRow | None) -> list[str]:
    """Every reason this message may not act on a ticket as staff (empty: it may)."""
    if mail.sender is None:
        return ["the sender address does not parse strictly"]
    if mail.from_address is None or mail.from_address.address != mail.sender.address:
        return ["the From header names more than one address"]
    reasons = []
    if ticket is None:
        reasons.append("no signed link to a ticket (not a reply to one of our messages)")
    organisation = app.settings.organisation
    verdict = (
        check_exchange_origin(mail.headers, organisation.tenant_id)
        if organisation.staff_authentication == "exchange_online"
        else check_authentication(mail.headers, mail.sender.domain, organisation.authserv_id)
    )
    if not verdict.passed:
        reasons.extend(f"authentication: {reason}" for reason in verdict.reasons)
    return reasons


def handle(
    connection: Connection,
    app: App,
    ticket: TicketRow | None,
    arrival: citizens.Arrival,
    now: datetime,
    *,
    as_note: bool = False,
) -> StaffOutcome:
    """What a message from staff does to `ticket` (the one its signed token names, if any).

    1. Authenticate (`authenticate`): a strict staff address, our receiving server's verdict
       (or Exchange Online's stamps) and a ticket. Short of that, the message is held for
       review, the queue's staff are told, and nothing is applied or relayed.
    2. Cut the quoted history (`quotes.extract_new_text`): what staff wrote above it.
    3. Mail sent to the notes address (`as_note`, the classifier's verdict) is recorded as
       an internal note and stops there (`record_note`): no command, no relay.
    4. A first line "confirmer" / "confirm" releases a reply held for an uncertain cut or
       for a line that looked like an unmarked command (`_confirm_held_reply`).
    5. Otherwise parse the command lines (`staff.parse_commands`); an unreadable one answers
       the sender with the line and why, and applies nothing (`_reject`); a line that looks
       like a command left unmarked holds the reply and asks the sender (`_hold_unmarked`).
    6. Apply the commands in order, then relay the text to the citizen, all or nothing
       (`_act`, in a savepoint; `apply_commands.apply_in_order`, `outgoing.relay`).

    Returns the inbound message's state and reason, written by the caller.
    """
    mail, reasons = send_as.judged(app.settings, arrival.mail, arrival.raw)
    arrival = replace(arrival, mail=mail)  # sent as the queue: read as the person it names
    raw, inbound_id = arrival.raw, arrival.inbound_id
    reasons = reasons or tuple(authenticate(app, mail, ticket))
    if reasons or ticket is None or mail.sender is None:
        citizens.hold_for_review(connection, app, ticket, arrival, reasons, now)
        if ticket is not None:
            trail.record(connection, now, arrival.sender or "", ticket.ref, "message", "held")
        return StaffOutcome(MessageState.HELD, "staff message held: " + "; ".join(reasons))
    sender = mail.sender.address
    refusal = apply_commands.authority_refusal(app, ticket, sender, "")
    if refusal is not None:
        return refuse_authority(connection, app, ticket, arrival, refusal, now)
    extracted = extract_new_text(mail.text, internal_markers=(INTERNAL_MARKER,))
    if as_note:
        return record_note(connection, ticket, sender, extracted.text, inbound_id, now)
    first_line = next(iter(extracted.text.strip().splitlines()), "").strip().lower()
    if first_line in CONFIRM_WORDS:
        return _confirm_held_reply(connection, app, ticket, arrival, now)
    parsed = parse_commands(extracted.text)
    # An answer to an alert about held acts: `#libérer` alone, never text for its ticket.
    if not (parsed.errors or limits.releases_only(parsed)) and limits.answers_alert(
        connection, mail.in_reply_to
    ):
        written = next(iter(extracted.text.strip().splitlines()), "").strip()
        alert = apply_commands.Refusal(written, "alert_answer", command="release")
        return _reject(connection, app, ticket, sender, [alert], inbound_id, now, mail.message_id)
    if parsed.errors:
        return _reject(
            connection,
            app,
            ticket,
            sender,
            list(parsed.errors),
            inbound_id,
            now,
            mail.message_id,
        )
    if parsed.unmarked:
        return _hold_unmarked(connection, app, ticket, parsed, sender, inbound_id, now, mail)
    return _act(
        connection,
        app,
        ticket,
        parsed,
        certain=extracted.certain,
        cut_by=extracted.cut_by,
        raw=raw,
        sender=sender,
        inbound_id=inbound_id,
        reply_message_id=mail.message_id,
        now=now,
        arrival=arrival,
    )


AUTHORITY_CODES = frozenset({authority.NOT_ON_QUEUE, authority.OWN_MAILBOX})


def refuse_authority(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: citizens.Arrival,
    refusal: apply_commands.Refusal,
    now: datetime,
) -> StaffOutcome:
    """The sender may not act on this ticket: nothing applied or relayed; the sender is told
    why (not the ticket's content), and the message is held for the queue's supervisors."""
    sender = arrival.sender or ""
    # Logged too: no address and no line of the message in it.
    after = " once the commands before it in the message applied" if refusal.line else ""
    reason = (
        "not authorised: the sender is one of mailbot's own mailboxes"
        if refusal.code == authority.OWN_MAILBOX
        else "not authorised: the sender is not on the staff or supervisors of the "
        f"{refusal.argument} queue{after}"
    )
    _tell_sender(
        connection,
        app,
        ticket,
        sender,
        "not_authorised",
        {"refusal": refusal},
        arrival.inbound_id,
        now,
        arrival.mail.message_id,
    )
    queue = authority.queue_of(app.settings, ticket)
    citizens.hold_for_review(
        connection,
        app,
        ticket,
        arrival,
        [reason],
        now,
        recipients=queue.supervisors or queue.staff,
    )
    trail.record_refusals(connection, now, sender, ticket.ref, [refusal])
    return StaffOutcome(MessageState.HELD, f"staff message held: {reason}")


def _act(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    parsed: StaffMessage,
    *,
    certain: bool,
    cut_by: str,
    raw: bytes,
    sender: str,
    inbound_id: int,
    reply_message_id: str,
    now: datetime,
    arrival: citizens.Arrival,
) -> StaffOutcome:
    """Apply a staff reply: its commands in order, then its text relayed. All of it or
    nothing: a refused command, a doubtful cut or a relay that cannot be built undoes the
    rest (the savepoint), and the sender is told. A relay is checked like a command: after
    a category change that hands the ticket over, the sender may relay only if they work on
    the receiving queue too."""
    text_for_citizen, hold = text_for_citizen_of(parsed)
    incomplete = next((c for c in parsed.commands if c.name is CommandName.INCOMPLETE), None)
    purpose = "incomplete_request" if incomplete else "hold_request" if hold else "reply"
    names = {command.name for command in parsed.commands}
    # A merge or a referral carries the reply's text in its own notices: nothing is relayed.
    handing_off = bool(names & apply_commands.STANDS_ALONE)
    acts = limits.acts_of(parsed)
    done = limits.over_limit(connection, app.settings, sender, inbound_id, now) if acts else None
    if done is not None:  # past the sender's hourly limit: held whole for a supervisor
        reason = limits.hold(
            connection, app, ticket, sender, acts, done, inbound_id, now, reply_message_id
        )
        return StaffOutcome(MessageState.HELD, reason, flags=(limits.OVER_LIMIT,))

    def tell(template: str, values: dict[str, object], event: str, detail: str) -> None:
        """Answer the sender with `template` and log `event` on the ticket."""
        _tell_sender(
            connection, app, ticket, sender, template, values, inbound_id, now, reply_message_id
        )
        ticket_rows.add_event(
            connection, ticket.id, now, event, detail, actor=sender, inbound_id=inbound_id
        )

    try:
        with connection.begin_nested():
            apply_commands.apply_in_order(
                connection,
                app,
                ticket,
                parsed.commands,
                sender,
                inbound_id,
                now,
                text=parsed.body if handing_off else "",
            )
            if handing_off:
                if parsed.body and not certain:
                    text_for_citizen = parsed.body
                    raise _NeedsConfirmation
                text_for_citizen = ""
            elif parsed.pieces:
                current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
                text_for_citizen = with_canned_answers(app, current, parsed, hold, now)
            current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
            if incomplete is not None:
                # What is missing, worded for the ticket as the commands left it, then the rest.
                text_for_citizen = completeness.citizen_text(
                    app, current, incomplete.argument, text_for_citizen
                )
            if text_for_citizen and not certain:
                raise _NeedsConfirmation
            note = next((c for c in parsed.commands if c.name is CommandName.NOTE), None)
            if note is not None:
                ticket_rows.add_event(
                    connection,
                    ticket.id,
                    now,
                    "note",
                    "\n\n".join(part for part in (note.argument, parsed.body) if part),
                    actor=sender,
                    inbound_id=inbound_id,
                )
            if text_for_citizen:
                current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
                refusal = apply_commands.authority_refusal(
                    app, current, sender, next(iter(text_for_citizen.strip().splitlines()), "")
                )
                if refusal is not None:
                    raise apply_commands.Refused(refusal)
                outgoing.relay(
                    connection,
                    app,
                    current,
                    text_for_citizen,
                    raw=raw,
                    author=sender,
                    inbound_id=inbound_id,
                    staff_message_id=reply_message_id,
                    purpose=purpose,
                    now=now,
                )
                access.record(connection, now, sender, "relay", ticket.ref)
    except apply_commands.Refused as refused:
        if refused.refusal.code in AUTHORITY_CODES:
            return refuse_authority(connection, app, ticket, arrival, refused.refusal, now)
        return _reject(
            connection, app, ticket, sender, [refused.refusal], inbound_id, now, reply_message_id
        )
    except _NeedsConfirmation:
        tell(
            "confirm",
            {"text": text_for_citizen},
            "reply_held_for_confirmation",
            f"cut uncertain ({cut_by or 'no quote header found'})",
        )
        return StaffOutcome(
            MessageState.HELD,
            "reply held: the quoted history could not be cut with certainty; the sender was "
            "asked to confirm",
            flags=(UNCERTAIN_CUT,),
        )
    except Exception as exc:  # the reply cannot be relayed: its author must know, at once
        log.exception("ticket %s: staff reply #%s could not be relayed", ticket.ref, inbound_id)
        tell(
            "relay_failed",
            {"error": type(exc).__name__},
            "relay_failed",
            f"{type(exc).__name__}: nothing applied, the sender was told",
        )
        return StaffOutcome(
            MessageState.HELD, f"staff reply could not be relayed ({type(exc).__name__})"
        )
    if acts:
        limits.record_applied(connection, sender, ticket, inbound_id, acts, now)
    if not parsed.commands and not text_for_citizen:
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "staff_message_empty",
            "nothing to relay and no command",
            actor=sender,
            inbound_id=inbound_id,
        )
    return StaffOutcome(MessageState.PROCESSED, "staff message applied")


def record_note(
    connection: Connection,
    ticket: TicketRow,
    sender: str,
    text: str,
    inbound_id: int,
    now: datetime,
) -> StaffOutcome:
    """Mail to the notes address: its new text is an internal note on the ticket, whatever it
    says (a command line, `confirmer`, words for the citizen). Nothing is applied or relayed;
    the ticket's status, clocks and answered state stay as they are."""
    ticket_rows.add_event(
        connection, ticket.id, now, "note", text.strip(), actor=sender, inbound_id=inbound_id
    )
    access.record(connection, now, sender, "staff_note", ticket.ref)
    return StaffOutcome(MessageState.PROCESSED, "internal note recorded (notes address)")


def _hold_unmarked(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    parsed: StaffMessage,
    sender: str,
    inbound_id: int,
    now: datetime,
    mail: InboundMail,
) -> StaffOutcome:
    """A line looks like a command left unmarked: nothing applied, nothing sent; the sender
    gets the line, the marked form meant, and how to send the reply as written
    (`confirmer`)."""
    _tell_sender(
        connection,
        app,
        ticket,
        sender,
        UNMARKED_COMMAND,
        {"unmarked": parsed.unmarked},
        inbound_id,
        now,
        mail.message_id,
    )
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "reply_held_unmarked_command",
        "; ".join(f"{item.line} -> {item.marked}" for item in parsed.unmarked),
        actor=sender,
        inbound_id=inbound_id,
    )
    return StaffOutcome(
        MessageState.HELD,
        "reply held: a line looks like a command without its mark; the sender was asked to confirm",
        flags=(UNMARKED_COMMAND,),
    )


def with_canned_answers(
    app: App, ticket: TicketRow, parsed: StaffMessage, hold: Command | None, now: datetime
) -> str:
    """The reply's text with each `réponse type` line replaced by its answer rendered for the
    ticket: French in place; the answers' English versions after it, where the ticket's
    language rules allow and every answer used has one."""
    english = answers.may_write_english(app.settings, ticket)
    values = answers.ticket_values(app.settings, ticket, app.calendar.office_date(now))
    french: list[str] = [hold.argument] if hold else []
    english_parts: list[str | None] = []
    for piece in parsed.pieces:
        if isinstance(piece, str):
            french.append(piece)
            continue
        rendered = app.answers.render(piece.argument, values, english=english)
        french.append(rendered.french)
        english_parts.append(rendered.english)
    both = english and english_parts and all(part is not None for part in english_parts)
    return app.renderer.render_text(
        "canned_answer",
        {
            "french": "\n\n".join(part for part in french if part.strip()),
            "english": "\n\n".join(p for p in english_parts if p) if both else "",
        },
    ).strip()


def text_for_citizen_of(parsed: StaffMessage) -> tuple[str, Command | None]:
    """What reaches the citizen: the hold's reason, then the body unless it is a note."""
    names = {command.name for command in parsed.commands}
    hold = next((c for c in parsed.commands if c.name is CommandName.HOLD), None)
    body = "" if CommandName.NOTE in names else parsed.body
    parts = (hold.argument if hold else "", body)
    return "\n\n".join(part for part in parts if part), hold


def _reject(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    sender: str,
    problems: list[Any],
    inbound_id: int,
    now: datetime,
    in_reply_to: str,
) -> StaffOutcome:
    """Nothing applied: tell the sender which line and why."""
    _tell_sender(
        connection,
        app,
        ticket,
        sender,
        "command_error",
        {"problems": problems},
        inbound_id,
        now,
        in_reply_to,
    )
    detail = "; ".join(f"{problem.code}: {problem.line}" for problem in problems)
    ticket_rows.add_event(
        connection, ticket.id, now, "command_rejected", detail, actor=sender, inbound_id=inbound_id
    )
    trail.record_refusals(connection, now, sender, ticket.ref, problems)
    return StaffOutcome(MessageState.PROCESSED, "command error answered to the sender")


def _tell_sender(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    sender: str,
    template: str,
    values: dict[str, object],
    inbound_id: int,
    now: datetime,
    in_reply_to: str,
) -> None:
    outgoing.to_staff(
        connection,
        app,
        template=template,
        values=values,
        queue=app.settings.queue_for(ticket.category, ticket.mailbox),
        recipients=(sender,),
        ticket=ticket,
        purpose=f"staff_{template}",
        dedupe=f"{template}:{inbound_id}",
        now=now,
        in_reply_to=in_reply_to,
    )


def _confirm_held_reply(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: citizens.Arrival,
    now: datetime,
) -> StaffOutcome:
    """Apply the reply the sender confirms (checked again, as the ticket and the queue's lists
    stand now): as written, its first line taken as text even when it looks like a command
    left unmarked.

    Which reply: the one whose confirmation request the `confirmer` answers (its In-Reply-To
    or References), else the sender's newest held reply on the ticket; in both cases only if
    the sender has written nothing on the ticket since: a reply sent again corrected
    supersedes the one held, which a late `confirmer` must never send. Nothing to confirm is
    said to the sender, never passed over in silence."""
    sender, inbound_id = arrival.sender or "", arrival.inbound_id
    asked_about = outbox_rows.held_replies_asked_about(connection, arrival.mail.thread_ids)
    for held in inbound_rows.held_for_confirmation(connection, ticket.id):
        original, _sent_as = send_as.judged(app.settings, parse_message(held.raw), held.raw)
        if original.sender is None or original.sender.address != sender:
            continue
        if asked_about and held.id not in asked_about:
            continue
        if _written_since(connection, app, ticket, held.id, arrival):
            break
        extracted = extract_new_text(original.text, internal_markers=(INTERNAL_MARKER,))
        parsed = parse_commands(extracted.text)
        outcome = _act(
            connection,
            app,
            ticket,
            parsed,
            certain=True,
            cut_by=extracted.cut_by,
            raw=held.raw,
            sender=sender,
            inbound_id=held.id,
            reply_message_id=original.message_id,
            now=now,
            arrival=arrival,
        )
        if outcome.state != MessageState.PROCESSED:
            return outcome
        inbound_rows.record_outcome(
            connection,
            held.id,
            state=MessageState.PROCESSED,
            reason=f"confirmed by the sender (inbound #{inbound_id})",
            flags=UNMARKED_COMMAND if parsed.unmarked else UNCERTAIN_CUT,
        )
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "reply_confirmed",
            f"inbound #{held.id}",
            actor=sender,
            inbound_id=inbound_id,
        )
        return StaffOutcome(MessageState.PROCESSED, f"confirmed held reply #{held.id}")
    _tell_sender(
        connection,
        app,
        ticket,
        sender,
        "nothing_to_confirm",
        {},
        inbound_id,
        now,
        arrival.mail.message_id,
    )
    return StaffOutcome(
        MessageState.PROCESSED,
        "confirmation with no held reply to confirm (none held, or the sender wrote since); "
        "the sender was told",
    )


def _written_since(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    held_id: int,
    arrival: citizens.Arrival,
) -> bool:
    """Whether the confirming sender wrote on the ticket after the held reply (before this
    confirmation)."""
    for later in inbound_rows.staff_replies_after(
        connection, ticket.id, held_id, arrival.inbound_id
    ):
        mail, _sent_as = send_as.judged(app.settings, parse_message(later.raw), later.raw)
        if mail.sender is not None and mail.sender.address == arrival.sender:
            return True
    return False
