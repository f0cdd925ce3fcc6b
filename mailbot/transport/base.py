"""The interfaces at the edges, and the values they pass (pure): `Mailbox`, what mailbot reads
mail through, and `Sender`, what it sends through.

Ingestion (mailbot/intake/ingest.py) talks only to `Mailbox`: list the inbox, fetch without
marking anything seen, and mark processed by moving. The outbox (mailbot/sending/outbox.py)
talks only to `Sender`: open a session, send one message at a time, learn its outcome. IMAP
and SMTP (`imap.py`, `smtp.py`) and Microsoft Graph (`graph_mailbox.py`, `graph_sender.py`)
implement them; tests pass in-memory ones (tests/fakes.py).

Send outcomes: ``sent`` only after the server accepted the message; ``retry`` for a temporary
failure (the retry keeps the Message-ID); ``failed`` for a permanent refusal; ``held`` when
the relay cannot carry the message at all: a person must answer another way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from mailbot.settings import MailboxSettings


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as the server gave it; `raw` is the headers alone when `truncated`."""

    uid: int
    internal_date: datetime
    size: int
    raw: bytes
    truncated: bool


@dataclass(frozen=True, slots=True)
class Copies:
    """Which stored copies to delete from a folder: the messages whose bytes hash (SHA-256,
    hex) to one of `digests`, looked for by Message-ID, and by size for a message without
    one. The hash is the proof: a message that merely shares a Message-ID or a size is left
    alone. (Never searched by sender: the server would cache the From header of every
    message, the person's included, in its index files.)"""

    digests: frozenset[str]
    message_ids: tuple[str, ...] = ()
    sizes: frozenset[int] = frozenset()


def is_wanted(raw: bytes, wanted: Copies) -> bool:
    """Whether a folder's message is one of the `wanted` copies: its bytes hash to a stored
    digest, or its header block does (a message too large to store whole was stored as its
    headers, `FetchedMessage.truncated`)."""
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    return any(hashlib.sha256(part).hexdigest() in wanted.digests for part in (raw, head))


def message_id_of(head: bytes) -> str:
    """The Message-ID in a header block, as written (our own are never folded)."""
    for line in head.replace(b"\r\n ", b" ").splitlines():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"message-id":
            return value.strip().decode("ascii", "replace")
    return ""


class Mailbox(Protocol):
    """One watched mailbox, opened for a pass."""

    def prepare(self, mailbox: MailboxSettings) -> int:
        """Make the processed and quarantine folders if missing, select the watched folder
        read-write, and return its UIDVALIDITY."""
        ...

    def list_uids(self) -> list[int]:
        """Every message in the watched folder, deleted ones excluded, lowest UID first."""
        ...

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """The size in bytes of each message of `uids` still there."""
        ...

    def fetch(self, uids: Sequence[int], max_bytes: int) -> Iterator[FetchedMessage]:
        """The messages of `uids` still there, unread flags untouched; above `max_bytes`,
        the headers alone (`truncated`)."""
        ...

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move `uids` from the watched folder to `folder`."""
        ...

    def delete_copies(self, folder: str, wanted: Copies) -> int:
        """Delete the `wanted` copies from `folder` (\\Deleted, then UID EXPUNGE of those
        UIDs only); how many. A missing folder holds none."""
        ...

    def append_copies(self, folder: str, copies: Sequence[tuple[bytes, datetime]]) -> int:
        """Put copies of messages mailbot sent (bytes, when sent) in `folder` (made if
        missing), read; returns how many the server refused (each alone: the others are in)."""
        ...

    def message_ids_in(self, folder: str, since: datetime) -> set[str]:
        """The Message-IDs of the messages of `folder` that arrived on or after `since`'s day."""
        ...

    def recent_heads(self, folder: str, count: int) -> list[tuple[datetime, bytes]]:
        """The arrival instant and the Message-ID and X-Mailbot-Purpose lines of the newest
        `count` messages of `folder` (none if it does not exist)."""
        ...

    def read_folder(self, folder: str, max_bytes: int) -> list[FetchedMessage]:
        """Every message of `folder` (none if it does not exist), nothing marked; the
        caller selects the watched folder again before touching it."""
        ...


# Opens a mailbox for a pass, as of an instant (an OAuth2 token is taken as of it).
MailboxOpener = Callable[[MailboxSettings, datetime], AbstractContextManager[Mailbox]]


SendOutcome = Literal["sent", "retry", "failed", "held"]


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    error: str = ""  # the server's words; may name the recipient, so never logged whole
    # The Message-ID the transport sent it with, when not the one it was given (Graph).
    assigned_message_id: str = ""


class SenderSession(Protocol):
    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        """Send one message; a session that cannot reach the relay again raises SmtpError."""
        ...

    @property
    def announced_size(self) -> int | None:
        """The largest message the relay said it takes (its EHLO SIZE, RFC 1870), 0 when it
        announced no limit, None when it said nothing of the kind (yet, or ever: Graph)."""
        ...


class Sender(Protocol):
    def session(self, now: datetime) -> AbstractAsyncContextManager[SenderSession]:
        """A connected, logged-in session; SmtpError when the relay cannot be reached."""
        ...
