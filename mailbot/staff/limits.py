"""Limits on one person's acts by email, on the caller's connection.

Each person may close, refer, merge and relay (any text that reaches a citizen) at most
`[staff] actions_per_hour` times in any hour: a staff message that does any of these is one
act. Past the limit, the message is held whole (nothing of it applies), its author is told,
and the act waits for a supervisor of its ticket's queue (mailbot/staff/release.py tells
them and the `[alerts] admins`, once per person, and replays what they release). A mailbox
taken over, or a person emptying a queue or sending complaints out in bulk, is stopped at
the limit and put before people.

  acts_of(parsed) -> ("close", "relay", ...)         what a staff message would do
  over_limit(connection, settings, person, inbound_id, now) -> int | None
  hold(...) / record_applied(...)                    the act's row, and who is told
  release_problem(...) / release(...)                `#libérer ADRESSE` by a supervisor
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, act_rows, outbox_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.sending.to_staff import to_staff
from mailbot.settings import Settings
from mailbot.staff.command_table import STANDS_ALONE, CommandName
from mailbot.staff.parse_commands import StaffMessage
from mailbot.standards import authority

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
OVER_LIMIT = "over_limit"  # the flag of a staff message held past its author's limit

_ACT_OF_COMMAND = {
    CommandName.CLOSE: "close",
    CommandName.REFER: "refer",
    CommandName.MERGE: "merge",
}
# Commands whose text reaches the citizen (the hold's reason, what is missing, an answer).
_RELAYING = frozenset({CommandName.HOLD, CommandName.INCOMPLETE, CommandName.CANNED})


def acts_of(parsed: StaffMessage) -> tuple[str, ...]:
    """The limited acts a staff message would do: close, refer, merge, relay."""
    names = {command.name for command in parsed.commands}
    found = [act for name, act in _ACT_OF_COMMAND.items() if name in names]
    body_relayed = bool(parsed.body.strip()) and CommandName.NOTE not in names
    if not names & STANDS_ALONE and (names & _RELAYING or body_relayed):
        found.append("relay")
    return tuple(found)


ALERT_PURPOSE = "acts_alert"


def answers_alert(connection: Connection, in_reply_to: Sequence[str]) -> bool:
    """The message answers an alert about held acts (mailbot/staff/release.py). The alert
    carries a ticket's token so that `#libérer` reaches a queue its reader supervises; an
    answer to it is that command or nothing, never text for that ticket's citizen."""
    for message_id in in_reply_to:
        row = outbox_rows.row_by_message_id(connection, message_id)
        if row is not None and row.purpose == ALERT_PURPOSE:
            return True
    return False


def releases_only(parsed: StaffMessage) -> bool:
    """The message is a release and nothing else (no text to relay, no other command)."""
    names = [command.name for command in parsed.commands]
    return names == [CommandName.RELEASE]


def over_limit(
    connection: Connection, settings: Settings, person: str, inbound_id: int, now: datetime
) -> int | None:
    """How many acts `person` applied in the hour before `now`, when one more would pass
    their limit; None when the act may go (also when a supervisor released this very one)."""
    if act_rows.state_of(connection, inbound_id) == act_rows.RELEASED:
        return None
    count = act_rows.applied_since(connection, person, now - WINDOW)
    return count if count >= settings.staff.actions_per_hour else None


def record_applied(
    connection: Connection,
    person: str,
    ticket: TicketRow,
    inbound_id: int,
    acts: Sequence[str],
    now: datetime,
) -> None:
    act_rows.record(
        connection,
        person=person,
        at=now,
        ticket_id=ticket.id,
        inbound_id=inbound_id,
        acts=acts,
        state=act_rows.APPLIED,
    )


def hold(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    person: str,
    acts: Sequence[str],
    count: int,
    inbound_id: int,
    now: datetime,
    in_reply_to: str,
) -> str:
    """Hold the act: nothing of the message applies; its author is told and the access trail
    records it. The reason stored with the message."""
    limit = app.settings.staff.actions_per_hour
    act_rows.record(
        connection,
        person=person,
        at=now,
        ticket_id=ticket.id,
        inbound_id=inbound_id,
        acts=acts,
        state=act_rows.HELD,
    )
    to_staff(
        connection,
        app,
        template="act_held",
        values={"acts": list(acts), "count": count, "limit": limit},
        queue=authority.queue_of(app.settings, ticket),
        recipients=(person,),
        ticket=ticket,
        purpose="staff_act_held",
        dedupe=f"act_held:{inbound_id}",
        now=now,
        in_reply_to=in_reply_to,
    )
    detail = f"{'+'.join(acts)}: {count} act(s) in the past hour, limit {limit}"
    ticket_rows.add_event(
        connection, ticket.id, now, "act_held", detail, actor=person, inbound_id=inbound_id
    )
    access.record(connection, now, person, "held_over_limit", ticket.ref, detail)
    log.warning("ticket %s: a staff act held past its author's hourly limit", ticket.ref)
    return (
        f"staff message held: its author did {count} act(s) in the past hour (limit {limit}); "
        "a supervisor of the queue may release it"
    )


def _releasable(
    connection: Connection, settings: Settings, person: str, supervisor: str
) -> list[act_rows.HeldAct]:
    """The acts of `person` held on tickets whose queue `supervisor` supervises."""
    found = []
    for act in act_rows.held(connection, person):
        if not act.ref:
            continue
        verdict = authority.may_act(
            supervisor, settings.queue_for(act.category, act.mailbox), settings
        )
        if verdict.allowed and verdict.supervisor:
            found.append(act)
    return found


def release_problem(
    connection: Connection, settings: Settings, ticket: TicketRow, person: str, sender: str
) -> tuple[str, str] | None:
    """Why `sender` cannot release `person`'s held acts here: only a supervisor of the
    ticket's queue releases, and only acts held on tickets of queues they supervise."""
    if not authority.may_act_on(settings, ticket, sender).supervisor:
        return ("not_supervisor", authority.queue_of(settings, ticket).name)
    if not _releasable(connection, settings, person, sender):
        return ("nothing_to_release", person)
    return None


def release(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    person: str,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """Release `person`'s acts held on the queues `sender` supervises (checked by
    `release_problem`): they are applied at the end of the pass (`release.replay_released`)."""
    found = _releasable(connection, app.settings, person, sender)
    count = act_rows.release(connection, [act.id for act in found], sender, now)
    refs = ", ".join(dict.fromkeys(act.ref for act in found))
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "acts_released",
        f"{count} act(s) of {person} released: {refs}",
        actor=sender,
        inbound_id=inbound_id,
    )
    access.record(connection, now, sender, "released_acts", ticket.ref, f"{count} act(s): {refs}")
