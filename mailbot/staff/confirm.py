"""A staff reply held until its sender confirms it: one whose quoted history could not be cut
with certainty, or whose first line looks like a command left unmarked; and the `confirmer`
that releases it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import inbound_rows, outbox_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.parse import InboundMail, parse_message
from mailbot.mail.quotes import extract_new_text
from mailbot.mail.render import INTERNAL_MARKER
from mailbot.staff import send_as
from mailbot.staff.apply_reply import UNCERTAIN_CUT, act
from mailbot.staff.parse_commands import StaffMessage, parse_commands
from mailbot.staff.to_sender import StaffOutcome, tell_sender
from mailbot.states import MessageState
from mailbot.tickets.facts import Arrival

CONFIRM_WORDS = frozenset({"confirmer", "confirm", "#confirmer", "#confirm"})
UNMARKED_COMMAND = "unmarked_command"


def hold_unmarked(
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
    tell_sender(
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


def confirm_held_reply(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
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
        outcome = act(
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
    tell_sender(
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
    arrival: Arrival,
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
