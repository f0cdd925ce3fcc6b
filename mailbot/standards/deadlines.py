"""The service-standard clocks of tickets: commitments, deadlines, holds, result clocks, the
restart from the complete request, and meeting a deadline when an answer leaves.

Which commitments a category has, when each clock starts and when it is due are decided here
(the counting itself is `BusinessCalendar`'s); the rows are written through
`mailbot.db.deadline_rows` and `mailbot.db.hold_rows` on the caller's connection, inside the
transaction of whatever changed the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import deadline_rows, hold_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.intake.decide import NewTicket
from mailbot.settings import Settings
from mailbot.standards.business_calendar import BusinessCalendar, Deadline, Hold
from mailbot.states import TicketStatus

# The commitments of each category when no mailbox of that category says otherwise.
CATEGORY_COMMITMENTS: Mapping[str, tuple[str, ...]] = {
    "information": ("ack", "info_reply"),
    "complaint": ("ack", "complaint_reply"),
    "internship": ("internship_ack", "internship_result"),
    "cooperation": ("cooperation_ack", "cooperation_result"),
}

# What leaving the building means for a ticket: the column stamped the first time, and the
# kinds of commitment an outgoing message of that purpose meets.
# A referral is the response: its acceptance by the relay meets the reply and result clocks.
STAMPS: Mapping[str, str] = {
    "acknowledgement": "acknowledged_at",
    "reply": "answered_at",
    "referral": "answered_at",
}
MEETS_KINDS: Mapping[str, tuple[str, ...]] = {
    "acknowledgement": ("acknowledgement",),
    "reply": ("reply", "result"),
    "referral": ("reply", "result"),
}


def commitments_for(settings: Settings, category: str) -> tuple[str, ...]:
    """The commitments of a category: from the mailbox of that category, else the defaults."""
    mailbox = settings.mailbox_of_category(category)
    return mailbox.commitments if mailbox else CATEGORY_COMMITMENTS.get(category, ("ack",))


def receipt_deadlines(
    settings: Settings,
    calendar: BusinessCalendar,
    category: str,
    received_at: datetime,
    holds: Sequence[Hold],
    as_of: datetime,
    *,
    completeness: Completeness | None = None,
) -> dict[str, Deadline]:
    """The deadline of each commitment of `category` whose clock starts at receipt, moved by
    `holds` (the `attente` pauses) as known at `as_of`. A commitment counted from the complete
    request starts instead at the last completion when the request was declared incomplete,
    and an open `incomplet` pauses it. Result clocks start later, at a date staff give."""
    state = completeness or Completeness()
    deadlines = {}
    for commitment_id in commitments_for(settings, category):
        commitment = settings.commitment(commitment_id)
        if commitment.starts_at != "receipt":
            continue
        start, pauses = received_at, holds
        if commitment.from_complete_request:
            start = state.completed_at or received_at
            pauses = (*holds, *state.open_spell)
        deadlines[commitment.id] = calendar.deadline_with_holds(
            start, commitment.business_days, pauses, as_of
        )
    return deadlines


@dataclass(frozen=True, slots=True)
class Completeness:
    """What the `incomplet` history means for the clocks: the instant the request was last
    completed (None: never declared incomplete, or not completed yet), and the declaration
    still open, if any (a pause until the request is complete)."""

    completed_at: datetime | None = None
    open_spell: tuple[Hold, ...] = ()


def completeness_of(spells: Sequence[Hold]) -> Completeness:
    """From the ticket's `incomplet` declarations (holds of kind "incomplete")."""
    ended = [spell.end for spell in spells if spell.end is not None]
    return Completeness(
        completed_at=max(ended) if ended else None,
        open_spell=tuple(spell for spell in spells if spell.end is None),
    )


def restarting(settings: Settings, category: str) -> tuple[str, ...]:
    """The commitments of `category` counted from the complete request."""
    return tuple(
        c
        for c in commitments_for(settings, category)
        if settings.commitment(c).from_complete_request
    )


def reply_due_date(settings: Settings, deadlines: Mapping[str, Deadline]) -> date | None:
    """The date promised to the citizen: that of the commitment of kind "reply", if any."""
    for commitment_id, deadline in deadlines.items():
        if settings.commitment(commitment_id).kind == "reply":
            return deadline.due_date
    return None


def deadline_values(deadline: Deadline) -> dict[str, object]:
    """The columns of a deadline row for `deadline`."""
    return {
        "clock_start": deadline.receipt_day,
        "due_date": deadline.due_date,
        "due_at": deadline.due_at,
        "days_on_hold": deadline.days_on_hold,
    }


def result_commitment(settings: Settings, category: str, starts: str) -> str | None:
    """The programme result commitment a staff date starts (`starts`: "interview" or
    "committee"), when `category` has it."""
    wanted = "internship_result" if starts == "interview" else "cooperation_result"
    return wanted if wanted in commitments_for(settings, category) else None


def open_ticket(connection: Connection, app: App, new: NewTicket, now: datetime) -> TicketRow:
    """Open a ticket with the deadline of every commitment its category has from receipt."""
    settings, calendar = app.settings, app.calendar
    # The year of arrival in office time, even when the receipt day rolls into January.
    year = calendar.office_date(new.received_at).year
    ref = ticket_rows.allocate_ref(connection, settings.organisation.ticket_prefix, year)
    deadlines = receipt_deadlines(settings, calendar, new.category, new.received_at, (), now)
    ticket = ticket_rows.insert_ticket(
        connection,
        {
            "ref": ref,
            "mailbox": new.mailbox,
            "category": new.category,
            "requester": new.requester,
            "requester_name": new.requester_name,
            "language": new.language,
            "subject": new.subject,
            "received_at": new.received_at,
            "receipt_date": calendar.receipt_day(new.received_at),
            "due_date": reply_due_date(settings, deadlines),
        },
        now,
    )
    deadline_rows.insert_deadlines(
        connection, ticket.id, {c: deadline_values(d) for c, d in deadlines.items()}
    )
    return ticket


def recompute(connection: Connection, app: App, ticket_id: int, now: datetime) -> None:
    """Recompute every receipt-started deadline of a ticket from its original receipt time
    (or, for the commitments counted from the complete request, the instant it was last
    completed), its current category and its holds; deadlines already met keep their row, and
    those of commitments the category no longer has go."""
    settings = app.settings
    ticket = ticket_rows.ticket_by_id(connection, ticket_id)
    assert ticket is not None
    existing = deadline_rows.deadlines_of(connection, ticket.id)
    deadlines = receipt_deadlines(
        settings,
        app.calendar,
        ticket.category,
        ticket.received_at,
        hold_rows.holds_of(connection, ticket.id),
        now,
        completeness=completeness_of(
            hold_rows.holds_of(connection, ticket.id, hold_rows.INCOMPLETE)
        ),
    )
    for commitment_id, deadline in deadlines.items():
        row = existing.get(commitment_id)
        if row is None:
            deadline_rows.insert_deadlines(
                connection, ticket.id, {commitment_id: deadline_values(deadline)}
            )
        elif row.met_at is None:
            deadline_rows.update_deadline(connection, row.id, deadline_values(deadline))
    wanted = set(commitments_for(settings, ticket.category))
    deadline_rows.delete_deadlines(
        connection,
        ticket.id,
        [c for c, row in existing.items() if c not in wanted and row.met_at is None],
    )
    # Without a reply commitment (programme queues), the result clock staff started is promised.
    due_date = reply_due_date(settings, deadlines) or next(
        (
            row.due_date
            for c, row in existing.items()
            if c in wanted
            and c not in deadlines
            and settings.commitment(c).kind != "acknowledgement"
        ),
        None,
    )
    ticket_rows.set_due_date(connection, ticket.id, due_date, now)


def start_hold(
    connection: Connection, ticket: TicketRow, reason: str, actor: str, now: datetime
) -> None:
    """Pause the ticket's clocks: the ministry waits on the citizen."""
    hold_rows.open_hold(connection, ticket.id, now, reason, actor)
    ticket_rows.set_ticket_fields(connection, ticket.id, now, status=TicketStatus.ON_HOLD.value)


def end_hold(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    at: datetime,
    now: datetime,
    *,
    actor: str,
    inbound_id: int | None,
) -> bool:
    """End the open hold at `at` (the information's arrival) and move the deadlines by the
    business days it lasted; False when no hold was open."""
    if not hold_rows.close_hold(connection, ticket.id, at, actor):
        return False
    if ticket.status == TicketStatus.ON_HOLD:
        ticket_rows.set_ticket_fields(connection, ticket.id, now, status=TicketStatus.OPEN.value)
    recompute(connection, app, ticket.id, now)
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "hold_ended",
        "the requester wrote back",
        actor=actor,
        inbound_id=inbound_id,
    )
    return True


def start_result_clock(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    commitment_id: str,
    start: date,
    now: datetime,
) -> None:
    """Start a programme's result clock on the date staff gave (interview, committee)."""
    commitment = app.settings.commitment(commitment_id)
    deadline = app.calendar.deadline_from_day(start, commitment.business_days)
    deadline_rows.set_deadline(
        connection, ticket.id, commitment_id, {**deadline_values(deadline), "days_on_hold": 0}
    )
    ticket_rows.set_due_date(connection, ticket.id, deadline.due_date, now)


def meet(
    connection: Connection, settings: Settings, ticket_id: int, purpose: str, at: datetime
) -> None:
    """An acknowledgement or a reply was sent: stamp the ticket at `at` (the first time), mark
    it answered, and meet its open deadlines of the matching commitments. `at` is the relay's
    acceptance for an acknowledgement, and for a staff reply the instant staff answered
    (`outbox.met_at`): a resend after a crash or a relay outage does not move it."""
    kinds = MEETS_KINDS.get(purpose)
    if kinds is None:
        return
    ticket_rows.stamp_first(connection, ticket_id, STAMPS[purpose], at)
    if purpose == "reply":
        ticket_rows.set_status_where(
            connection, ticket_id, at, TicketStatus.ANSWERED.value, was=TicketStatus.OPEN.value
        )
    met = [c.id for c in settings.commitments if c.kind in kinds]
    deadline_rows.meet_deadlines(connection, ticket_id, met, at)
