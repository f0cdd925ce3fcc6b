"""Referring a request to the body it belongs to (`#référer : ADRESSE`), on the caller's
connection.

A referral sends what it announces. The first referral of a ticket to a body carries the
citizen's own request and every follow-up of theirs since (never a merged duplicate's: see
mailbot/tickets/merge.py); a later one to the same body carries the follow-ups received since
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
the ticket's reply and result clocks at the referral's instant (`clocks.meet_sent`); a
refusal for good reopens the ticket and tells its author (mailbot/tickets/failures.py). The
personal information leaving the ministry is written in the access trail.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, handoff, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.parse import CarriedFile, files_of, parse_message
from mailbot.sending import referral_mail, sizes, to_citizens
from mailbot.states import ClosedReason, TicketStatus
from mailbot.tickets import clocks
from mailbot.tickets.facts import OVERSIZED

log = logging.getLogger(__name__)


class NotReferred(Exception):
    """The referral cannot go as announced: (code, argument) for `templates/_refusal.j2`, and
    the files concerned (name, bytes) when its size is the reason."""

    def __init__(self, code: str, argument: str = "", files: tuple[tuple[str, int], ...] = ()):
        super().__init__(code)
        self.code = code
        self.argument = argument
        self.files = files


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
    """Queue the referral of `ticket` to `address` (checked by
    `staff.handoff_rules.referral_problem`), close the
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
    built = referral_mail.build_referral(
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
    row = referral_mail.queue_referral(
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
    to_citizens.notice_to_citizen(
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
        thread=to_citizens.thread_of(connection, ticket.id),
        token_ref=ticket.ref,
        purpose="referral_notice",
        dedupe=f"referred:{ticket.ref}:{inbound_id}",
        author=sender,
        inbound_id=inbound_id,
        now=now,
        after_id=row,
    )
    clocks.end_hold(connection, app, ticket, now, now, actor=sender)  # its days move the deadline
    ticket_rows.set_ticket_fields(
        connection,
        ticket.id,
        now,
        status=TicketStatus.CLOSED.value,
        closed_at=now,
        closed_reason=ClosedReason.REFERRED.value,
    )
    log.info("ticket %s referred to @%s", ticket.ref, domain)
