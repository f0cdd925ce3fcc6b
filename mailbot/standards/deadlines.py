"""The rules of the service-standard clocks (pure): which commitments a category has, when each
clock starts and when it is due, the restart from the complete request, and what an answer
leaving the building meets.

The counting itself is `BusinessCalendar`'s; the rows are written by `mailbot.tickets.clocks`
(and, when the relay accepts an answer, by `mailbot.tickets.clocks.meet_sent`, the outbox's
`on_sent`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from mailbot.settings import Settings
from mailbot.standards.business_calendar import BusinessCalendar, Deadline, Hold

# The commitments of each category when no mailbox of that category says otherwise.
CATEGORY_COMMITMENTS: Mapping[str, tuple[str, ...]] = {
    "information": ("ack", "info_reply"),
    "complaint": ("ack", "complaint_reply"),
    "internship": ("internship_ack", "internship_result"),
    "cooperation": ("cooperation_ack", "cooperation_result"),
}

# What leaving the building means for a ticket: the column stamped the first time (a staff
# reply marks the ticket answered instead, which stamps answered_at too), and the kinds of
# commitment an outgoing message of that purpose meets.
# A referral is the response: its acceptance by the relay meets the reply and result clocks.
STAMPS: Mapping[str, str] = {
    "acknowledgement": "acknowledged_at",
    "referral": "answered_at",
}
MEETS_KINDS: Mapping[str, tuple[str, ...]] = {
    "acknowledgement": ("acknowledgement",),
    "reply": ("reply", "result"),
    "referral": ("reply", "result"),
}
# The purposes whose acceptance meets the deadlines at the instant staff acted (the row was
# queued), however late the relay took it; the others meet them at the relay's acceptance.
MET_WHEN_QUEUED = frozenset({"reply", "referral"})


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
