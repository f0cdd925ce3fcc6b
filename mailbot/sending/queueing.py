"""What every queued message carries, read back: the configured mailbox it is sent from (pure)."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.utils import parseaddr

from mailbot.settings import MailboxSettings, Settings


def sending_mailbox(settings: Settings, raw: bytes) -> MailboxSettings:
    """The configured mailbox whose address the message is from (the first one otherwise)."""
    head = BytesHeaderParser().parsebytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    address = parseaddr(str(head.get("From", "")))[1].lower()
    for mailbox in settings.mailboxes:
        if mailbox.address.lower() == address:
            return mailbox
    return settings.mailboxes[0]
