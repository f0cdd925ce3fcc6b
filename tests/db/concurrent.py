"""Two transactions at once (on `committing_engine`): the second runs in a thread while the
first holds its writes uncommitted, and the test waits until the second is blocked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


@dataclass
class Second(Generic[T]):
    """The second transaction, running in its own thread; `result` or `error` once it ends."""

    thread: threading.Thread
    results: list[T] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def outcome(self) -> T:
        """Its result, once it has ended (re-raising what it raised)."""
        self.thread.join(30)
        assert not self.thread.is_alive(), "the second transaction never ended"
        if self.errors:
            raise self.errors[0]
        return self.results[0]


def start_second(engine: Engine, work: Callable[[Connection], T]) -> Second[T]:
    """Run `work` in a transaction of its own in a thread, committed when it returns; come
    back once that transaction is waiting for the first (asserted)."""
    second: Second[T] = Second(threading.Thread(target=lambda: None))

    def run() -> None:
        try:
            with engine.begin() as connection:
                second.results.append(work(connection))
        except BaseException as exc:  # handed to the test by `outcome`
            second.errors.append(exc)

    second.thread = threading.Thread(target=run, daemon=True)
    second.thread.start()
    _wait_until_blocked(engine)
    assert second.thread.is_alive(), "the second transaction did not wait for the first"
    return second


def _wait_until_blocked(engine: Engine) -> None:
    """PostgreSQL: until a backend of the database waits on a lock (the second's UPDATE or
    INSERT waiting for the first's row). SQLite has no such view: the second waits at its
    BEGIN IMMEDIATE for the write lock, and a pause lets it get there."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.2)
        return
    deadline = time.monotonic() + 10
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the second transaction never waited for the first")
