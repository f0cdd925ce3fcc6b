"""A staff reply that names several tickets, on the caller's connection: held, and its
sender asked which ticket it is for.

When In-Reply-To, References and the subject name different tickets (the classifier's
`several_tickets`), acting on the first one would guess: a reply written for one citizen
could reach another. Nothing is applied or relayed. An authenticated sender gets a short
question (French, then English) naming the tickets; the question carries no ticket's token,
so an answer to it acts on none: the sender answers from the right ticket's message. A
sender that does not authenticate is held as any other (the queue's staff are told).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.sending.to_staff import to_staff
from mailbot.staff import replies, send_as, trail
from mailbot.staff.to_sender import StaffOutcome
from mailbot.standards import authority
from mailbot.states import MessageState
from mailbot.tickets.facts import Arrival

log = logging.getLogger(__name__)

SEVERAL_TICKETS = "several_tickets"


def ask(
    connection: Connection,
    app: App,
    ticket: TicketRow | None,
    arrival: Arrival,
    named: Sequence[str],
    now: datetime,
) -> StaffOutcome:
    """Hold a staff reply naming the tickets `named` and ask its sender which one it is for."""
    mail, reasons = send_as.judged(app.settings, arrival.mail, arrival.raw)
    if reasons or ticket is None:
        return replies.handle(connection, app, ticket, arrival, now)  # held as any other
    arrival = replace(arrival, mail=mail)
    if replies.authenticate(app, mail, ticket):
        return replies.handle(connection, app, ticket, arrival, now)  # held as any other
    sender = arrival.sender or ""
    refs = list(dict.fromkeys(named))
    to_staff(
        connection,
        app,
        template="which_ticket",
        values={"refs": refs, "subject": mail.subject},
        queue=authority.queue_of(app.settings, ticket),
        recipients=(sender,),
        purpose="staff_which_ticket",
        dedupe=f"which_ticket:{arrival.inbound_id}",
        now=now,
        in_reply_to=mail.message_id,
    )
    for ref in refs:
        found = ticket_rows.ticket_by_ref(connection, ref)
        if found is None:
            continue
        ticket_rows.add_event(
            connection,
            found.id,
            now,
            "message_held",
            f"names several tickets ({', '.join(refs)}): the sender was asked which",
            actor=sender,
            inbound_id=arrival.inbound_id,
        )
        trail.record(connection, now, sender, ref, "message", SEVERAL_TICKETS)
    log.warning("staff reply naming %d tickets held; its sender was asked which", len(refs))
    return StaffOutcome(
        MessageState.HELD,
        f"staff message held: it names several tickets ({', '.join(refs)}); the sender was "
        "asked which one it is for",
        flags=(SEVERAL_TICKETS,),
    )
