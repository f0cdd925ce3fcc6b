"""Acts held past a person's hourly limit (mailbot/staff/limits.py): the one alert that tells
the supervisors and the administrators, and the replay of what a supervisor released.

Run by each pass after the new mail (mailbot/ops/passes.py), each step in its own
transaction and safe to repeat:

* `review_held_acts`: a person with acts held and no alert episode open gets one (the
  `service_alert` row `acts:<person>`): one mail to each supervisor of the queues their held
  acts are on, answering which with `#libérer ADRESSE` releases them (it carries the token of
  one of those tickets), and one to each `[alerts] admins`; it names the person, how many
  acts they did in the past hour and the acts held. An episode ends once nothing of that
  person's is held any more; the next hold opens a new one.
* `replay_released`: each released act's staff message is processed again as staff work,
  as it stands now (authentication, authority, commands), past the limit this once. Acts are
  released by a supervisor's `#libérer ADRESSE` (mailbot/staff/limits.py), or on the command
  line (`mailbot held-acts --release ADRESSE`, `release_by_command_line`).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, act_rows, handoff, inbound_rows, service_state, ticket_rows
from mailbot.db.store import reading
from mailbot.mail.parse import parse_message
from mailbot.sending import to_staff
from mailbot.staff import limits, replies
from mailbot.standards import authority
from mailbot.states import MessageState
from mailbot.tickets.facts import Arrival

log = logging.getLogger(__name__)

ALERT_PREFIX = "acts:"


def episode_name(person: str) -> str:
    """The alert episode of one person (the name column holds 64 characters)."""
    return ALERT_PREFIX + hashlib.sha256(person.lower().encode()).hexdigest()[:40]


def review_held_acts(app: App, now: datetime) -> int:
    """Open an episode, with its alert, for each person with acts held and none open; close
    the episodes of people with nothing held any more. How many alerts were opened. (Nothing
    is written when nothing changes: a pass with nothing held only reads.)"""
    with reading(app.engine) as connection:
        people = sorted({act.person for act in act_rows.held(connection)})
        alerted = {alert.detail for alert in service_state.open_alerts(connection, ALERT_PREFIX)}
    opened = 0
    for person in people:
        if person in alerted:
            continue
        with app.engine.begin() as connection:
            if not service_state.start_alert(connection, episode_name(person), now, person):
                continue  # another instance opened it
            _alert(connection, app, person, act_rows.held(connection, person), now)
            opened += 1
    for person in sorted(alerted - set(people)):
        with app.engine.begin() as connection:
            service_state.resolve_alert(connection, episode_name(person), now)
    return opened


def _alert(
    connection: Connection,
    app: App,
    person: str,
    held: list[act_rows.HeldAct],
    now: datetime,
) -> None:
    """One alert to each supervisor of the queues the held acts are on, and to the admins."""
    settings = app.settings
    count = act_rows.applied_since(connection, person, now - limits.WINDOW)
    values: dict[str, object] = {
        "person": person,
        "count": count,
        "limit": settings.staff.actions_per_hour,
        "held": held,
    }
    key = f"acts_alert:{episode_name(person)}:{now.isoformat()}"
    told: set[str] = set()
    for act in held:
        ticket = ticket_rows.ticket_by_id(connection, act.ticket_id) if act.ticket_id else None
        if ticket is None:
            continue
        queue = authority.queue_of(settings, ticket)
        recipients = [s for s in queue.supervisors if s.lower() not in told]
        if not recipients:
            continue
        told.update(s.lower() for s in recipients)
        to_staff.to_staff(
            connection,
            app,
            template="acts_alert",
            values={**values, "releasable": True},
            queue=queue,
            recipients=recipients,
            ticket=ticket,
            purpose=limits.ALERT_PURPOSE,
            dedupe=key,
            now=now,
        )
    to_staff.to_admins(
        connection,
        app,
        template="acts_alert",
        values={**values, "releasable": False},
        purpose=limits.ALERT_PURPOSE,
        dedupe=key,
        now=now,
    )
    log.warning("alert: a person's staff acts held past the hourly limit (%d held)", len(held))


def held_acts(app: App) -> list[act_rows.HeldAct]:
    """Every act held and not released yet, oldest first (`mailbot held-acts`)."""
    with reading(app.engine) as connection:
        return act_rows.held(connection)


def release_by_command_line(app: App, person: str, actor: str) -> int:
    """`mailbot held-acts --release ADDRESS`: every act of `person` held, whatever its queue
    (whoever runs mailbot's command line administers it); applied at the next pass."""
    now = app.clock.now()
    with app.engine.begin() as connection:
        found = act_rows.held(connection, person)
        count = act_rows.release(connection, [act.id for act in found], f"cli:{actor}", now)
        refs = ", ".join(dict.fromkeys(act.ref for act in found))
        if count:
            access.record(connection, now, actor, "released_acts", None, f"{count} act(s): {refs}")
    return count


def replay_released(app: App, now: datetime) -> int:
    """Process each released act's staff message again, as staff work; how many."""
    with reading(app.engine) as connection:
        released = act_rows.released(connection)
    for act in released:
        with app.engine.begin() as connection:
            if act_rows.state_of(connection, act.inbound_id) != act_rows.RELEASED:
                continue  # another instance replayed it
            _replay(connection, app, act, now)
    return len(released)


def _replay(connection: Connection, app: App, act: act_rows.HeldAct, now: datetime) -> None:
    stored = inbound_rows.stored_message(connection, act.inbound_id)
    found = ticket_rows.ticket_by_id(connection, act.ticket_id) if act.ticket_id else None
    if stored is None or found is None or not stored.raw:
        act_rows.finish(connection, act.id, "refused")
        return
    ticket = handoff.kept_ticket(connection, found)
    arrival = Arrival(
        app.settings.mailbox(stored.mailbox),
        parse_message(stored.raw),
        stored.raw,
        stored.id,
        stored.internal_date,
    )
    outcome = replies.handle(connection, app, ticket, arrival, now)
    if act_rows.state_of(connection, act.inbound_id) == act_rows.RELEASED:
        act_rows.finish(connection, act.id, "refused")  # refused as it stands now
    inbound_rows.record_outcome(
        connection,
        act.inbound_id,
        state=MessageState(outcome.state),
        reason=f"released by a supervisor: {outcome.reason}",
        flags=",".join(outcome.flags),
    )
    log.info("ticket %s: a held staff act released and replayed", ticket.ref)
