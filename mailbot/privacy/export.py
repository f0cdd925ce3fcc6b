"""One requester's data, in a structured format (Quebec's Law 25: a person may ask for it).

Everything mailbot holds about the requester's tickets: the tickets with their deadlines and
holds, the messages they sent (as text), the messages mailbot sent them, and the history of
each ticket (what happened and when; the ministry's internal details are left out). With
`--messages`, a zip holds the same index and the messages themselves: each original `.eml`
and the attachments of each received message (`write_messages_zip`).
The rows come from `mailbot.db.requester_rows`; this module shapes them into the JSON document (pure
but for that read).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import zipfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from mailbot.db.requester_rows import RequesterTicket, requester_tickets
from mailbot.db.store import reading
from mailbot.mail.parse import parse_message
from mailbot.privacy import personal


def _instant(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _lines(text: str) -> str:
    """Text with one kind of line ending, "\n", whatever the message carried."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _outgoing_text(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return str(message["Subject"] or ""), str(text)


def _received_text(raw: bytes) -> dict[str, Any]:
    if not raw:  # destroyed by the retention schedule
        return {"subject": None, "text": None, "destroyed": True}
    mail = parse_message(raw)
    return {"subject": mail.subject, "text": _lines(mail.text)}


def _sent_text(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {"subject": None, "text": None, "destroyed": True}
    subject, text = _outgoing_text(raw)
    return {"subject": subject, "text": _lines(text)}


def _file(ref: str, direction: str, n: int, raw: bytes) -> str | None:
    """Where the message's original lies in the `--messages` zip."""
    return f"{ref}/{direction}-{n:03d}.eml" if raw else None


# The zip's folder for the requester's messages that belong to no ticket.
NO_TICKET = "sans-dossier"

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _safe_name(name: str, n: int) -> str:
    cleaned = _UNSAFE.sub("_", name).strip(" .")[:120]
    return f"{n:02d}-{cleaned or 'attachment'}"


def attachments(raw: bytes) -> list[tuple[str, bytes]]:
    """The attachments of a message: (file name, decoded bytes), in order."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    found: list[tuple[str, bytes]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if part.get_content_disposition() != "attachment" and not filename:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            found.append((_safe_name(filename or "", len(found) + 1), payload))
    return found


def write_messages_zip(engine: Engine, requester: str, index: Mapping[str, Any], path: Path) -> int:
    """The access request's zip: `index.json` (the export), each message as its original
    `.eml` (as received, as sent), and each received message's attachments beside it."""
    address = personal.normalised(requester)
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "index.json", json.dumps(index, ensure_ascii=False, indent=2).encode() + b"\n"
        )
        for found in requester_tickets(engine, address):
            ref = found.ticket.ref
            received = [m.raw for m in found.received]
            sent = [m.raw for m in found.sent]
            for direction, raws in (("received", received), ("sent", sent)):
                for n, raw in enumerate(raws, 1):
                    name = _file(ref, direction, n, raw)
                    if name is None:
                        continue
                    archive.writestr(name, raw)
                    count += 1
                    if direction == "received":
                        for file_name, content in attachments(raw):
                            archive.writestr(f"{ref}/{direction}-{n:03d}/{file_name}", content)
        with reading(engine) as connection:
            for n, (_copy, raw) in enumerate(personal.unlinked_of(connection, address), 1):
                name = _file(NO_TICKET, "received", n, raw)
                if name is not None:
                    archive.writestr(name, raw)
                    count += 1
    return count


def export_requester(engine: Engine, requester: str) -> dict[str, Any]:
    """The requester's data as a JSON-ready mapping (addresses compared as mailbot normalises
    them), with the messages of theirs that belong to no ticket (automatic replies, list
    mail, held or quarantined messages)."""
    address = personal.normalised(requester)
    tickets = [_ticket_json(found) for found in requester_tickets(engine, address)]
    with reading(engine) as connection:
        unlinked = [
            {**_received_text(raw), "file": _file(NO_TICKET, "received", n, raw)}
            for n, (_copy, raw) in enumerate(personal.unlinked_of(connection, address), 1)
        ]
    return {"requester": address, "tickets": tickets, "messages_without_ticket": unlinked}


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
                "kind": h.kind,
            }
            for h in found.holds
        ],
        "messages_received": [
            {
                "received_at": _instant(m.internal_date),
                "kind": m.kind,
                **_received_text(m.raw),
                "file": _file(ticket.ref, "received", n, m.raw),
            }
            for n, m in enumerate(found.received, 1)
        ],
        "messages_sent": [
            {
                "queued_at": _instant(m.created_at),
                "sent_at": _instant(m.sent_at),
                "purpose": m.purpose,
                **_sent_text(m.raw),
                "file": _file(ticket.ref, "sent", n, m.raw),
            }
            for n, m in enumerate(found.sent, 1)
        ],
        # What happened and when; the details are the ministry's internal working notes
        # (staff addresses, notes, rules) and stay out.
        "history": [{"at": _instant(e.at), "event": e.kind} for e in found.events],
    }
