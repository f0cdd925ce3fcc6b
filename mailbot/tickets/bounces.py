"""A delivery report about a message we sent: matched to the row it names, and what it does to
the address and the ticket; a person who writes again is reachable again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.db import outbox_rows, service_state, ticket_rows
from mailbot.db.outbox_rows import SentMessage
from mailbot.mail.parse import InboundMail


@dataclass(frozen=True, slots=True)
class Bounce:
    """A permanent failure report about a message we really sent (`sent`), or not (`None`)."""

    sent: SentMessage | None
    status: str

    IGNORED = "delivery report that matches no message we sent to that address: ignored"


def match_bounce(connection: Connection, mail: InboundMail) -> Bounce | None:
    """A permanent failure stops automatic mail to an address only when the report names a
    message we really sent to that address (its Message-ID is an outbox row's, and the failed
    recipient is that row's): anyone can mail a report naming any address. None when the
    message is no permanent failure report at all.

    A report in another form than RFC 3464 (`FailureNotice`) names the message by the copy it
    returns, and its failed recipients as flufl.bounce's detectors read them: it counts when
    exactly one address we sent a returned message to is among them."""
    report = mail.delivery_report
    if report is not None:
        if not report.is_permanent_failure:
            return None
        sent = outbox_rows.row_by_message_id(connection, report.original_message_id)
        failed = report.final_recipient.lower()
        if sent is not None and failed and failed != sent.recipient.lower():
            sent = None
        return Bounce(sent, report.status or report.action)
    notice = mail.failure_notice
    if notice is None or not notice.is_permanent_failure:
        return None
    returned = (outbox_rows.row_by_message_id(connection, i) for i in notice.returned_message_ids)
    matching = [row for row in returned if row and row.recipient.lower() in notice.permanent]
    recipients = {row.recipient.lower() for row in matching}
    sent = matching[0] if len(recipients) == 1 else None
    return Bounce(sent, notice.status or "without a status code")


def record_bounce(connection: Connection, bounce: Bounce, inbound_id: int, now: datetime) -> None:
    """Mark the address of a matching report undeliverable, on its ticket's log too."""
    sent = bounce.sent
    if sent is None:
        return
    reason = f"permanent failure {bounce.status}"
    service_state.mark_undeliverable(connection, sent.recipient, reason, now)
    if sent.ticket_id is not None:
        ticket_rows.add_event(
            connection,
            sent.ticket_id,
            now,
            "address_undeliverable",
            f"{reason} for outbox #{sent.id}",
            inbound_id=inbound_id,
            outbox_id=sent.id,
        )


def mark_reachable(connection: Connection, address: str) -> None:
    """A person who writes again is reachable again (a bounce may have been transient)."""
    service_state.clear_undeliverable(connection, address)
