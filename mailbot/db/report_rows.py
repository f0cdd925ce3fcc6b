"""The report's queries: aggregates of the deadline rows as typed rows (reads the database).

SQLAlchemy Core on SQLite and PostgreSQL. Which rows are cases is an SQL expression built here
from a `CaseFilter`; each case's outcome as of an instant is `mailbot.db.outcome`'s translation
of `mailbot.standards.compliance.deadline_outcome`, the one rule the digest counts with too. The
counting
rules are explained in `mailbot.reporting.report` and docs/report-rules.md. The queries run in one
`snapshot`,
so every figure describes the same state. Rows are NamedTuples: typed, immutable, and cheap
to make by the hundred thousand (the case listing).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import mailbot.db.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from mailbot.db.outcome import OutcomeSql, outcome_sql
from mailbot.db.store import reading
from mailbot.standards.business_calendar import BusinessCalendar


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """The cases of a report: clock starts in [since, until], one queue or all, as of `as_of`."""

    since: date
    until: date
    queue: str | None
    as_of: datetime
    excluded_statuses: tuple[str, ...] = ()
    # The commitments counted from the complete request: an open `incomplet` pauses only them
    # (an `attente` pauses every clock of the ticket).
    restarting: tuple[str, ...] = ()
    excluded_reasons: tuple[str, ...] = ()  # closing reasons (`ticket.closed_reason`) left out


class CountRow(NamedTuple):
    """Counts of one (commitment, queue, month of clock start), with the range of reply times."""

    commitment: str
    queue: str
    month: date  # the first day of the month
    cases: int
    met: int
    late: int
    open_late: int
    days_on_hold: int
    cases_with_hold: int
    first_answer: datetime | None
    last_answer: datetime | None


class DelayRow(NamedTuple):
    """Answered cases of one (commitment, queue, clock start, office date of reply, hold days)."""

    commitment: str
    queue: str
    clock_start: date
    reply_day: date
    days_on_hold: int
    cases: int


class CaseRow(NamedTuple):
    """One case, for the listing; `met_at` only when the reply is known as of the report."""

    ref: str
    commitment: str
    queue: str
    clock_start: date
    due_date: date
    met_at: datetime | None
    outcome: str  # met | late | open_late | pending
    days_on_hold: int
    status: str
    first_receipt: date


class IncompleteRow(NamedTuple):
    """One time a listed ticket was declared incomplete, and when it was completed."""

    ref: str
    declared_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Scope:
    """The SQL of one filter: which rows are cases, and each case's outcome as of `as_of`."""

    source: sa.FromClause
    where: tuple[sa.ColumnElement[bool], ...]
    outcome: OutcomeSql


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    tables = SQLModel.metadata.tables
    return tables["ticket"], tables["ticket_deadline"], tables["ticket_hold"]


def _scope(cases: CaseFilter) -> _Scope:
    ticket, deadline, _ = _tables()
    where: list[sa.ColumnElement[bool]] = [
        deadline.c.clock_start >= cases.since,
        deadline.c.clock_start <= cases.until,
    ]
    if cases.excluded_statuses:
        where.append(ticket.c.status.not_in(cases.excluded_statuses))
    if cases.excluded_reasons:
        where.append(
            sa.or_(
                ticket.c.closed_reason.is_(None),
                ticket.c.closed_reason.not_in(cases.excluded_reasons),
            )
        )
    if cases.queue is not None:
        where.append(ticket.c.mailbox == cases.queue)
    return _Scope(
        source=deadline.join(ticket, ticket.c.id == deadline.c.ticket_id),
        where=tuple(where),
        # The outcome rule, in SQL: the same translation the digest counts with.
        outcome=outcome_sql(cases.as_of, restarting=cases.restarting),
    )


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection in which every query sees the same state of the database."""
    with reading(engine) as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for every query, so the figures and the listing agree. (SQLite
            # reads inside one transaction see one state already.)
            connection.execution_options(isolation_level="REPEATABLE READ")
        yield connection


def queue_has_tickets(connection: Connection, queue: str) -> bool:
    """Whether any ticket arrived in `queue` (a queue no longer configured may still have some)."""
    ticket = _tables()[0]
    found = connection.execute(sa.select(ticket.c.id).where(ticket.c.mailbox == queue).limit(1))
    return found.first() is not None


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def count_rows(connection: Connection, cases: CaseFilter) -> list[CountRow]:
    """Counts per (commitment, queue, month of clock start), with the reply-time range."""
    ticket, deadline, _ = _tables()
    scope = _scope(cases)
    inner = (
        sa.select(
            deadline.c.commitment.label("commitment"),
            ticket.c.mailbox.label("queue"),
            sa.extract("year", deadline.c.clock_start).label("year"),
            sa.extract("month", deadline.c.clock_start).label("month"),
            sa.case((scope.outcome.is_met, 1), else_=0).label("met"),
            sa.case((scope.outcome.is_late, 1), else_=0).label("late"),
            sa.case((scope.outcome.is_open_late, 1), else_=0).label("open_late"),
            deadline.c.days_on_hold.label("days_on_hold"),
            sa.case((scope.outcome.is_answered, deadline.c.met_at)).label("answered_at"),
        )
        .select_from(scope.source)
        .where(*scope.where)
        .subquery()
    )
    keys = (inner.c.commitment, inner.c.queue, inner.c.year, inner.c.month)
    query = sa.select(
        *keys,
        sa.func.count().label("cases"),
        sa.func.sum(inner.c.met).label("met"),
        sa.func.sum(inner.c.late).label("late"),
        sa.func.sum(inner.c.open_late).label("open_late"),
        sa.func.sum(inner.c.days_on_hold).label("days_on_hold"),
        _count_if(inner.c.days_on_hold > 0).label("cases_with_hold"),
        sa.func.min(inner.c.answered_at).label("first_answer"),
        sa.func.max(inner.c.answered_at).label("last_answer"),
    ).group_by(*keys)
    return [
        CountRow(
            commitment=row.commitment,
            queue=row.queue,
            month=date(int(row.year), int(row.month), 1),
            cases=int(row.cases),
            met=int(row.met),
            late=int(row.late),
            open_late=int(row.open_late),
            days_on_hold=int(row.days_on_hold),
            cases_with_hold=int(row.cases_with_hold),
            first_answer=row.first_answer,
            last_answer=row.last_answer,
        )
        for row in connection.execute(query)
    ]


def delay_rows(
    connection: Connection,
    cases: CaseFilter,
    calendar: BusinessCalendar,
    first: datetime,
    last: datetime,
) -> list[DelayRow]:
    """Answered cases counted per (commitment, queue, clock start, reply date, days on hold).

    `first` and `last` bound the reply instants (from `count_rows`): the office date of a reply
    is computed in SQL for that range.
    """
    ticket, deadline, _ = _tables()
    scope = _scope(cases)
    reply_day = office_date_sql(deadline.c.met_at, connection.dialect.name, calendar, first, last)
    inner = (
        sa.select(
            deadline.c.commitment.label("commitment"),
            ticket.c.mailbox.label("queue"),
            deadline.c.clock_start.label("clock_start"),
            reply_day.label("reply_day"),
            deadline.c.days_on_hold.label("days_on_hold"),
        )
        .select_from(scope.source)
        .where(*scope.where, scope.outcome.is_answered)
        .subquery()
    )
    keys = tuple(inner.c)
    query = sa.select(*keys, sa.func.count().label("cases")).group_by(*keys)
    return [
        DelayRow(
            commitment=row.commitment,
            queue=row.queue,
            clock_start=_as_date(row.clock_start),
            reply_day=_as_date(row.reply_day),
            days_on_hold=int(row.days_on_hold),
            cases=int(row.cases),
        )
        for row in connection.execute(query)
    ]


def _as_date(value: date | str) -> date:
    """A date column of a grouped row: SQLite gives the ISO text of `date()` back as is."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def case_rows(connection: Connection, cases: CaseFilter) -> Iterator[CaseRow]:
    """Every case, by commitment, queue, clock start and reference."""
    ticket, deadline, _ = _tables()
    scope = _scope(cases)
    query = (
        sa.select(
            ticket.c.ref,
            deadline.c.commitment,
            ticket.c.mailbox,
            deadline.c.clock_start,
            deadline.c.due_date,
            sa.case((scope.outcome.is_answered, deadline.c.met_at)).label("met_at"),
            scope.outcome.outcome.label("outcome"),
            deadline.c.days_on_hold,
            ticket.c.status,
            ticket.c.receipt_date,
        )
        .select_from(scope.source)
        .where(*scope.where)
        .order_by(deadline.c.commitment, ticket.c.mailbox, deadline.c.clock_start, ticket.c.ref)
    )
    for row in connection.execute(query):
        yield CaseRow(
            ref=row.ref,
            commitment=row.commitment,
            queue=row.mailbox,
            clock_start=row.clock_start,
            due_date=row.due_date,
            met_at=row.met_at,
            outcome=row.outcome,
            days_on_hold=row.days_on_hold,
            status=row.status,
            first_receipt=row.receipt_date,
        )


def incomplete_rows(connection: Connection, cases: CaseFilter) -> Iterator[IncompleteRow]:
    """Each `incomplet` declaration of the tickets that have a case, by ticket and time."""
    ticket, deadline, hold = _tables()
    scope = _scope(cases)
    listed = sa.select(deadline.c.ticket_id).select_from(scope.source).where(*scope.where)
    query = (
        sa.select(ticket.c.ref, hold.c.started_at, hold.c.ended_at)
        .select_from(hold.join(ticket, ticket.c.id == hold.c.ticket_id))
        .where(hold.c.kind == "incomplete")
        .where(hold.c.ticket_id.in_(listed))
        .order_by(ticket.c.ref, hold.c.started_at, hold.c.id)
    )
    for row in connection.execute(query):
        yield IncompleteRow(row.ref, row.started_at, row.ended_at)


def office_date_sql(
    column: sa.ColumnElement[datetime],
    dialect: str,
    calendar: BusinessCalendar,
    first: datetime,
    last: datetime,
) -> sa.ColumnElement[Any]:
    """SQL for the office-time date of a UTC instant column whose values lie in [first, last].

    PostgreSQL converts with its own time-zone database. SQLite has none, so the zone's UTC
    offsets over [first, last] become a ``CASE`` on the instant and ``date(column, '±N
    seconds')`` applies them; the result is then an ISO date string.
    """
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone(calendar.zone.key, column), sa.Date)
    if dialect != "sqlite":
        raise NotImplementedError(f"the report supports SQLite and PostgreSQL, not {dialect}")
    segments = offset_segments(calendar, first, last)
    modifiers = [f"{seconds:+d} seconds" for _, seconds in segments]
    # SQLite's date functions round the stored text ("YYYY-MM-DD HH:MM:SS.ffffff") to the
    # millisecond, so the last half millisecond of a day would be dated the next day; cut to
    # whole seconds, which never cross midnight.
    instant = sa.func.substr(column, 1, 19)
    if len(segments) == 1:
        return sa.func.date(instant, modifiers[0])
    shift = sa.case(
        *[(column < starts, modifiers[index]) for index, (starts, _) in enumerate(segments[1:])],
        else_=modifiers[-1],
    )
    return sa.func.date(instant, shift)


def offset_segments(
    calendar: BusinessCalendar, first: datetime, last: datetime
) -> list[tuple[datetime, int]]:
    """The office zone's UTC offset (seconds) from `first` to `last`: (from instant, offset)."""

    def offset(instant: datetime) -> int:
        value = instant.astimezone(calendar.zone).utcoffset()
        assert value is not None
        return int(value.total_seconds())

    segments = [(first, offset(first))]
    day = first
    while day < last:
        following = min(day + timedelta(days=1), last)
        if offset(following) != offset(day):
            low, high = day, following
            while high - low > timedelta(microseconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            segments.append((high, offset(high)))
        day = following
    return segments
