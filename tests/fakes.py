"""In-memory mailboxes and sender: the middle of mailbot, tested without servers.

`MemoryMailboxes` stands for the IMAP server (one folder tree per configured mailbox) and
`RecordingSender` for the SMTP relay. They implement the same interfaces as `ImapMailbox`
and `SmtpSender`, `Mailbox` and `Sender` (mailbot/transport/base.py), so the code under test
is the production code, with only the two edges replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailbot.errors import SmtpError
from mailbot.settings import MailboxSettings
from mailbot.transport.base import Copies, FetchedMessage, SendResult, is_wanted, message_id_of


@dataclass
class MemoryMailbox:
    """One mailbox's folders: folder -> uid -> (raw bytes, arrival instant)."""

    uidvalidity: int = 1
    folders: dict[str, dict[int, tuple[bytes, datetime]]] = field(
        default_factory=lambda: {"INBOX": {}}
    )
    next_uid: int = 1
    selected: str = "INBOX"

    def deliver(self, raw: bytes, at: datetime, folder: str = "INBOX") -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.folders.setdefault(folder, {})[uid] = (raw, at.astimezone(UTC))
        return uid

    def prepare(self, mailbox: MailboxSettings) -> int:
        for folder in (mailbox.processed_folder, mailbox.quarantine_folder, mailbox.folder):
            self.folders.setdefault(folder, {})
        self.selected = mailbox.folder
        return self.uidvalidity

    def list_uids(self) -> list[int]:
        return sorted(self.folders[self.selected])

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        inbox = self.folders[self.selected]
        return {uid: len(inbox[uid][0]) for uid in uids if uid in inbox}

    def fetch(self, uids: Sequence[int], max_bytes: int) -> Iterator[FetchedMessage]:
        inbox = self.folders[self.selected]
        for uid in uids:
            if uid not in inbox:
                continue
            raw, at = inbox[uid]
            if len(raw) > max_bytes:
                head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                yield FetchedMessage(uid, at, len(raw), head, True)
            else:
                yield FetchedMessage(uid, at, len(raw), raw, False)

    def move(self, uids: Sequence[int], folder: str) -> None:
        inbox = self.folders[self.selected]
        target = self.folders.setdefault(folder, {})
        for uid in uids:
            target[uid] = inbox.pop(uid)

    def delete_copies(self, folder: str, wanted: Copies) -> int:
        held = self.folders.get(folder, {})
        doomed = [uid for uid, (raw, _at) in held.items() if is_wanted(raw, wanted)]
        for uid in doomed:
            del held[uid]
        return len(doomed)

    def append_copies(self, folder: str, copies: Sequence[tuple[bytes, datetime]]) -> int:
        for raw, when in copies:
            self.deliver(raw, when, folder)
        return 0

    def message_ids_in(self, folder: str, since: datetime) -> set[str]:
        return {
            message_id_of(raw.split(b"\r\n\r\n", 1)[0])
            for raw, at in self.folders.get(folder, {}).values()
            if at.date() >= since.date()
        }

    def recent_heads(self, folder: str, count: int) -> list[tuple[datetime, bytes]]:
        newest = sorted(self.folders.get(folder, {}).items())[-count:]
        return [(at, raw.split(b"\r\n\r\n", 1)[0]) for _uid, (raw, at) in newest]

    def read_folder(self, folder: str, max_bytes: int) -> list[FetchedMessage]:
        return [
            FetchedMessage(uid, at, len(raw), raw, False)
            for uid, (raw, at) in sorted(self.folders.get(folder, {}).items())
        ]

    def inbox(self) -> list[bytes]:
        return [raw for raw, _at in self.folders[self.selected].values()]

    def folder(self, name: str) -> list[bytes]:
        return [raw for raw, _at in self.folders.get(name, {}).values()]


@dataclass
class MemoryMailboxes:
    """The IMAP server: a `MailboxOpener` over one `MemoryMailbox` per mailbox name."""

    boxes: dict[str, MemoryMailbox] = field(default_factory=dict)
    opened: int = 0

    def __getitem__(self, name: str) -> MemoryMailbox:
        return self.boxes.setdefault(name, MemoryMailbox())

    @contextmanager
    def __call__(self, mailbox: MailboxSettings, now: datetime) -> Iterator[MemoryMailbox]:
        self.opened += 1
        yield self[mailbox.name]


@dataclass(frozen=True, slots=True)
class Sent:
    envelope_from: str
    recipient: str
    raw: bytes


Answer = Callable[[str, bytes], SendResult]


@dataclass
class RecordingSender:
    """The relay: records what it accepts. `answer` decides each message's outcome (all
    accepted by default); `reachable = False` makes every session fail to open, and
    `session_limit` any session beyond that many open at once."""

    sent: list[Sent] = field(default_factory=list)
    answer: Answer = lambda _recipient, _raw: SendResult("sent")
    reachable: bool = True
    sessions: int = 0
    # Sessions the relay allows at once (None: any number); `most_open` is the peak seen.
    session_limit: int | None = None
    open_now: int = 0
    most_open: int = 0
    # The SIZE the relay announces (None: nothing, as Graph).
    size: int | None = None

    @asynccontextmanager
    async def session(self, now: datetime) -> AsyncIterator[RecordingSender]:
        if not self.reachable:
            raise SmtpError("SMTP relay.test:25: ConnectionRefusedError: refused")
        if self.session_limit is not None and self.open_now >= self.session_limit:
            raise SmtpError("SMTP relay.test:25: 421 4.7.0 too many connections")
        self.sessions += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            yield self
        finally:
            self.open_now -= 1

    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        result = self.answer(recipient, raw)
        if result.outcome == "sent":
            self.sent.append(Sent(envelope_from, recipient, raw))
        return result

    @property
    def announced_size(self) -> int | None:
        return self.size

    def to(self, recipient: str) -> list[bytes]:
        return [item.raw for item in self.sent if item.recipient == recipient]
