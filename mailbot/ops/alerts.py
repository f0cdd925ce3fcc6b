"""Alerts to the administrators: one mail when a problem starts, one when it ends.

Four problems: a server unreachable for longer than `[alerts] unreachable_minutes`, the
outbox's oldest unsent row older than `outbox_age_minutes`, a message in quarantine, the
brake engaged. `conditions` decides, from what the daemon observed, whether each is firing,
clear or not known yet (pure); `review_alerts` opens and closes the episodes in the database
(at most one open per name: across passes, restarts and instances) and queues the mail
through the outbox (mailbot/sending/to_staff.py), whose dedupe keys make it exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import service_state
from mailbot.ops.health import Observation, ServerSeen
from mailbot.sending import to_staff
from mailbot.settings import AlertSettings

log = logging.getLogger(__name__)

ALERT_PURPOSE = "alert"
PREFIX = "admin:"


class Firing(StrEnum):
    FIRING = "firing"
    CLEAR = "clear"
    UNKNOWN = "unknown"  # not enough seen yet: leave any open episode as it is


@dataclass(frozen=True, slots=True)
class Condition:
    name: str  # the episode's name: admin:server:imap:<mailbox>, admin:outbox, ...
    kind: str  # server | outbox | quarantine | brake
    state: Firing
    # What the mail says: counts, minutes, a server's name; never personal data.
    values: Mapping[str, object] = field(default_factory=dict)


def conditions(observation: Observation, now: datetime, rules: AlertSettings) -> list[Condition]:
    found = [_server(name, seen, now, rules) for name, seen in sorted(observation.servers.items())]
    backlog = observation.backlog
    if backlog is None:
        return found
    age_limit = timedelta(minutes=rules.outbox_age_minutes)
    oldest = backlog.oldest_pending
    found.append(
        Condition(
            f"{PREFIX}outbox",
            "outbox",
            Firing.FIRING if oldest is not None and now - oldest > age_limit else Firing.CLEAR,
            {"count": backlog.outbox_depth, "minutes": round(rules.outbox_age_minutes)},
        )
    )
    found.append(
        Condition(
            f"{PREFIX}quarantine",
            "quarantine",
            Firing.FIRING if backlog.quarantined else Firing.CLEAR,
            {"count": backlog.quarantined},
        )
    )
    found.append(
        Condition(f"{PREFIX}brake", "brake", Firing.FIRING if observation.braking else Firing.CLEAR)
    )
    return found


def _server(name: str, seen: ServerSeen, now: datetime, rules: AlertSettings) -> Condition:
    limit = timedelta(minutes=rules.unreachable_minutes)
    if seen.failing_since is not None:
        state = Firing.FIRING if now - seen.failing_since >= limit else Firing.UNKNOWN
    elif seen.last_ok is not None or seen.idle_alive:
        state = Firing.CLEAR
    else:
        state = Firing.UNKNOWN
    values = {"server": name, "minutes": round(rules.unreachable_minutes)}
    return Condition(f"{PREFIX}server:{name}"[:64], "server", state, values)


def review_alerts(app: App, found: Sequence[Condition], now: datetime) -> list[str]:
    """Open the episodes that start and close those that end, each with its mail; returns
    what changed ("<name> started", "<name> resolved")."""
    changed: list[str] = []
    for condition in found:
        if condition.state == Firing.UNKNOWN:
            continue
        with app.engine.begin() as connection:
            episode = service_state.open_alert(connection, condition.name)
            if condition.state == Firing.FIRING and episode is None:
                if not service_state.start_alert(connection, condition.name, now, condition.kind):
                    continue
                since, ended = now, False
            elif (
                condition.state == Firing.CLEAR
                and episode is not None
                and service_state.resolve_alert(connection, condition.name, now)
            ):
                since, ended = episode.started_at, True
            else:
                continue
            _tell(connection, app, condition, since, now, ended=ended)
        what = "resolved" if ended else "started"
        log.warning("alert %s %s", condition.name, what)
        changed.append(f"{condition.name} {what}")
    return changed


def _tell(
    connection: Connection,
    app: App,
    condition: Condition,
    since: datetime,
    now: datetime,
    *,
    ended: bool,
) -> None:
    if not app.settings.alerts.admins:
        return
    zone = app.calendar.zone
    to_staff.to_admins(
        connection,
        app,
        template="alert",
        values={
            **condition.values,
            "kind": condition.kind,
            "ended": ended,
            "started_at": since.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "now": now.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        },
        purpose=ALERT_PURPOSE,
        dedupe=f"{condition.name}:{since.isoformat()}:{'end' if ended else 'start'}",
        now=now,
    )
