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
that canned answer rendered for the ticket (mailbot/mail/canned.py); after `#fusionner` or
`#référer` nothing is relayed, the merge's or the referral's own notice carries the text
(mailbot/tickets/merge.py, mailbot/tickets/referral.py). A reply whose text opens with what looks
like a command left unmarked (`Fermer`, `Note interne`: mailbot/staff/unmarked_commands.py) is
held, neither applied nor sent, until its sender confirms it. Mail sent to the queue's notes
address is an internal note, whatever its text: recorded on the ticket, never relayed, and
never an answer (`record_note`).

The steps live beside this module: the answers to the sender (mailbot/staff/to_sender.py),
the reply applied and relayed (mailbot/staff/apply_reply.py), and the replies held until their
sender confirms them (mailbot/staff/confirm.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.parse import InboundMail
from mailbot.mail.quotes import extract_new_text
from mailbot.mail.render import INTERNAL_MARKER
from mailbot.staff import apply_commands, limits, send_as, trail
from mailbot.staff.apply_reply import act
from mailbot.staff.authresults import check_authentication
from mailbot.staff.confirm import CONFIRM_WORDS, confirm_held_reply, hold_unmarked
from mailbot.staff.exchange import check_exchange_origin
from mailbot.staff.parse_commands import parse_commands
from mailbot.staff.to_sender import StaffOutcome, refuse_authority, reject
from mailbot.states import MessageState
from mailbot.tickets import notices
from mailbot.tickets.facts import Arrival


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
    arrival: Arrival,
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
       for a line that looked like an unmarked command (`confirm.confirm_held_reply`).
    5. Otherwise parse the command lines (`staff.parse_commands`); an unreadable one answers
       the sender with the line and why, and applies nothing (`to_sender.reject`); a line
       that looks like a command left unmarked holds the reply and asks the sender
       (`confirm.hold_unmarked`).
    6. Apply the commands in order, then relay the text to the citizen, all or nothing
       (`apply_reply.act`, in a savepoint; `apply_commands.apply_in_order`,
       `to_citizens.relay`).

    Returns the inbound message's state and reason, written by the caller.
    """
    mail, reasons = send_as.judged(app.settings, arrival.mail, arrival.raw)
    arrival = replace(arrival, mail=mail)  # sent as the queue: read as the person it names
    raw, inbound_id = arrival.raw, arrival.inbound_id
    reasons = reasons or tuple(authenticate(app, mail, ticket))
    if reasons or ticket is None or mail.sender is None:
        notices.hold_for_review(connection, app, ticket, arrival, reasons, now)
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
        return confirm_held_reply(connection, app, ticket, arrival, now)
    parsed = parse_commands(extracted.text)
    # An answer to an alert about held acts: `#libérer` alone, never text for its ticket.
    if not (parsed.errors or limits.releases_only(parsed)) and limits.answers_alert(
        connection, mail.in_reply_to
    ):
        written = next(iter(extracted.text.strip().splitlines()), "").strip()
        alert = apply_commands.Refusal(written, "alert_answer", command="release")
        return reject(connection, app, ticket, sender, [alert], inbound_id, now, mail.message_id)
    if parsed.errors:
        return reject(
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
        return hold_unmarked(connection, app, ticket, parsed, sender, inbound_id, now, mail)
    return act(
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
