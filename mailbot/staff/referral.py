"""Referring a request to the body it belongs to (`#référer : ADRESSE`), on the caller's
connection.

A referral sends what it announces. The first referral of a ticket to a body carries the
citizen's own request and every follow-up of theirs since (never a merged duplicate's: see
mailbot/staff/merge.py); a later one to the same body carries the follow-ups received since
the one before. Their text goes in the body and every file whole. What cannot go whole is
not sent at all: a referral over the relay's announced SIZE, or with a file over Graph's
limit (mailbot/sending/sizes.py), a request over the size cap (only its headers were read),
or a message whose parts could not all be read. Nor is a referral of a ticket under legal
hold, or to an address of the ministry's own (its domains and their subdomains: that is
reassignment, `assigner`). Then `NotReferred` says why: the staff member is told, the
citizen is told nothing, and the ticket stays as it was.

Otherwise the referral is queued, with the staff's note, from the queue's official address;
the ticket is closed as referred; and the citizen's notice (where it went and why) is queued
to wait for the referral (outbox `after_id`): it leaves only once the relay accepted the
referral, and is withdrawn if the relay refuses it for good. The relay's acceptance meets
the ticket's reply and result clocks at the referral's instant (mailbot/sending/outbox.py); a
refusal for good reopens the ticket and tells its author (mailbot/sending/delivery.py). The
personal information leaving the ministry is written in the access trail.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, handoff, hold_rows, ticket_rows
from mailbot.db.inbound_rows import citizen_thread
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.parse import CarriedFile, files_of, parse_message
from mailbot.sending import outgoing, sizes
from mailbot.settings import Settings
from mailbot.standards import deadlines
from mailbot.states import ClosedReason, TicketStatus

log = logging.getLogger(__name__)

OVERSIZED = "oversized"  # the inbound flag of a message read by its headers only


class NotReferred(Exception):
    """The referral cannot go as announced: (code, argument) for `templates/_refusal.j2`, and
    the files concerned (name, bytes) when its size is the reason."""

    def __init__(self, code: str, argument: str = "", files: tuple[tuple[str, int], ...] = ()):
        super().__init__(code)
        self.code = code
        self.argument = argument
        self.files = files


def own_domains(settings: Settings) -> frozenset[str]:
    """The ministry's domains: its staff domains, its Message-ID domain and those of its
    mailboxes."""
    domains = {d.strip().lower().rstrip(".") for d in settings.organisation.staff_domains}
    domains.add(settings.organisation.message_id_domain.strip().lower().rstrip("."))
    domains.update(address.rpartition("@")[2] for address in settings.own_addresses)
    return frozenset(domain for domain in domains if domain)


def is_inside(domain: str, domains: frozenset[str]) -> bool:
    """`domain` is one of `domains` or a subdomain of one (label by label: a lookalike such as
    "mri.gouv.qc.ca.example.net" is outside)."""
    domain = domain.strip().lower().rstrip(".")
    return any(domain == own or domain.endswith("." + own) for own in domains)


def is_own_address(settings: Settings, address: str) -> bool:
    """An address of the ministry's own: a mailbox of mailbot's, staff, or an address in one
    of the ministry's domains or their subdomains."""
    address = address.strip().lower()
    return (
        address in settings.own_addresses
        or settings.is_staff(address)
        or is_inside(address.rpartition("@")[2], own_domains(settings))
    )


def referral_problem(
    settings: Settings, ticket: TicketRow, address: str, note: str
) -> tuple[str, str] | None:
    """Why `ticket` cannot be referred to `address` with `note`: (code, argument), or None.
    (What the referral would carry is checked when it is built: `refer`.)"""
    if is_own_address(settings, address):
        return ("refer_own_domain", address)
    # Closed as merged or referred, and not reopened since by the citizen's follow-up.
    if ticket.closed_reason is not None and ticket.status == TicketStatus.CLOSED:
        return ("ticket_closed_as", ticket.closed_reason)
    if ticket.legal_hold_at is not None:
        return ("refer_legal_hold", ticket.ref)
    if not note.strip():
        return ("refer_needs_note", "")
    return None


def _carried(
    connection: Connection, ticket: TicketRow, address: str
) -> tuple[bool, list[handoff.Request]]:
    """Whether this is the first referral of the ticket to `address`, and the messages it
    carries: the request and the follow-ups since, or the follow-ups since the last one."""
    previous = handoff.last_referral_to(connection, ticket.id, address)
    if previous is not None:
        follow_ups = handoff.follow_ups_after(connection, ticket.id, previous)
        if not follow_ups:
            raise NotReferred("refer_nothing_new", address)
        return False, follow_ups
    request = handoff.first_request(connection, ticket.id)
    if request is None or not request.raw:
        raise NotReferred("refer_no_request", ticket.ref)
    return True, [request, *handoff.follow_ups_after(connection, ticket.id, request.inbound_id)]


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
    """Queue the referral of `ticket` to `address` (checked by `referral_problem`), close the
    ticket as referred and queue the citizen's notice to wait for it; `NotReferred` when it
    cannot go as announced (nothing is written then)."""
    first, messages = _carried(connection, ticket, address)
    texts: list[dict[str, Any]] = []
    files: list[CarriedFile] = []
    for message in messages:
        if OVERSIZED in message.flags.split(","):
            when = app.calendar.office_date(message.received_at).isoformat()
            raise NotReferred("refer_oversized", when)
        carried = files_of(message.raw)
        if not carried.complete:
            when = app.calendar.office_date(message.received_at).isoformat()
            raise NotReferred("refer_unreadable", when)
        texts.append(
            {
                "received": message.received_at.astimezone(app.calendar.zone),
                "request": message.inbound_id == messages[0].inbound_id and first,
                "text": parse_message(message.raw).text.strip(),
            }
        )
        files.extend(carried.files)
    built = outgoing.build_referral(
        app,
        ticket,
        address=address,
        values={
            "note": note.rstrip(),
            "sender": sender,
            "first": first,
            "messages": texts,
            "files": [(file.filename, len(file.payload)) for file in files],
        },
        files=files,
        now=now,
    )
    limit = sizes.send_limit(connection, app.settings)
    if limit.too_large(len(built.raw), list(built.file_sizes)):
        over = limit.max_message_bytes or limit.max_file_bytes or 0
        raise NotReferred(
            f"refer_too_large_{limit.source}",
            f"{len(built.raw)}/{over}",
            tuple((file.filename, len(file.payload)) for file in files),
        )
    row = outgoing.queue_referral(
        connection,
        app,
        ticket,
        built,
        address=address,
        dedupe=f"referral:{ticket.ref}:{inbound_id}",
        author=sender,
        inbound_id=inbound_id,
        now=now,
    )
    if row is None:
        return  # this command was applied already: nothing goes twice
    domain = address.rpartition("@")[2]
    follow_ups = len(messages) - 1 if first else len(messages)
    access.record(
        connection,
        now,
        sender,
        "referred_out",
        ticket.ref,
        f"{'request, ' if first else ''}{follow_ups} follow-up(s), requester's name and "
        f"address, and {len(files)} attachment(s) sent to @{domain}",
    )
    citizen_ids, our_ids = citizen_thread(connection, ticket.id)
    outgoing.notice_to_citizen(
        connection,
        app,
        ticket,
        template="referred",
        values={
            "address": address,
            "note": note.rstrip(),
            "first": first,
            "files": [file.filename for file in files],
            "messages": len(messages),
        },
        thread=(*our_ids, *citizen_ids),
        token_ref=ticket.ref,
        purpose="referral_notice",
        dedupe=f"referred:{ticket.ref}:{inbound_id}",
        author=sender,
        inbound_id=inbound_id,
        now=now,
        after_id=row,
    )
    if hold_rows.close_hold(connection, ticket.id, now, sender):
        deadlines.recompute(connection, app, ticket.id, now)  # the hold's days move the deadline
    ticket_rows.set_ticket_fields(
        connection,
        ticket.id,
        now,
        status=TicketStatus.CLOSED.value,
        closed_at=now,
        closed_reason=ClosedReason.REFERRED.value,
    )
    log.info("ticket %s referred to @%s", ticket.ref, domain)
