"""The only place that reads the wall clock; everything else takes `now` as a value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current instant, always timezone-aware and in UTC.

    `replays` is True for a clock that is not the real one (`--now`): a database is written
    by one kind of clock only (see `mailbot.app.guard_clock`).
    """

    @property
    def replays(self) -> bool: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    replays = False

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock stopped at one instant: `--now`, tests and audits replay time with it."""

    instant: datetime

    @property
    def replays(self) -> bool:
        return True

    def __post_init__(self) -> None:
        if self.instant.tzinfo is None:
            raise ValueError("a fixed clock needs an aware instant (give an offset, e.g. Z)")

    def now(self) -> datetime:
        return self.instant.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; one without an offset is refused rather than guessed."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"instant {text!r} has no UTC offset (write e.g. 2025-11-03T10:00-05:00)")
    return value.astimezone(UTC)
