"""`mailbot check`: does a message to each queue's notes address arrive in its watched folder?
(effects: SMTP, IMAP; the message itself is pure)

Staff notes are mail to the notes address (`notes_address` in `[[mailboxes]]`, by default the
queue's address with "+note" before the "@"): mailbot sees them only if the mail system
delivers that address into the mailbox it watches. Where plus addressing is off, the relay
refuses the address or the message never arrives. The check sends one small message per
mailbox through the relay mailbot sends by, looks for it in the watched folder (and in the
processed folder, where a running daemon may already have set it aside: it carries our loop
header, so the daemon never answers or files it), and deletes it. One line a mailbox; a
refusal or a message that does not arrive in time is a failure, with what to change.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage

import aiosmtplib
from imapclient.exceptions import IMAPClientError

from mailbot.errors import ConfigError, ImapError, ServerError
from mailbot.mail.render import CHECK_PURPOSE, LOOP_HEADER, PURPOSE_HEADER
from mailbot.settings import MailboxSettings, Settings
from mailbot.transport.imap import ImapMailbox
from mailbot.transport.logins import Login, Logins
from mailbot.transport.neterrors import describe
from mailbot.transport.smtp import connect_smtp, smtp_client

Say = Callable[[str], None]
HOW_TO_FIX = 'turn plus addressing on (README, "Notes address"), or set notes_address'


def probe_message(mailbox: MailboxSettings, domain: str, nonce: str) -> EmailMessage:
    """The message a mailbox sends its notes address (pure): our loop header and an automatic
    message's headers, so that a running daemon sets it aside, never answers it."""
    message = EmailMessage()
    message["From"] = mailbox.address
    message["To"] = mailbox.notes_address
    message["Subject"] = f"mailbot check notes {nonce}"
    message["Message-ID"] = probe_id(domain, nonce)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = domain
    message[PURPOSE_HEADER] = CHECK_PURPOSE
    message.set_content("mailbot check: this message is deleted as soon as it is found.\n")
    return message


def probe_id(domain: str, nonce: str) -> str:
    return f"<mb-check-notes.{nonce}@{domain}>"


def check_notes_addresses(
    settings: Settings,
    logins: Logins,
    mailboxes: Sequence[MailboxSettings],
    say: Say,
    now: datetime,
    *,
    wait_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Send each mailbox's probe to its notes address, then find it in the watched folder."""
    domain = settings.organisation.message_id_domain
    nonces = {mailbox.name: secrets.token_hex(6) for mailbox in mailboxes}
    try:
        refused = asyncio.run(_send_probes(settings, logins.smtp(), now, mailboxes, domain, nonces))
    except (TimeoutError, ConfigError, aiosmtplib.SMTPException, OSError, ServerError) as exc:
        say(f"FAIL notes: cannot send the check messages: {describe(exc)}")
        return False
    ok = True
    deadline = time.monotonic() + wait_seconds
    for mailbox in mailboxes:
        where = f"notes {mailbox.name}: {mailbox.notes_address}"
        if mailbox.name in refused:
            ok = False
            say(f"FAIL {where}: refused by the relay ({refused[mailbox.name]}); {HOW_TO_FIX}")
            continue
        try:
            found = _find_probe(
                settings,
                logins,
                mailbox,
                probe_id(domain, nonces[mailbox.name]),
                now,
                deadline,
                sleep,
            )
        except (ConfigError, ImapError, IMAPClientError, OSError) as exc:
            ok = False
            say(f"FAIL {where}: {describe(exc)}")
            continue
        if found is None:
            ok = False
            say(
                f"FAIL {where}: sent, not in {mailbox.folder} within {wait_seconds:.0f} s; "
                f"{HOW_TO_FIX}"
            )
        else:
            say(f"ok   {where} arrives in {mailbox.folder}{found}")
    return ok


async def _send_probes(
    settings: Settings,
    login: Login | None,
    now: datetime,
    mailboxes: Sequence[MailboxSettings],
    domain: str,
    nonces: dict[str, str],
) -> dict[str, str]:
    """Send every probe in one session; the relay's words for each one it refused."""
    smtp = smtp_client(settings.smtp)
    await connect_smtp(smtp, login, now)
    refused: dict[str, str] = {}
    try:
        for mailbox in mailboxes:
            message = probe_message(mailbox, domain, nonces[mailbox.name])
            try:
                await smtp.send_message(
                    message,
                    sender=settings.smtp.bounce_address or mailbox.address,
                    recipients=[mailbox.notes_address],
                )
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                refused[mailbox.name] = _refusal_words(exc)
    finally:
        try:
            await smtp.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            smtp.close()
    return refused


def _refusal_words(exc: aiosmtplib.SMTPException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return f"{first.code} {first.message}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return str(exc)


def _find_probe(
    settings: Settings,
    logins: Logins,
    mailbox: MailboxSettings,
    message_id: str,
    now: datetime,
    deadline: float,
    sleep: Callable[[float], None],
) -> str | None:
    """Where the probe arrived ("" for the watched folder, else ", set aside in FOLDER by a
    running mailbot"), deleted once found; None when it did not arrive before `deadline`."""
    with ImapMailbox(settings.imap, logins.imap(mailbox), now) as imap:
        client = imap.client
        while True:
            for folder in (mailbox.folder, mailbox.processed_folder):
                if folder != mailbox.folder and not client.folder_exists(folder):
                    continue
                imap.select(folder)
                uids = client.search(["HEADER", "Message-ID", message_id])
                if uids:
                    client.add_flags(uids, [b"\\Deleted"], silent=True)
                    if client.has_capability("UIDPLUS"):
                        # UID EXPUNGE removes these only, never anyone else's deletions.
                        client.uid_expunge(uids)
                    if folder == mailbox.folder:
                        return ""
                    return f" (set aside in {folder} by a running mailbot)"
            if time.monotonic() >= deadline:
                return None
            sleep(1.0)
