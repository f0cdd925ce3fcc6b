"""A staff reply applied: its commands in order, then its text relayed to the citizen, all or
nothing (a savepoint); and the text the citizen reads, with the canned answers rendered."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail import canned
from mailbot.sending import to_citizens
from mailbot.staff import apply_commands, limits
from mailbot.staff.command_table import STANDS_ALONE, Command, CommandName
from mailbot.staff.parse_commands import StaffMessage
from mailbot.staff.to_sender import (
    AUTHORITY_CODES,
    StaffOutcome,
    refuse_authority,
    reject,
    tell_sender,
)
from mailbot.states import MessageState
from mailbot.tickets import completeness
from mailbot.tickets.facts import Arrival

log = logging.getLogger(__name__)

UNCERTAIN_CUT = "uncertain_cut"


class _NeedsConfirmation(Exception):
    """The commands are valid but the cut is doubtful: nothing applies until `confirmer`."""


def act(
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
    arrival: Arrival,
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
    handing_off = bool(names & STANDS_ALONE)
    acts = limits.acts_of(parsed)
    done = limits.over_limit(connection, app.settings, sender, inbound_id, now) if acts else None
    if done is not None:  # past the sender's hourly limit: held whole for a supervisor
        reason = limits.hold(
            connection, app, ticket, sender, acts, done, inbound_id, now, reply_message_id
        )
        return StaffOutcome(MessageState.HELD, reason, flags=(limits.OVER_LIMIT,))

    def tell(template: str, values: dict[str, object], event: str, detail: str) -> None:
        """Answer the sender with `template` and log `event` on the ticket."""
        tell_sender(
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
            # The ticket as the commands left it (category, queue, clocks): what the citizen
            # is written from, and what the relay's authority is checked against.
            current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
            if handing_off:
                if parsed.body and not certain:
                    text_for_citizen = parsed.body
                    raise _NeedsConfirmation
                text_for_citizen = ""
            elif parsed.pieces:
                text_for_citizen = with_canned_answers(app, current, parsed, hold, now)
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
                refusal = apply_commands.authority_refusal(
                    app, current, sender, next(iter(text_for_citizen.strip().splitlines()), "")
                )
                if refusal is not None:
                    raise apply_commands.Refused(refusal)
                to_citizens.relay(
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
        return reject(
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


def with_canned_answers(
    app: App, ticket: TicketRow, parsed: StaffMessage, hold: Command | None, now: datetime
) -> str:
    """The reply's text with each `réponse type` line replaced by its answer rendered for the
    ticket: French in place; the answers' English versions after it, where the ticket's
    language rules allow and every answer used has one."""
    english = canned.may_write_english(app.settings, ticket)
    values = canned.ticket_values(app.settings, ticket, app.calendar.office_date(now))
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
