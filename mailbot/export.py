"""One requester's data, in a structured format (Quebec's Law 25: a person may ask for it).

Everything mailbot holds about the requester's tickets: the tickets with their deadlines and
holds, the messages they sent (as text), the messages mailbot sent them, and the history of
each ticket (what happened and when; the ministry's internal details are left out).
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mailbot.models import DEADLINE, EVENT, HOLD, INBOUND, OUTBOX, TICKET
from mailbot.parse import parse_message


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _outgoing_text(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return str(message["Subject"] or ""), str(text)


def export_requester(engine: Engine, requester: str) -> dict[str, Any]:
    """The requester's data as a JSON-ready mapping (addresses compared case-insensitively)."""
    address = requester.strip().lower()
    ticket_table, inbound, outbox = TICKET, INBOUND, OUTBOX
    result: dict[str, Any] = {"requester": address, "tickets": []}
    with engine.connect() as connection:
        tickets = connection.execute(
            sa.select(ticket_table)
            .where(sa.func.lower(ticket_table.c.requester) == address)
            .order_by(ticket_table.c.id)
        ).all()
        for ticket in tickets:
            deadlines = connection.execute(
                sa.select(DEADLINE).where(DEADLINE.c.ticket_id == ticket.id).order_by(DEADLINE.c.id)
            ).all()
            holds = connection.execute(
                sa.select(HOLD).where(HOLD.c.ticket_id == ticket.id).order_by(HOLD.c.id)
            ).all()
            received = connection.execute(
                sa.select(inbound.c.internal_date, inbound.c.raw, inbound.c.kind)
                .where(inbound.c.ticket_id == ticket.id)
                .where(inbound.c.kind.in_(("new_request", "follow_up", "auto_reply")))
                .order_by(inbound.c.id)
            ).all()
            sent = connection.execute(
                sa.select(outbox.c.created_at, outbox.c.sent_at, outbox.c.purpose, outbox.c.raw)
                .where(outbox.c.ticket_id == ticket.id)
                .where(sa.func.lower(outbox.c.recipient) == address)
                .order_by(outbox.c.id)
            ).all()
            events = connection.execute(
                sa.select(EVENT.c.at, EVENT.c.kind)
                .where(EVENT.c.ticket_id == ticket.id)
                .order_by(EVENT.c.id)
            ).all()
            result["tickets"].append(
                {
                    "ref": ticket.ref,
                    "mailbox": ticket.mailbox,
                    "category": ticket.category,
                    "status": ticket.status,
                    "language": ticket.language,
                    "subject": ticket.subject,
                    "received_at": _instant(ticket.received_at),
                    "receipt_date": ticket.receipt_date.isoformat(),
                    "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
                    "acknowledged_at": _instant(ticket.acknowledged_at),
                    "answered_at": _instant(ticket.answered_at),
                    "closed_at": _instant(ticket.closed_at),
                    "deadlines": [
                        {
                            "commitment": d.commitment,
                            "due_date": d.due_date.isoformat(),
                            "met_at": _instant(d.met_at),
                            "days_on_hold": d.days_on_hold,
                        }
                        for d in deadlines
                    ],
                    "holds": [
                        {
                            "started_at": _instant(h.started_at),
                            "ended_at": _instant(h.ended_at),
                            "reason": h.reason,
                        }
                        for h in holds
                    ],
                    "messages_received": [
                        {
                            "received_at": _instant(m.internal_date),
                            "kind": m.kind,
                            "subject": (mail := parse_message(m.raw)).subject,
                            "text": mail.text,
                        }
                        for m in received
                    ],
                    "messages_sent": [
                        {
                            "queued_at": _instant(m.created_at),
                            "sent_at": _instant(m.sent_at),
                            "purpose": m.purpose,
                            **dict(zip(("subject", "text"), _outgoing_text(m.raw), strict=True)),
                        }
                        for m in sent
                    ],
                    # What happened and when; the details are the ministry's internal working
                    # notes (staff addresses, notes, rules) and stay out.
                    "history": [{"at": _instant(e.at), "event": e.kind} for e in events],
                }
            )
    return result
