"""Referring a request to the body it belongs to (`référer : ADRESSE`), on the caller's
connection.

The citizen's request as it arrived (its text and attachments) goes once to that body, from
the queue's official address, with the staff's note; the citizen is told where it went and
why (the same note); the ticket is closed with the reason `referred`, and the referral is the
response: the ticket's open reply and result deadlines are met at the referral's instant. The
request's personal information leaving the ministry is written in the access trail. An
address of the ministry's own is refused: that is reassignment (`assigner`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.context import App
from mailbot.db import access, handoff
from mailbot.db import clocks as clock_rows_db
from mailbot.db import tickets as ticket_rows
from mailbot.db.inbound import citizen_thread
from mailbot.db.tickets import TicketRow
from mailbot.mail.parse import parse_message
from mailbot.sending import outgoing
from mailbot.settings import Settings
from mailbot.standards import deadlines
from mailbot.states import ClosedReason, TicketStatus

log = logging.getLogger(__name__)

# The request's text in the referral is cut here; the attachments carry the rest.
MAX_REQUEST_CHARS = 50_000


def is_own_address(settings: Settings, address: str) -> bool:
    """An address of the ministry's own: a mailbox of mailbot's, staff, or a staff domain."""
    domain = address.lower().rpartition("@")[2]
    own_domains = {d.lower() for d in settings.organisation.staff_domains}
    return (
        address.lower() in settings.own_addresses
        or settings.is_staff(address)
        or domain in own_domains
        or domain == settings.organisation.message_id_domain.lower()
    )


def referral_problem(
    settings: Settings, ticket: TicketRow, address: str, note: str
) -> tuple[str, str] | None:
    """Why `ticket` cannot be referred to `address` with `note`: (code, argument), or None."""
    if is_own_address(settings, address):
        return ("refer_own_domain", address)
    # Closed as merged or referred, and not reopened since by the citizen's follow-up.
    if ticket.closed_reason is not None and ticket.status == TicketStatus.CLOSED:
        return ("ticket_closed_as", ticket.closed_reason)
    if not note.strip():
        return ("refer_needs_note", "")
    return None


def refer(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    address: str,
    *,
    note: str,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """Send the request to `address` once, tell the citizen, close the ticket as referred and
    count the referral as the response at `now`."""
    request = handoff.first_request(connection, ticket.id)
    request_text = ""
    if request is not None:
        request_text = parse_message(request.raw).text.strip()[:MAX_REQUEST_CHARS]
    outgoing.referral(
        connection,
        app,
        ticket,
        address=address,
        values={"note": note.rstrip(), "request_text": request_text, "sender": sender},
        request=request.raw if request is not None else None,
        author=sender,
        inbound_id=inbound_id,
        now=now,
    )
    domain = address.rpartition("@")[2]
    access.record(
        connection,
        now,
        sender,
        "referred_out",
        ticket.ref,
        f"request, requester's name and address, and attachments sent to @{domain}",
    )
    citizen_ids, our_ids = citizen_thread(connection, ticket.id)
    outgoing.notice_to_citizen(
        connection,
        app,
        ticket,
        template="referred",
        values={"address": address, "note": note.rstrip()},
        thread=(*our_ids, *citizen_ids),
        token_ref=ticket.ref,
        purpose="referral_notice",
        dedupe=f"referred:{ticket.ref}:{address}",
        author=sender,
        inbound_id=inbound_id,
        now=now,
    )
    if clock_rows_db.close_hold(connection, ticket.id, now, sender):
        deadlines.recompute(connection, app, ticket.id, now)  # the hold's days move the deadline
    # The referral is the response: the reply and result clocks are met now.
    met = [c.id for c in app.settings.commitments if c.kind in deadlines.MEETS_KINDS["reply"]]
    clock_rows_db.meet_deadlines(connection, ticket.id, met, now)
    ticket_rows.stamp_first(connection, ticket.id, "answered_at", now)
    ticket_rows.set_ticket_fields(
        connection,
        ticket.id,
        now,
        status=TicketStatus.CLOSED.value,
        closed_at=now,
        closed_reason=ClosedReason.REFERRED.value,
    )
    log.info("ticket %s referred to @%s", ticket.ref, domain)
