"""The mail store as the journal of what mailbot sent: a copy of each sent message in the
sending mailbox's Sent folder (effects: IMAP).

Every queued message carries its ticket's reference and its purpose in headers of our own
(queueing.journal_headers), so the Sent folder alone says what was sent, to whom, about which
ticket; `mailbot reconcile` (mailbot/recovery/reconcile.py) reads it back. Per mailbox, `sent_copy`
says who keeps the copy: "append" (generic IMAP servers: mailbot appends it, here), "server"
(Exchange Online and Gmail keep a copy of what is submitted over SMTP: a second would be a
duplicate) or "none".

A copy is appended only after the relay's 250 (the row is `sent`), and at most once: the row
records it (`sent_copy_at`), and a copy appended just before a crash is found by its
Message-ID in the folder instead of being appended again.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta

from mailbot.app import App
from mailbot.db import journal_rows
from mailbot.db.journal_rows import SentCopy
from mailbot.errors import ImapError
from mailbot.logformat import log_fields
from mailbot.sending.queueing import sending_mailbox
from mailbot.transport.base import Mailbox

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class JournalReport:
    appended: int = 0
    found: int = 0
    kept_by_server: int = 0
    refused: int = 0  # copies the server would not take (logged; the mail itself went out)
    failed_mailboxes: int = 0


def keep_sent_copies(app: App) -> JournalReport:
    """Put a copy of every sent message not yet journalled where its mailbox keeps them: one
    IMAP session per mailbox, whose Sent folder is searched once for the copies already
    there (appended just before a crash)."""
    report = JournalReport()
    with app.engine.begin() as connection:
        oldest = journal_rows.oldest_copy_to_keep(connection)
    if oldest is None:
        return report
    since = oldest - timedelta(days=1)
    opened: dict[str, tuple[Mailbox, set[str]]] = {}
    failed: set[str] = set()
    after_id = 0
    with ExitStack() as sessions:
        while True:
            with app.engine.begin() as connection:
                copies = journal_rows.copies_to_keep(connection, BATCH, after_id)
            if not copies:
                return report
            after_id = copies[-1].id
            done: list[int] = []
            to_append: dict[str, list[SentCopy]] = {}
            for copy in copies:
                mailbox = sending_mailbox(app.settings, copy.raw)
                if mailbox.sent_copy != "append":
                    report.kept_by_server += 1
                    done.append(copy.id)
                elif mailbox.name not in failed:
                    to_append.setdefault(mailbox.name, []).append(copy)
            for name, batch in to_append.items():
                mailbox = app.settings.mailbox(name)
                try:
                    if name not in opened:
                        box = sessions.enter_context(app.open_mailbox(mailbox, app.clock.now()))
                        opened[name] = (box, box.message_ids_in(mailbox.sent_folder, since))
                    box, present = opened[name]
                    missing = [copy for copy in batch if copy.message_id not in present]
                    refused = box.append_copies(
                        mailbox.sent_folder, [(copy.raw, copy.sent_at) for copy in missing]
                    )
                    report.found += len(batch) - len(missing)
                    report.appended += len(missing) - refused
                    report.refused += refused
                    done.extend(copy.id for copy in batch)
                except ImapError as exc:
                    failed.add(name)
                    report.failed_mailboxes += 1
                    log.warning(
                        "copies to %s not kept yet (next pass): %s",
                        mailbox.sent_folder,
                        exc,
                        extra=log_fields(mailbox=name),
                    )
            with app.engine.begin() as connection:
                journal_rows.record_copies(connection, done, app.clock.now())
