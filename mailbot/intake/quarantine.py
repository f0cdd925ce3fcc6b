"""Messages that could not be processed: listed for a person, processed again after a fix."""

from __future__ import annotations

import logging

from mailbot.app import App, guard_clock
from mailbot.db import inbound_rows
from mailbot.db.inbound_rows import QuarantinedMessage
from mailbot.db.store import reading
from mailbot.errors import NotFound
from mailbot.intake.pipeline import process_fetched
from mailbot.logformat import log_fields
from mailbot.states import MessageState
from mailbot.transport.base import FetchedMessage

log = logging.getLogger(__name__)


def list_quarantine(app: App) -> list[QuarantinedMessage]:
    """Quarantined messages, oldest first: number, mailbox, arrival, size and reason."""
    with reading(app.engine) as connection:
        return inbound_rows.quarantined(connection)


def retry_quarantined(app: App, inbound_id: int) -> str:
    """Process a quarantined message again from its stored bytes; returns its new state.

    The stored row is replaced in the same transaction by the outcome of a fresh pass over
    the same bytes, keeping its IMAP key; a message that fails again stays quarantined.
    """
    guard_clock(app)
    now = app.clock.now()
    with app.engine.begin() as connection:
        stored = inbound_rows.stored_message(connection, inbound_id)
        if stored is None or stored.state != MessageState.QUARANTINED:
            raise NotFound(f"no quarantined message #{inbound_id}")
        fetched = FetchedMessage(
            uid=stored.uid,
            internal_date=stored.internal_date,
            size=stored.size,
            raw=stored.raw,
            truncated=False,
        )
        inbound_rows.delete_message(connection, inbound_id)
        mailbox = app.settings.mailbox(stored.mailbox)
        processed = process_fetched(connection, app, mailbox, stored.uidvalidity, fetched, now)
    log.info(
        "quarantined message #%s retried: %s",
        inbound_id,
        processed.state,
        extra=log_fields(mailbox=stored.mailbox, uid=stored.uid, inbound=inbound_id),
    )
    return processed.state
