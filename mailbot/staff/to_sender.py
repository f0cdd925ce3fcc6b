"""What a staff member is answered when their message changes nothing: a command error, a
refusal of authority (held for the queue's supervisors too), or a question about the reply;
and what became of the staff message (`StaffOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.sending.to_staff import to_staff
from mailbot.staff import apply_commands, trail
from mailbot.standards import authority
from mailbot.states import MessageState
from mailbot.tickets import notices
from mailbot.tickets.facts import Arrival


@dataclass(frozen=True, slots=True)
class StaffOutcome:
    """What became of the staff message: its stored state, reason and flags."""

    state: MessageState
    reason: str
    flags: tuple[str, ...] = ()


AUTHORITY_CODES = frozenset({authority.NOT_ON_QUEUE, authority.OWN_MAILBOX})


def refuse_authority(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
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
    tell_sender(
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
    notices.hold_for_review(
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


def reject(
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
    tell_sender(
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


def tell_sender(
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
    to_staff(
        connection,
        app,
        template=template,
        values=values,
        queue=authority.queue_of(app.settings, ticket),
        recipients=(sender,),
        ticket=ticket,
        purpose=f"staff_{template}",
        dedupe=f"{template}:{inbound_id}",
        now=now,
        in_reply_to=in_reply_to,
    )
