"""Met, late, open and late or pending, and whether a target is met: the one rule (pure).

The supervisors' digest, the compliance report, the reminders and the metrics all decide a
deadline's outcome here, with `deadline_outcome`; docs/report-rules.md explains the rule for
readers of the figures. (The report and the digest count in SQL, for speed: their SQL is
`mailbot.db.outcome`, a clause-by-clause translation of the small rules below, which
tests/standards/test_outcome_properties.py checks against `deadline_outcome` over random histories.)

One case, as of an instant ``as_of``:

* **answered** when a reply was recorded (``met_at``) at or before ``as_of``; a reply recorded
  later is not known yet, so a replayed report shows what was known then;
* **met** when answered before the deadline instant ``due_at``, the end of the due day in
  office time: a reply at 23:59:59 on the due day meets it, a reply at ``due_at`` itself (the
  next day's midnight) is late;
* **passed** from ``due_at`` on: at the due instant itself the due day is over, so a case still
  unanswered is late then, exactly when any reply sent from then on would be late;
* **paused** while a hold that began before ``due_at`` is still open at ``as_of``: the clock is
  stopped, the deadline will move. A hold that began at or after ``due_at`` pauses nothing: the
  deadline was already missed, and asking the citizen for something does not un-miss it.

So: ``met`` (answered, on time), ``late`` (answered after the deadline), ``open_late`` (not
answered, passed, not paused), otherwise ``pending``.

A commitment's **rate** is ``met / decided``, where *decided* counts the cases whose outcome
is known (met, late, open and late; pending cases are left out). The **target is met** when
the rate is at least the commitment's target, compared exactly, with no rounding and no
floating-point product: 55 met out of 100 meets a 55 % target, 19 out of 20 meets 95 %.

Targets come from the TOML configuration as floats. A float such as ``0.55`` is not 55/100
but the nearest binary fraction to it (a little above), so ``55 >= 0.55 * 100`` is false.
The target is therefore read back as the decimal that was written, the shortest decimal that
gives that float (``repr``), and compared as an exact fraction: ``0.55`` is 11/20. A float
computed rather than written (``0.1 + 0.2``) is taken as the decimal it prints as
(``0.30000000000000004``), never rounded to a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from mailbot.standards.business_calendar import Hold
from mailbot.states import ClosedReason

# Ticket statuses whose cases are left out of every figure, in the report and the digest alike.
# None exists yet (withdrawn requests have no status of their own); adding one here is the
# whole change, e.g. ("withdrawn",).
EXCLUDED_STATUSES: tuple[str, ...] = ()
# Closing reasons whose cases are left out, in the report and the digest alike: a merged
# duplicate is not a request of its own (it counts once, on the ticket kept, from the earliest
# receipt of the two).
EXCLUDED_CLOSING_REASONS: tuple[str, ...] = (ClosedReason.MERGED.value,)


class Outcome(StrEnum):
    """What became of one deadline, as of an instant."""

    MET = "met"
    LATE = "late"
    OPEN_LATE = "open_late"
    PENDING = "pending"


def is_answered(met_at: datetime | None, as_of: datetime) -> bool:
    """A reply is recorded, and was known at `as_of`."""
    return met_at is not None and met_at <= as_of


def is_on_time(met_at: datetime, due_at: datetime) -> bool:
    """A reply at `met_at` meets a deadline ending at `due_at` (any time on the due day)."""
    return met_at < due_at


def has_passed(due_at: datetime, as_of: datetime) -> bool:
    """The deadline is over at `as_of`: from the due instant itself on."""
    return due_at <= as_of


def is_paused(due_at: datetime, holds: Iterable[Hold], as_of: datetime) -> bool:
    """A hold open at `as_of` began before the deadline: the clock is stopped."""
    return any(
        hold.start <= as_of and hold.start < due_at and (hold.end is None or hold.end > as_of)
        for hold in holds
    )


def deadline_outcome(
    due_at: datetime, met_at: datetime | None, holds: Iterable[Hold], as_of: datetime
) -> Outcome:
    """The outcome of a deadline ending at `due_at`, met at `met_at` (or not), with the holds
    of its ticket, as known at `as_of` (all aware instants)."""
    if met_at is not None and is_answered(met_at, as_of):
        return Outcome.MET if is_on_time(met_at, due_at) else Outcome.LATE
    if has_passed(due_at, as_of) and not is_paused(due_at, holds, as_of):
        return Outcome.OPEN_LATE
    return Outcome.PENDING


def exact_target(target: float | Fraction) -> Fraction:
    """The target as the exact fraction of the decimal written in the configuration."""
    if isinstance(target, float):
        # repr is the shortest decimal that reads back as this float: what the TOML said.
        return Fraction(repr(target))
    return Fraction(target)


def rate(met: int, decided: int) -> float | None:
    """The share of the decided cases that met the commitment, for display; None if none."""
    return met / decided if decided else None


def meets(met: int, decided: int, target: float | Fraction | None) -> bool | None:
    """Whether `met` of `decided` reaches `target`, exactly; None without a target or a case."""
    if target is None or not decided:
        return None
    return Fraction(met, decided) >= exact_target(target)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The outcomes of a commitment's cases: the counts both the digest and the report show."""

    met: int
    late: int
    open_late: int
    pending: int

    @property
    def decided(self) -> int:
        """The rate's denominator: every case whose outcome is known."""
        return self.met + self.late + self.open_late

    @property
    def rate(self) -> float | None:
        return rate(self.met, self.decided)

    def meets(self, target: float | Fraction | None) -> bool | None:
        """Whether the rate reaches `target`, exactly; None without a target or a case."""
        return meets(self.met, self.decided, target)


def count_outcomes(outcomes: Iterable[Outcome]) -> Outcomes:
    """How many of each outcome."""
    counts = dict.fromkeys(Outcome, 0)
    for outcome in outcomes:
        counts[outcome] += 1
    return Outcomes(
        met=counts[Outcome.MET],
        late=counts[Outcome.LATE],
        open_late=counts[Outcome.OPEN_LATE],
        pending=counts[Outcome.PENDING],
    )
