"""Merging a duplicate into the ticket kept (`#fusionner REF` in a reply on the duplicate),
on the caller's connection.

A merge never lowers a ticket's confidentiality or its clock. The kept ticket takes the
stricter category of the two (a complaint over anything else) and so that category's queue:
a complaint merged into an information request makes the kept ticket a complaint, worked
by the complaints queue only (its staff receive the request; an assignee who is not on it
is unassigned), with the complaint's clock. The earliest receipt keeps the clock: when the
duplicate arrived first, the kept ticket takes its receipt time and, for each commitment
both have, its clock; a commitment met on either ticket is met on the kept one at the
earliest answer. A referred ticket is never merged, either way: the referral answered only
the request it carried.

The duplicate's messages and history join the kept ticket, each message marked with the
ticket it came from, so that a later referral of the kept ticket carries its own request and
follow-ups only (mailbot/tickets/referral.py). The duplicate is closed with the reason `merged`
and names the ticket kept, so mail that quotes its reference (its signed token or its
reference in a subject) lands on the kept ticket, and the report and the digests leave it
out. The citizen is told once which reference to use.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import deadline_rows, handoff, hold_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.sending import to_citizens
from mailbot.standards import authority, deadlines
from mailbot.states import ClosedReason, TicketStatus
from mailbot.tickets import clocks, notices, reclassify

log = logging.getLogger(__name__)


def stricter_category(duplicate: TicketRow, kept: TicketRow) -> str:
    """The kept ticket's category after the merge: a complaint's, if either is one."""
    return "complaint" if "complaint" in (duplicate.category, kept.category) else kept.category


def merge_into(
    connection: Connection,
    app: App,
    duplicate: TicketRow,
    kept: TicketRow,
    *,
    text: str,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """Merge `duplicate` into `kept` (checked by `staff.handoff_rules.merge_problem`) and tell
    the citizen once."""
    thread = to_citizens.thread_of(connection, duplicate.id)
    kept = _take_stricter_category(connection, app, duplicate, kept, sender, inbound_id, now)
    _keep_earliest_clock(connection, app, duplicate, kept, now)
    moved = handoff.move_history(connection, duplicate.id, kept.id)
    hold_rows.close_hold(connection, duplicate.id, now, sender)
    ticket_rows.set_ticket_fields(
        connection,
        duplicate.id,
        now,
        status=TicketStatus.CLOSED.value,
        closed_at=now,
        closed_reason=ClosedReason.MERGED.value,
        merged_into=kept.ref,
    )
    ticket_rows.add_event(
        connection,
        kept.id,
        now,
        "merged_from",
        f"{duplicate.ref}: {moved} message(s) and its history joined this ticket",
        actor=sender,
        inbound_id=inbound_id,
    )
    ticket_rows.add_event(
        connection,
        duplicate.id,
        now,
        "merged_into",
        kept.ref,
        actor=sender,
        inbound_id=inbound_id,
    )
    closed = ticket_rows.ticket_by_id(connection, duplicate.id) or duplicate
    to_citizens.notice_to_citizen(
        connection,
        app,
        closed,
        template="merged",
        values={"kept": kept, "text": text.rstrip()},
        thread=thread,
        token_ref=kept.ref,
        purpose="merge_notice",
        dedupe=f"merged:{duplicate.ref}",
        author=sender,
        inbound_id=inbound_id,
        now=now,
    )
    log.info("ticket %s merged into %s", duplicate.ref, kept.ref)


def _take_stricter_category(
    connection: Connection,
    app: App,
    duplicate: TicketRow,
    kept: TicketRow,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> TicketRow:
    """The kept ticket becomes a complaint when the duplicate is one: its clocks, its queue
    (whose staff receive its request) and its assignee follow (`reclassify.reclassify`). A
    kept ticket already answered is open again: the complaint is not answered yet."""
    category = stricter_category(duplicate, kept)
    if category == kept.category:
        return kept
    previous = authority.queue_of(app.settings, kept)
    reclassify.reclassify(
        connection,
        app,
        kept,
        category,
        actor=sender,
        inbound_id=inbound_id,
        now=now,
        reason=f"merged with {duplicate.ref}, a {duplicate.category}",
    )
    ticket_rows.set_status_where(
        connection, kept.id, now, TicketStatus.OPEN.value, was=TicketStatus.ANSWERED.value
    )
    moved = ticket_rows.ticket_by_id(connection, kept.id) or kept
    notices.notify_handover(
        connection, app, moved, previous, actor=sender, inbound_id=inbound_id, now=now
    )
    return moved


def _keep_earliest_clock(
    connection: Connection, app: App, duplicate: TicketRow, kept: TicketRow, now: datetime
) -> None:
    """The kept ticket's clock runs from the earlier receipt of the two; each commitment
    both tickets have is met at the earlier answer of the two."""
    ours = handoff.clock_rows(connection, kept.id)
    theirs = handoff.clock_rows(connection, duplicate.id)
    duplicate_first = duplicate.received_at < kept.received_at
    adopted: list[datetime] = []
    for commitment, row in ours.items():
        other = theirs.get(commitment)
        if other is None:
            continue
        values: dict[str, object] = {}
        if duplicate_first and other.clock_start <= row.clock_start:
            values.update(
                clock_start=other.clock_start,
                due_date=other.due_date,
                due_at=other.due_at,
                days_on_hold=other.days_on_hold,
            )
        answers = [at for at in (row.met_at, other.met_at) if at is not None]
        if answers and min(answers) != row.met_at:
            values["met_at"] = min(answers)
            kind = next((c.kind for c in app.settings.commitments if c.id == commitment), "")
            if kind in deadlines.MEETS_KINDS["reply"]:
                adopted.append(min(answers))
        if values:
            deadline_rows.update_deadline(connection, row.id, values)
    if adopted:  # the duplicate was answered: so is the request, on the kept ticket
        ticket_rows.mark_answered(connection, kept.id, min(adopted), now)
    if duplicate_first:
        ticket_rows.set_ticket_fields(
            connection,
            kept.id,
            now,
            received_at=duplicate.received_at,
            receipt_date=duplicate.receipt_date,
        )
        clocks.recompute(connection, app, kept.id, now)
