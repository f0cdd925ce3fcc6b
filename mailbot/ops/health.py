"""Is the service working? What the daemon saw of its servers and outbox, and the rules
that turn it into a health verdict (`GET /healthz`) — pure, given the instant.

The daemon updates one `Observed` (thread-safe: the pass loop, the IDLE watchers and the HTTP
server share it) and reads frozen `Observation`s out of it. Names are references only:
``imap:<mailbox name>`` and ``smtp``; over Microsoft Graph, ``graph:<mailbox name>`` and
``graph:send``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from mailbot.db.backlog import Backlog

SMTP = "smtp"
GRAPH_SEND = "graph:send"


def imap_name(mailbox: str) -> str:
    return f"imap:{mailbox}"


def graph_name(mailbox: str) -> str:
    return f"graph:{mailbox}"


@dataclass(frozen=True, slots=True)
class ServerSeen:
    """What mailbot last saw of one server."""

    last_ok: datetime | None = None
    # The first failure since the server last answered (None: it answered last time).
    failing_since: datetime | None = None
    last_error: str = ""
    idle_alive: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    servers: Mapping[str, ServerSeen]
    backlog: Backlog | None = None
    braking: bool = False
    last_pass_ok: datetime | None = None


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    # Part name -> "ok" or why it fails.
    parts: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "failing", "parts": dict(self.parts)}


def server_up(seen: ServerSeen, now: datetime, window: timedelta) -> bool:
    """Reached within `window`, or holding a live IDLE connection — unless a later attempt
    failed (an IDLE connection whose server went away is not always noticed at once)."""
    if seen.idle_alive and seen.failing_since is None:
        return True
    return seen.last_ok is not None and now - seen.last_ok <= window


def _minute(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%MZ")


def judge(observation: Observation, now: datetime, window: timedelta) -> Health:
    """Healthy when every server was reached within `window` and no due outbox row has
    waited longer than `window` for the sender."""
    parts: dict[str, str] = {}
    for name, seen in sorted(observation.servers.items()):
        if server_up(seen, now, window):
            parts[name] = "ok"
        elif seen.last_ok is None:
            parts[name] = f"never reached{_because(seen)}"
        else:
            parts[name] = f"not reached since {_minute(seen.last_ok)}{_because(seen)}"
    backlog = observation.backlog
    if backlog is None:
        parts["outbox"] = "not looked at yet"
    elif backlog.due_since is not None and now - backlog.due_since > window:
        parts["outbox"] = f"not moving: a due message has waited since {_minute(backlog.due_since)}"
    else:
        parts["outbox"] = "ok"
    return Health(ok=all(value == "ok" for value in parts.values()), parts=parts)


def _because(seen: ServerSeen) -> str:
    return f" ({seen.last_error})" if seen.last_error else ""


class Observed:
    """The daemon's live view of its servers and backlog; every method is thread-safe."""

    def __init__(self, names: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._servers = {name: ServerSeen() for name in names}
        self._backlog: Backlog | None = None
        self._braking = False
        self._last_pass_ok: datetime | None = None

    def reached(self, name: str, at: datetime) -> None:
        with self._lock:
            seen = self._servers.get(name, ServerSeen())
            self._servers[name] = replace(seen, last_ok=at, failing_since=None, last_error="")

    def failed(self, name: str, at: datetime, error: str) -> None:
        """`error` is a short reference (an exception's class, an SMTP code), never a text a
        server wrote (it may name a person)."""
        with self._lock:
            seen = self._servers.get(name, ServerSeen())
            self._servers[name] = replace(
                seen, failing_since=seen.failing_since or at, last_error=error
            )

    def idle(self, name: str, alive: bool) -> None:
        with self._lock:
            seen = self._servers.get(name, ServerSeen())
            self._servers[name] = replace(seen, idle_alive=alive)

    def looked_at(self, backlog: Backlog, *, braking: bool) -> None:
        with self._lock:
            self._backlog, self._braking = backlog, braking

    def pass_ok(self, at: datetime) -> None:
        with self._lock:
            self._last_pass_ok = at

    def observation(self) -> Observation:
        with self._lock:
            return Observation(
                dict(self._servers), self._backlog, self._braking, self._last_pass_ok
            )
