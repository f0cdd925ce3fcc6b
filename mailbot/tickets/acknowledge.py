"""The acknowledgement of a new ticket, or the record of why none may go."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import outbox_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.logformat import log_fields
from mailbot.sending import to_citizens
from mailbot.tickets.facts import Arrival

log = logging.getLogger(__name__)


def automatic_mail_blocked(
    connection: Connection, app: App, recipient: str, now: datetime
) -> str | None:
    """Why no automatic answer may go to `recipient` now, or None.

    The per-address cap stops loops with one correspondent; a flood from many addresses is
    not refused here but paced by the sender (mailbot/sending/outbox.py): it never drops anyone.
    An undeliverable mark never blocks an acknowledgement: the person just wrote, which
    clears it (`mark_reachable`).
    """
    limit = app.settings.classification.per_address_daily_limit
    start_of_day = app.calendar.end_of_day(app.calendar.office_date(now) - timedelta(days=1))
    if outbox_rows.automatic_answers_since(connection, start_of_day, recipient) >= limit:
        return f"per-address limit of {limit} automatic answers a day"
    return None


def acknowledge(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    arrival: Arrival,
    now: datetime,
    *,
    automatic: bool,
) -> None:
    """Queue the acknowledgement of a new ticket, or record why none may go (`automatic`:
    the message is automatic mail, which is never answered)."""
    blocked = (
        "automatic message: no automatic answer"
        if automatic
        else automatic_mail_blocked(connection, app, ticket.requester, now)
    )
    if blocked is None:
        to_citizens.acknowledgement(
            connection, app, arrival.mailbox, ticket, arrival.mail, arrival.inbound_id, now
        )
        return
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "acknowledgement_withheld",
        blocked,
        inbound_id=arrival.inbound_id,
    )
    if not automatic:
        log.warning(
            "acknowledgement withheld: %s",
            blocked,
            extra=log_fields(
                mailbox=arrival.mailbox.name, ref=ticket.ref, inbound=arrival.inbound_id
            ),
        )
