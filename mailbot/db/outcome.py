"""A deadline row's outcome as of an instant, in SQL: `mailbot.standards.compliance` translated
(reads).

The digest's month counts and the report's figures are counted in the database (a year holds
a few hundred thousand deadline rows), so the rule of
`mailbot.standards.compliance.deadline_outcome`
is written here once more, as SQL expressions over ``ticket_deadline`` and ``ticket_hold``,
one clause per small rule of that module and under the same names. The digest and the
reminders (`mailbot.db.job_rows`), the report (`mailbot.db.report_rows`) and the metrics
(`mailbot.db.backlog`) build their queries from this one translation;
tests/standards/test_outcome_properties.py checks it against `deadline_outcome` over random
histories
(replies and holds before, at and after the due instant). Change the rule there and here
together.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from mailbot.db.models import DEADLINE, HOLD
from mailbot.standards.compliance import Outcome


@dataclass(frozen=True, slots=True)
class OutcomeSql:
    """The outcome of each ``ticket_deadline`` row as of one instant, as SQL expressions."""

    is_answered: sa.ColumnElement[bool]
    is_met: sa.ColumnElement[bool]
    is_late: sa.ColumnElement[bool]
    is_paused: sa.ColumnElement[bool]
    is_open_late: sa.ColumnElement[bool]
    outcome: sa.ColumnElement[str]


def outcome_sql(as_of: datetime, *, restarting: Collection[str] = ()) -> OutcomeSql:
    """The rule of `mailbot.standards.compliance.deadline_outcome` as of `as_of`, for a query over
    ``ticket_deadline`` (the holds are looked up by the row's ticket). A hold of kind
    "incomplete" pauses only the commitments counted from the complete request
    (`restarting`, `Settings.restarting_commitments`); a wait (`attente`) pauses them all."""
    met_at, due_at = DEADLINE.c.met_at, DEADLINE.c.due_at
    is_answered = sa.and_(met_at.is_not(None), met_at <= as_of)  # compliance.is_answered
    is_on_time = met_at < due_at  # compliance.is_on_time
    has_passed = due_at <= as_of  # compliance.has_passed
    is_paused = (  # compliance.is_paused
        sa.exists()
        .where(HOLD.c.ticket_id == DEADLINE.c.ticket_id)
        .where(HOLD.c.started_at <= as_of)
        .where(HOLD.c.started_at < due_at)
        .where(sa.or_(HOLD.c.ended_at.is_(None), HOLD.c.ended_at > as_of))
        .where(sa.or_(HOLD.c.kind != "incomplete", DEADLINE.c.commitment.in_(list(restarting))))
    )
    is_met = sa.and_(is_answered, is_on_time)
    is_late = sa.and_(is_answered, sa.not_(is_on_time))
    is_open_late = sa.and_(sa.not_(is_answered), has_passed, sa.not_(is_paused))
    outcome = sa.case(
        (is_met, Outcome.MET.value),
        (is_late, Outcome.LATE.value),
        (is_open_late, Outcome.OPEN_LATE.value),
        else_=Outcome.PENDING.value,
    )
    return OutcomeSql(
        is_answered=is_answered,
        is_met=is_met,
        is_late=is_late,
        is_paused=is_paused,
        is_open_late=is_open_late,
        outcome=outcome,
    )
