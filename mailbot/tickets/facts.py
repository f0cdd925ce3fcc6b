"""The values the ticket writers act on (pure): a ticket to open, and an inbound message as
stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbot.mail.parse import InboundMail
from mailbot.settings import MailboxSettings

# The inbound flag of a message over the size cap: a ticket from its headers; the whole message
# stays on the server, in the quarantine folder, where staff open it (the notice says so).
OVERSIZED = "oversized"


@dataclass(frozen=True, slots=True)
class NewTicket:
    """The facts of a ticket to open; the reference is allocated when it is written."""

    mailbox: str
    category: str
    requester: str
    requester_name: str
    language: str
    subject: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Arrival:
    """An inbound message as stored: what the stages after storage act on."""

    mailbox: MailboxSettings  # where it arrived
    mail: InboundMail
    raw: bytes
    inbound_id: int
    received_at: datetime  # the server's arrival instant (INTERNALDATE)

    @property
    def sender(self) -> str | None:
        return self.mail.from_address.address if self.mail.from_address else None
