"""The mailboxes mailbot reads over IMAP: `ImapMailbox`, the IMAP implementation of `Mailbox`
(mailbot/transport/base.py), with imapclient.

Ingestion (mailbot/intake/ingest.py) talks only to `Mailbox`: list the inbox, fetch without marking
anything seen, and mark processed by moving. No value taken from a message ever reaches an
IMAP command: only UIDs the server gave and folder names from the configuration do.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from mailbot.db.store import chunks
from mailbot.errors import ImapError, TokenError
from mailbot.settings import MailboxSettings, ServerSettings
from mailbot.transport.base import (
    Copies,
    FetchedMessage,
    MailboxOpener,
    is_wanted,
    message_id_of,
)
from mailbot.transport.logins import Login, Logins, login_imap
from mailbot.transport.neterrors import describe

log = logging.getLogger(__name__)


def imap_opener(server: ServerSettings, logins: Logins) -> MailboxOpener:
    def open_mailbox(mailbox: MailboxSettings, now: datetime) -> ImapMailbox:
        return ImapMailbox(server, logins.imap(mailbox), now)

    return open_mailbox


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# imapclient's idle_check returns nothing, at once, when the connection has closed (it swallows
# the EOF): that many empty answers in a row, each well before its timeout, mean the server is
# gone, instead of a loop spinning on a dead socket until the next renewal.
CLOSED_AFTER_EMPTY_READS = 20
QUICK_SECONDS = 0.05


def _count_quick_empty(count: int, responses: Sequence[object], asked: float) -> int:
    """Consecutive idle checks that came back empty without waiting."""
    if responses or time.monotonic() - asked >= QUICK_SECONDS:
        return 0
    return count + 1


class ImapMailbox:
    """One logged-in IMAP session on one mailbox; use as a context manager. `now` is the
    instant of the login (an OAuth2 token is taken or renewed as of it)."""

    def __init__(self, server: ServerSettings, login: Login, now: datetime) -> None:
        self._server = server
        self._login = login
        self._now = now
        self._client: IMAPClient | None = None
        self.has_move = False

    def __enter__(self) -> ImapMailbox:
        server = self._server
        try:
            client = IMAPClient(
                server.host,
                port=server.port,
                ssl=server.tls == "tls",
                ssl_context=server.tls_context() if server.tls == "tls" else None,
                timeout=server.timeout_seconds,
            )
            if server.tls == "starttls":
                client.starttls(server.tls_context())
            login_imap(client, self._login, self._now)
        except (OSError, IMAPClientError, ssl.SSLError) as exc:
            raise ImapError(
                f"IMAP {server.host}:{server.port} as {self._login.user}: {describe(exc)}"
            ) from exc
        except TokenError as exc:
            raise ImapError(f"IMAP as {self._login.user}: no OAuth2 token: {exc}") from exc
        client.normalise_times = False
        self.has_move = client.has_capability("MOVE")
        self._client = client
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, IMAPClientError):
                self._client.logout()
            self._client = None

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    def prepare(self, mailbox: MailboxSettings) -> int:
        self.ensure_folder(mailbox.processed_folder)
        self.ensure_folder(mailbox.quarantine_folder)
        return self.select(mailbox.folder)

    def select(self, folder: str) -> int:
        """Select `folder` read-write; returns its UIDVALIDITY."""
        try:
            info = self.client.select_folder(folder)
        except IMAPClientError as exc:
            raise ImapError(f"cannot select folder {folder!r}: {exc}") from exc
        return int(info[b"UIDVALIDITY"])

    def ensure_folder(self, folder: str) -> None:
        try:
            if not self.client.folder_exists(folder):
                self.client.create_folder(folder)
                log.info("created IMAP folder %s", folder)
        except IMAPClientError as exc:
            raise ImapError(f"cannot create folder {folder!r}: {exc}") from exc

    def list_uids(self) -> list[int]:
        """Every message in the selected folder, deleted ones excluded, lowest UID first."""
        try:
            found = self.client.search(["NOT", "DELETED"])
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot list the folder: {exc}") from exc
        return sorted(int(uid) for uid in found)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        if not uids:
            return {}
        try:
            found = self.client.fetch(list(uids), ["RFC822.SIZE"])
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot read the size of {len(uids)} message(s): {exc}") from exc
        return {int(uid): int(data[b"RFC822.SIZE"]) for uid, data in found.items()}

    @property
    def supports_idle(self) -> bool:
        return bool(self.client.has_capability("IDLE"))

    def wait_for_mail(self, seconds: float, should_stop: Callable[[], bool]) -> bool:
        """IDLE (RFC 2177) for up to `seconds`: True as soon as the server announces a new
        message in the selected folder, False when the time is up or `should_stop` says so.
        The caller re-issues it, which renews IDLE before the server's timeout."""
        deadline = time.monotonic() + seconds
        quick_empty = 0
        try:
            self.client.idle()
            try:
                while not should_stop():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    asked = time.monotonic()
                    responses = self.client.idle_check(timeout=min(left, 1.0))
                    for response in responses:
                        if response and response[0] == b"BYE":
                            raise ImapError("IDLE ended: the server said BYE")
                        if len(response) > 1 and response[1] in (b"EXISTS", b"RECENT"):
                            return True
                    quick_empty = _count_quick_empty(quick_empty, responses, asked)
                    if quick_empty >= CLOSED_AFTER_EMPTY_READS:
                        raise ImapError("IDLE ended: the server closed the connection")
                return False
            finally:
                self.client.idle_done()
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"IDLE ended by the server or the network: {exc}") from exc

    def fetch(self, uids: Sequence[int], max_bytes: int) -> Iterator[FetchedMessage]:
        """Fetch `uids` with BODY.PEEK (never sets \\Seen); an oversized one as headers only."""
        if not uids:
            return
        try:
            meta = self.client.fetch(list(uids), ["INTERNALDATE", "RFC822.SIZE"])
            small = [
                uid for uid in uids if uid in meta and int(meta[uid][b"RFC822.SIZE"]) <= max_bytes
            ]
            large = [uid for uid in uids if uid in meta and uid not in small]
            bodies = self.client.fetch(small, ["BODY.PEEK[]"]) if small else {}
            headers = self.client.fetch(large, ["BODY.PEEK[HEADER]"]) if large else {}
        except (OSError, IMAPClientError) as exc:
            # A server that closes the session (its token expired) ends this pass for the
            # mailbox; what was stored is kept and the next pass logs in again.
            raise ImapError(f"cannot fetch {len(uids)} message(s): {exc}") from exc
        for uid in uids:
            if uid not in meta:
                continue  # expunged meanwhile by someone else
            size = int(meta[uid][b"RFC822.SIZE"])
            when = _aware(meta[uid][b"INTERNALDATE"])
            if uid in bodies:
                yield FetchedMessage(uid, when, size, bytes(bodies[uid][b"BODY[]"]), False)
            elif uid in headers:
                yield FetchedMessage(uid, when, size, bytes(headers[uid][b"BODY[HEADER]"]), True)

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move `uids` out of the selected folder: MOVE, else COPY + \\Deleted + UID EXPUNGE."""
        if not uids:
            return
        try:
            if self.has_move:
                self.client.move(list(uids), folder)
            else:
                self.client.copy(list(uids), folder)
                self.client.add_flags(list(uids), [b"\\Deleted"], silent=True)
                # UID EXPUNGE touches only these messages, never someone else's deletions.
                self.client.uid_expunge(list(uids))
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot move {len(uids)} message(s) to {folder!r}: {exc}") from exc

    def delete_copies(self, folder: str, wanted: Copies) -> int:
        if not wanted.digests:
            return 0
        try:
            if not self.client.folder_exists(folder):
                return 0
            self.select(folder)
            uids: set[int] = set()
            for message_id in wanted.message_ids:
                uids.update(self.client.search(["HEADER", "Message-ID", message_id]))
            if wanted.sizes:
                listed = self.client.search("ALL")
                for chunk in chunks(listed, 500):
                    found = self.client.fetch(chunk, ["RFC822.SIZE"])
                    uids.update(
                        uid for uid, data in found.items() if data[b"RFC822.SIZE"] in wanted.sizes
                    )
            doomed: list[int] = []
            ordered = sorted(uids)
            for chunk in chunks(ordered, 50):
                fetched = self.client.fetch(chunk, ["BODY.PEEK[]"])
                doomed += [
                    uid
                    for uid, data in fetched.items()
                    if is_wanted(bytes(data[b"BODY[]"]), wanted)
                ]
            if doomed:
                self.client.add_flags(doomed, [b"\\Deleted"], silent=True)
                self.client.uid_expunge(doomed)
            return len(doomed)
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot delete copies from {folder!r}: {exc}") from exc

    def append_copies(self, folder: str, copies: Sequence[tuple[bytes, datetime]]) -> int:
        if not copies:
            return 0
        self.ensure_folder(folder)
        seen = [b"\\Seen"]
        try:
            if self.client.has_capability("MULTIAPPEND"):
                # One command for the lot (RFC 3502): a backlog's copies do not each wait
                # for a round trip; the server keeps all of them or none.
                try:
                    self.client.multiappend(
                        folder, [{"msg": raw, "flags": seen, "date": when} for raw, when in copies]
                    )
                    return 0
                except IMAPClientAbortError:
                    raise
                except IMAPClientError:
                    log.warning("MULTIAPPEND to %s refused; appending one by one", folder)
            refused = 0
            for raw, when in copies:
                try:
                    self.client.append(folder, raw, flags=seen, msg_time=when)
                except IMAPClientAbortError:
                    raise
                except IMAPClientError as exc:
                    # One copy the server will not take (too large...) never holds up the
                    # others; the message itself was sent.
                    refused += 1
                    log.warning("a copy refused by %s: %s", folder, exc)
            return refused
        except (OSError, IMAPClientAbortError) as exc:  # the session is gone: next pass
            raise ImapError(f"cannot append to {folder!r}: {exc}") from exc

    def message_ids_in(self, folder: str, since: datetime) -> set[str]:
        try:
            if not self.client.folder_exists(folder):
                return set()
            self.client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in self.client.search(["SINCE", since.date()]))
            found: set[str] = set()
            # A few hundred UIDs a command: servers cap the length of a command line.
            for chunk in chunks(uids, 500):
                fetched = self.client.fetch(chunk, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
                found |= {
                    message_id_of(bytes(data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]))
                    for data in fetched.values()
                }
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot search {folder!r}: {exc}") from exc
        return found - {""}

    def recent_heads(self, folder: str, count: int) -> list[tuple[datetime, bytes]]:
        item = b"BODY[HEADER.FIELDS (MESSAGE-ID X-MAILBOT-PURPOSE)]"
        try:
            if not self.client.folder_exists(folder):
                return []
            self.client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in self.client.search(["NOT", "DELETED"]))[-count:]
            if not uids:
                return []
            found = self.client.fetch(
                uids, ["INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-MAILBOT-PURPOSE)]"]
            )
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot read {folder!r}: {exc}") from exc
        return [
            (_aware(data[b"INTERNALDATE"]), bytes(data[item]))
            for data in found.values()
            if item in data
        ]

    def read_folder(self, folder: str, max_bytes: int) -> list[FetchedMessage]:
        try:
            if not self.client.folder_exists(folder):
                return []
            self.client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in self.client.search(["NOT", "DELETED"]))
        except (OSError, IMAPClientError) as exc:
            raise ImapError(f"cannot read {folder!r}: {exc}") from exc
        found: list[FetchedMessage] = []
        for chunk in chunks(uids, 500):
            found.extend(self.fetch(chunk, max_bytes))
        return found

    def noop(self) -> None:
        self.client.noop()
