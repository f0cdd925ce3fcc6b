"""One verdict per deadline: the digest's month counts equal the report's (property).

`mailbot.standards.compliance.deadline_outcome` is the rule; the digest and the report count in SQL
with
its translation, `mailbot.db.outcome`. Random histories of one queue's cases, all due in March
2026: replies before, at and after the due instant, none at all, holds that begin before, at
or after the deadline and are still open or ended, and an "as of" instant that is often the
due instant itself, a reply or a hold boundary. For the same cases and the same instant, the
supervisors' digest (`mailbot.db.job_rows.month_compliance`) and the compliance report
(`mailbot.reporting.report.build_report`) must count the same met, late, open and late, and pending
cases, and each case's outcome in the report's listing must be the one `deadline_outcome`
gives; the reminders' and escalations' reading and the metrics' overdue count must agree too.
A real SQLite database in a temporary folder (PostgreSQL with MAILBOT_TEST_POSTGRES_URL set),
one schema for every example (the rows are replaced each time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from mailbot.db import job_rows
from mailbot.db.backlog import backlog
from mailbot.db.models import DEADLINE, HOLD, TICKET
from mailbot.db.store import make_engine, migrate
from mailbot.reporting.report import ReportRequest, build_report
from mailbot.settings import Settings, load_settings
from mailbot.standards.business_calendar import BusinessCalendar, Hold, build_calendar
from mailbot.standards.compliance import Outcome, count_outcomes, deadline_outcome, has_passed
from mailbot.standards.due_jobs import is_running
from tests.conftest import postgres_database

REPO = Path(__file__).resolve().parents[2]
QUEUE = "renseignements"
MONTH = date(2026, 3, 1)
OUTCOMES = ("met", "late", "open_late", "pending")
SETTINGS: Settings = load_settings(REPO / "config" / "mailbot.toml", environ={})
CALENDAR: BusinessCalendar = build_calendar(SETTINGS.calendar, SETTINGS.organisation.timezone)
DUE_DAYS = [
    MONTH + timedelta(days=n)
    for n in range(31)
    if CALENDAR.is_business_day(MONTH + timedelta(days=n))
]
# Offsets from the due instant that sit on the boundary, or close to it on either side.
SECOND = timedelta(seconds=1)
EDGES = [timedelta(0), -SECOND, SECOND, -timedelta(days=1), timedelta(days=1)]
offsets = st.one_of(
    st.sampled_from(EDGES),
    st.integers(-5 * 24 * 3600, 5 * 24 * 3600).map(lambda s: timedelta(seconds=s)),
)


@dataclass(frozen=True, slots=True)
class History:
    """One case: its deadline, the reply (if any), its holds and the ticket's status now."""

    commitment: str
    due_date: date
    met_at: datetime | None
    holds: tuple[tuple[datetime, datetime | None], ...]
    status: str

    @property
    def due_at(self) -> datetime:
        return CALENDAR.end_of_day(self.due_date)

    def outcome(self, as_of: datetime) -> Outcome:
        """What the rule says, from the history itself (no database)."""
        holds = [Hold(start=start, end=end) for start, end in self.holds]
        return deadline_outcome(self.due_at, self.met_at, holds, as_of)


@st.composite
def histories(draw: st.DrawFn) -> History:
    due_date = draw(st.sampled_from(DUE_DAYS))
    due_at = CALENDAR.end_of_day(due_date)
    met_at = draw(st.none() | offsets.map(lambda offset: due_at + offset))
    holds: list[tuple[datetime, datetime | None]] = []
    # One open hold at most (the application never opens a second while one lasts).
    for index in range(draw(st.integers(0, 2))):
        start = due_at + draw(offsets)
        lasts = draw(st.none() | st.integers(0, 6 * 24 * 3600)) if index == 0 else None
        end = None if lasts is None else start + timedelta(seconds=lasts)
        if index == 1 and holds and holds[0][1] is None:
            end = start + timedelta(hours=1)
        holds.append((start, end))
    if any(end is None for _, end in holds):
        status = "on_hold"
    elif met_at is not None:
        status = draw(st.sampled_from(["answered", "closed", "open"]))
    else:
        status = draw(st.sampled_from(["open", "closed"]))
    commitment = draw(st.sampled_from(["ack", "info_reply"]))
    return History(commitment, due_date, met_at, tuple(holds), status)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[History], datetime]:
    """Cases and the instant to count them as of, often one of their own boundaries."""
    cases = draw(st.lists(histories(), min_size=1, max_size=6))
    moments = [case.due_at for case in cases]
    moments += [case.met_at for case in cases if case.met_at is not None]
    for case in cases:
        for start, end in case.holds:
            moments += [start] + ([end] if end is not None else [])
    base = draw(st.sampled_from(moments))
    nudge = draw(st.sampled_from([timedelta(0), timedelta(0), -SECOND, SECOND]))
    return cases, base + nudge


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """SQLite in a temporary folder; PostgreSQL with MAILBOT_TEST_POSTGRES_URL set."""
    with ExitStack() as stack:
        admin_url = os.environ.get("MAILBOT_TEST_POSTGRES_URL")
        if admin_url:
            url = stack.enter_context(postgres_database(admin_url))
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('outcomes') / 'mailbot.db'}"
        built = make_engine(url)
        migrate(built)
        yield built
        built.dispose()


def store(engine: Engine, cases: list[History]) -> None:
    """Replace every ticket with one ticket per case, its deadline row and its holds."""
    with engine.begin() as connection:
        for table in (HOLD, DEADLINE, TICKET):
            connection.execute(sa.delete(table))
        for number, case in enumerate(cases, start=1):
            clock_start = case.due_date - timedelta(days=14)
            received = datetime(
                clock_start.year, clock_start.month, clock_start.day, 15, tzinfo=UTC
            )
            connection.execute(
                sa.insert(TICKET).values(
                    id=number,
                    ref=f"MRI-2026-{number:06d}",
                    mailbox=QUEUE,
                    category="information",
                    status=case.status,
                    requester=f"citoyen{number}@example.org",
                    language="fr",
                    received_at=received,
                    receipt_date=clock_start,
                    created_at=received,
                    updated_at=received,
                )
            )
            connection.execute(
                sa.insert(DEADLINE).values(
                    ticket_id=number,
                    commitment=case.commitment,
                    clock_start=clock_start,
                    due_date=case.due_date,
                    due_at=case.due_at,
                    met_at=case.met_at,
                    days_on_hold=0,
                )
            )
            for start, end in case.holds:
                connection.execute(
                    sa.insert(HOLD).values(ticket_id=number, started_at=start, ended_at=end)
                )


def digest_counts(engine: Engine, as_of: datetime) -> dict[str, dict[str, int]]:
    with engine.connect() as connection:
        counts = job_rows.month_compliance(
            connection, SETTINGS, SETTINGS.mailbox(QUEUE), MONTH, as_of
        )
    return {commitment: dict(values) for commitment, values in counts.items()}


def report_counts(
    engine: Engine, as_of: datetime
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """The report's counts per commitment, and the outcome of each case by reference."""
    request = ReportRequest(
        since=date(2026, 1, 1), until=date(2026, 12, 31), queue=QUEUE, details=True
    )
    report = build_report(engine, SETTINGS, CALENDAR, request, as_of=as_of)
    counts = {
        line.commitment: {name: getattr(line.total.figures, name) for name in OUTCOMES}
        for line in report.commitments
        if line.total.figures.cases
    }
    return counts, {case.ref: case.outcome for case in report.cases}


def expected_counts(cases: list[History], as_of: datetime) -> dict[str, dict[str, int]]:
    counts = {}
    for commitment in sorted({case.commitment for case in cases}):
        outcomes = count_outcomes(
            case.outcome(as_of) for case in cases if case.commitment == commitment
        )
        counts[commitment] = {name: getattr(outcomes, name) for name in OUTCOMES}
    return counts


@hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_the_digest_and_the_report_count_the_same_outcomes(
    engine: Engine, scenario: tuple[list[History], datetime]
) -> None:
    cases, as_of = scenario
    store(engine, cases)

    digest = digest_counts(engine, as_of)
    report, listing = report_counts(engine, as_of)

    assert digest == report
    assert report == expected_counts(cases, as_of)
    assert listing == {
        f"MRI-2026-{number:06d}": case.outcome(as_of).value
        for number, case in enumerate(cases, start=1)
    }


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_reminders_escalations_and_metrics_see_the_same_outcome(
    engine: Engine, scenario: tuple[list[History], datetime]
) -> None:
    """What the jobs read (`open_deadlines`) and call overdue (passed, clock running), and
    what the metrics count as overdue, are exactly the open and late cases of tickets not
    closed; answered cases are not read."""
    cases, as_of = scenario
    store(engine, cases)
    with engine.connect() as connection:
        found = {
            d.ref: d for d in job_rows.open_deadlines(connection, ["ack", "info_reply"], as_of)
        }
        seen = backlog(connection, as_of, CALENDAR.office_date(as_of), braking=False)

    overdue: dict[str, int] = {}
    for case in cases:
        if case.status != "closed" and case.outcome(as_of) is Outcome.OPEN_LATE:
            overdue[case.commitment] = overdue.get(case.commitment, 0) + 1
    assert seen.overdue == overdue

    for number, case in enumerate(cases, start=1):
        ref, outcome = f"MRI-2026-{number:06d}", case.outcome(as_of)
        if case.status == "closed" or outcome in (Outcome.MET, Outcome.LATE):
            assert ref not in found
            continue
        read = found[ref]
        is_overdue = has_passed(read.due_at, as_of) and is_running(read, as_of)
        assert is_overdue == (outcome is Outcome.OPEN_LATE)


@pytest.mark.parametrize(
    ("reply", "holds", "as_of", "outcome"),
    [
        # Answered at 23:59:59 on the due day: met. At the due instant (midnight): late.
        (-SECOND, (), SECOND, Outcome.MET),
        (timedelta(0), (), SECOND, Outcome.LATE),
        # Unanswered: pending up to the last second of the due day, late from the due instant.
        (None, (), -SECOND, Outcome.PENDING),
        (None, (), timedelta(0), Outcome.OPEN_LATE),
        # A reply recorded after the instant counted is not known yet.
        (-timedelta(days=1), (), -timedelta(days=2), Outcome.PENDING),
        # A hold that began before the deadline and is still open pauses the clock ...
        (None, ((-SECOND, None),), timedelta(days=3), Outcome.PENDING),
        # ... not once it has ended (the stored due_at then already includes the pause) ...
        (None, ((-SECOND, timedelta(days=1)),), timedelta(days=3), Outcome.OPEN_LATE),
        # ... and a hold that began at or after the deadline does not un-miss it.
        (None, ((timedelta(0), None),), timedelta(days=3), Outcome.OPEN_LATE),
        (None, ((timedelta(hours=10), None),), timedelta(days=3), Outcome.OPEN_LATE),
    ],
)
def test_the_due_instant_and_holds(
    reply: timedelta | None,
    holds: tuple[tuple[timedelta, timedelta | None], ...],
    as_of: timedelta,
    outcome: Outcome,
) -> None:
    due_at = CALENDAR.end_of_day(date(2026, 3, 2))
    paused = [
        Hold(start=due_at + start, end=None if end is None else due_at + end)
        for start, end in holds
    ]
    met_at = None if reply is None else due_at + reply
    assert deadline_outcome(due_at, met_at, paused, due_at + as_of) == outcome
