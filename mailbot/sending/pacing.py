"""What the brake leaves for people: its start and its end.

The sender (mailbot/sending/outbox.py) only sends rows and records outcomes. Before each flush,
`review_pacing` tells the queues' staff once when the brake starts holding acknowledgements
back and once when it lets the last of them go, with dedupe keys: exactly once across passes,
restarts and instances. Mail that could not go is reported by mailbot/tickets/failures.py.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import outbox_rows, service_state
from mailbot.sending.outbox import SendPolicy, paced_capacity
from mailbot.sending.to_staff import to_staff

log = logging.getLogger(__name__)

PACING = "pacing"


def review_pacing(app: App, policy: SendPolicy, now: datetime) -> None:
    """Open or close the brake's episode and tell the queues' staff and supervisors."""
    if policy.pace_limit is None:
        return
    with app.engine.begin() as connection:
        capacity = paced_capacity(connection, policy, now) or 0
        waiting = outbox_rows.due_paced(connection, now)
        alert = service_state.open_alert(connection, PACING)
        if alert is None and waiting > capacity:
            queues = outbox_rows.queues_waiting(connection, now)
            if service_state.start_alert(connection, PACING, now, ",".join(queues)):
                log.warning("brake: %d acknowledgement(s) paced", waiting - capacity)
                _tell(connection, app, queues, now, ended=False, waiting=waiting, since=now)
        elif (
            alert is not None
            and waiting <= capacity
            and service_state.resolve_alert(connection, PACING, now)
        ):
            log.warning("brake released")
            queues = [name for name in alert.detail.split(",") if name]
            _tell(connection, app, queues, now, ended=True, since=alert.started_at)


def _tell(
    connection: Connection,
    app: App,
    queues: list[str],
    now: datetime,
    *,
    ended: bool,
    since: datetime,
    waiting: int = 0,
) -> None:
    rules = app.settings.classification
    for mailbox in app.settings.mailboxes:
        if mailbox.name not in queues:
            continue
        to_staff(
            connection,
            app,
            template="brake",
            values={
                "ended": ended,
                "waiting": waiting,
                "limit": rules.burst_limit,
                "window_minutes": rules.burst_window_minutes,
                "started_at": since.astimezone(app.calendar.zone).strftime("%Y-%m-%d %H:%M"),
            },
            queue=mailbox,
            recipients=(*mailbox.staff, *mailbox.supervisors),
            purpose="brake_notice",
            dedupe=f"brake:{mailbox.name}:{since.isoformat()}:{'end' if ended else 'start'}",
            now=now,
        )
