"""One requester's data, in a structured format (Quebec's Law 25: a person may ask for it).

Everything mailbot holds about the requester's tickets: the tickets with their deadlines and
holds, the messages they sent (as text), the messages mailbot sent them, and the history of
each ticket (what happened and when; the ministry's internal details are left out).
The rows come from `mailbot.db.export`; this module shapes them into the JSON document (pure
but for that read).
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from mailbot.db.export import RequesterTicket, requester_tickets
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
    tickets = [_ticket_json(found) for found in requester_tickets(engine, address)]
    return {"requester": address, "tickets": tickets}


def _ticket_json(found: RequesterTicket) -> dict[str, Any]:
    ticket = found.ticket
    return {
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
            for d in found.deadlines
        ],
        "holds": [
            {
                "started_at": _instant(h.started_at),
                "ended_at": _instant(h.ended_at),
                "reason": h.reason,
            }
            for h in found.holds
        ],
        "messages_received": [
            {
                "received_at": _instant(m.internal_date),
                "kind": m.kind,
                "subject": (mail := parse_message(m.raw)).subject,
                "text": mail.text,
            }
            for m in found.received
        ],
        "messages_sent": [
            {
                "queued_at": _instant(m.created_at),
                "sent_at": _instant(m.sent_at),
                "purpose": m.purpose,
                **dict(zip(("subject", "text"), _outgoing_text(m.raw), strict=True)),
            }
            for m in found.sent
        ],
        # What happened and when; the details are the ministry's internal working notes
        # (staff addresses, notes, rules) and stay out.
        "history": [{"at": _instant(e.at), "event": e.kind} for e in found.events],
    }
