"""The watched mailboxes (the queues): folders, journal, staff, notes address (pure)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mailbot.settings.base import Category, Frozen


class MailboxSettings(Frozen):
    """One watched mailbox (a queue): where its mail arrives and which standard applies."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    address: str
    display_name: str
    login: str
    # The IMAP password's variable; not used when [imap.auth] method = "oauth2".
    password_env: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Traites"
    quarantine_folder: str = "Quarantaine"
    # The journal of what mailbot sent (mailbot/recovery/journal.py): "append" puts a copy of each
    # message in `sent_folder` after the relay's 250 (generic IMAP servers); "server" when the
    # server keeps that copy itself for SMTP submission (Exchange Online, Gmail: a second
    # copy would be a duplicate); "none" keeps no journal (reconciliation then cannot tell
    # what was sent).
    sent_folder: str = "Sent"
    sent_copy: Literal["append", "server", "none"] = "append"
    # The erasure ledger (mailbot/privacy/ledger.py): a folder of mailbot's own in every
    # mailbox, where each erasure and retention batch leaves a non-personal entry before
    # anything is destroyed; a rebuild or a restore reads it back.
    ledger_folder: str = "Registre-mailbot"
    category: Category
    commitments: tuple[str, ...]
    staff: tuple[str, ...] = ()
    supervisors: tuple[str, ...] = ()
    # Where staff write internal notes on a ticket (Request Tracker's comment address): mail
    # to it is never relayed to a citizen. It must arrive in this mailbox's watched folder:
    # by default the queue's address with "+note" before the "@" (plus addressing, on by
    # default in Exchange Online and Gmail; Dovecot: recipient_delimiter = +).
    notes_address: str = ""

    @model_validator(mode="after")
    def _notes_address(self) -> MailboxSettings:
        address = (self.notes_address or default_notes_address(self.address)).strip().lower()
        if address.count("@") != 1 or address == self.address.strip().lower():
            raise ValueError(
                f"mailbox {self.name!r}: notes_address {self.notes_address!r} must be one "
                "address other than the queue's own (default: the address with +note before @)"
            )
        object.__setattr__(self, "notes_address", address)
        return self

    @property
    def workers(self) -> frozenset[str]:
        """Who works this queue: its staff and supervisors (stripped, lower-case)."""
        return frozenset(a.strip().lower() for a in (*self.staff, *self.supervisors))


def default_notes_address(address: str) -> str:
    """The queue's address with "+note" before the "@": renseignements+note@mri.gouv.qc.ca."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}+note@{domain}"


GRAPH_SENT_FOLDER = "Sent Items"


def journal_over_graph(mailboxes: tuple[MailboxSettings, ...]) -> tuple[MailboxSettings, ...]:
    """The mailboxes' journal under [graph]: Graph keeps the copy of every message it sends in
    the mailbox's well-known Sent Items folder itself, whatever its display name, so appending
    one would be a duplicate: `sent_copy = "append"` means "server" there, and `sent_folder` is
    Sent Items ("none" stays none)."""
    return tuple(
        mailbox
        if mailbox.sent_copy == "none"
        or (mailbox.sent_copy == "server" and mailbox.sent_folder == GRAPH_SENT_FOLDER)
        else mailbox.model_copy(update={"sent_copy": "server", "sent_folder": GRAPH_SENT_FOLDER})
        for mailbox in mailboxes
    )
