"""A watched mailbox read through Microsoft Graph: the `Mailbox` interface over a delta query
(effects: Graph, and the database's Graph bookkeeping).

Ingestion (mailbot/intake/ingest.py) is the same as over IMAP; only the numbers differ. Graph names
a message by an opaque immutable id; mailbot gives each id it sees a number of its own (the
`graph_message` table) and uses it as the message's UID, with `GRAPH_UIDVALIDITY`, so the
(mailbox, UIDVALIDITY, UID) key of every stored message means what it means over IMAP: a
message listed again is the same message, never a second one.

    prepare   find the watched folder, create the processed and quarantine folders when
              missing (top-level folders of the mailbox, by display name), then run the
              folder's delta query from the stored delta link: new messages are recorded as
              present, moved or deleted ones as absent, and the new delta link saved, in one
              transaction. A delta link Graph no longer knows (410, syncStateNotFound) means
              a full listing: every message in the folder is recorded by its immutable id
              (those seen before keep their number), the others marked absent. Where the
              deployment offers no delta query for messages (China), every prepare is such
              a full listing (`GET mailFolders/{id}/messages`, in pages).
    list_uids the numbers of the messages present
    fetch     GET /messages/{id}/$value: the MIME exactly as Exchange holds it, parsed like
              an IMAP message; cut to its headers above `max_bytes` (read no further)
    move      POST /messages/{id}/move to the folder, by id; with immutable ids the message
              keeps its id, so a move repeated after a crash finds it moved already

The recovery journal (mailbot/recovery/) reads the processed and quarantine folders and Sent
Items, where Graph keeps the copy of every draft it sends (nothing is ever appended there:
`sent_copy` is "server" under [graph], settings/mailboxes.py); the erasure ledger's entries
are kept as items of a folder of their own (`append_copies`):

    read_folder    every message of a folder, oldest first: the listing
                   (`$select=id,receivedDateTime`, `$orderby=receivedDateTime`, paged), then
                   each message's `$value`
    recent_heads   the newest messages (`$orderby=receivedDateTime desc`, `$top`), the start
                   of each one's `$value` for its headers
    message_ids_in `$filter=receivedDateTime ge ...`, `$select=internetMessageId`
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from types import TracebackType

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from mailbot.db import graph_rows
from mailbot.errors import GraphError
from mailbot.settings import MailboxSettings
from mailbot.transport.base import Copies, FetchedMessage, MailboxOpener, is_wanted
from mailbot.transport.graph import IMMUTABLE_IDS, GraphClient, instant, is_resync, quote

log = logging.getLogger(__name__)

# The UIDVALIDITY of every Graph folder: the numbers are mailbot's own and never reused.
GRAPH_UIDVALIDITY = 0x47524150  # "GRAP"
# What `recent_heads` reads of each message: its headers, and no more than this.
HEAD_BYTES = 64 * 1024
# IMAP's INBOX is Graph's well-known folder "inbox"; other folders go by display name.
WELL_KNOWN = {
    "inbox": "inbox",
    "sent items": "sentitems",
    "sentitems": "sentitems",
    "drafts": "drafts",
}


@dataclass
class FolderIds:
    """Folder name -> Graph id, per mailbox, kept across passes (folders rarely change)."""

    ids: dict[tuple[str, str], str]

    def get(self, user: str, name: str) -> str | None:
        return self.ids.get((user.lower(), name))

    def put(self, user: str, name: str, folder_id: str) -> None:
        self.ids[(user.lower(), name)] = folder_id

    def forget(self, user: str) -> None:
        for key in [key for key in self.ids if key[0] == user.lower()]:
            del self.ids[key]


def graph_opener(client: GraphClient, engine: Engine) -> MailboxOpener:
    folders = FolderIds({})

    def open_mailbox(mailbox: MailboxSettings, now: datetime) -> GraphMailbox:
        return GraphMailbox(client, engine, folders, now, mailbox)

    return open_mailbox


class GraphMailbox:
    """One watched mailbox over Graph, for a pass; a context manager like `ImapMailbox`."""

    def __init__(
        self,
        client: GraphClient,
        engine: Engine,
        folders: FolderIds,
        now: datetime,
        mailbox: MailboxSettings | None = None,
    ):
        self._client = client
        self._engine = engine
        self._folders = folders
        self._now = now
        # Known when opened for one mailbox (the pass, erasure); `prepare` sets it too.
        self._mailbox: MailboxSettings | None = mailbox
        self._listed: dict[int, graph_rows.Listed] = {}
        self.resynced = False

    def __enter__(self) -> GraphMailbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, GraphError) and self._mailbox is not None:
            self._folders.forget(self._mailbox.address)  # a folder may have gone

    @property
    def user(self) -> str:
        if self._mailbox is None:
            raise GraphError("the mailbox is not prepared")
        return self._mailbox.address

    # --- folders ---------------------------------------------------------------------------

    def folder_id(self, name: str, *, create: bool) -> str:
        """The id of the mailbox's folder `name` (made at the top level when `create`)."""
        cached = self._folders.get(self.user, name)
        if cached is not None:
            return cached
        well_known = WELL_KNOWN.get(name.lower())
        if well_known is not None:
            answer = self._client.call(self.user, "GET", f"mailFolders/{well_known}")
            folder_id = str(answer.json()["id"])
        else:
            found = self._find_folder(name)
            if found is None and create:
                answer = self._client.call(
                    self.user,
                    "POST",
                    "mailFolders",
                    json_body={"displayName": name},
                    allow=frozenset({409}),
                )
                if answer.status == 409:  # made meanwhile by someone else
                    found = self._find_folder(name)
                else:
                    found = str(answer.json()["id"])
                    log.info("created Graph folder %s in %s", name, self.user)
            if found is None:
                raise GraphError(f"Graph: no folder {name!r} in {self.user}", 404)
            folder_id = found
        self._folders.put(self.user, name, folder_id)
        return folder_id

    def _find_folder(self, name: str) -> str | None:
        answer = self._client.call(
            self.user,
            "GET",
            "mailFolders",
            params={"$filter": f"displayName eq {quote(name)}", "$select": "id,displayName"},
        )
        for item in answer.json().get("value", []):
            if isinstance(item, dict) and item.get("displayName") == name:
                return str(item["id"])
        return None

    # --- the Mailbox interface -------------------------------------------------------------

    def prepare(self, mailbox: MailboxSettings) -> int:
        self._mailbox = mailbox
        self.folder_id(mailbox.processed_folder, create=True)
        self.folder_id(mailbox.quarantine_folder, create=True)
        self.sync()
        return GRAPH_UIDVALIDITY

    def sync(self) -> None:
        """Run the watched folder's delta query and record what it says."""
        mailbox = self._mailbox
        assert mailbox is not None
        folder_id = self.folder_id(mailbox.folder, create=False)
        with self._engine.connect() as connection:
            link = graph_rows.delta_link(connection, mailbox.name, mailbox.folder)
        if not self._client.settings.deployment.message_delta:
            # No delta query in this deployment (China): the folder is listed at each poll,
            # and what is no longer listed has left it.
            self._record_all(mailbox, self._list_all(folder_id))
            return
        start = link or f"mailFolders/{folder_id}/messages/delta"
        try:
            seen, new_link = self._delta(start, first=not link)
            full = not link
        except GraphError as exc:
            if not link or not is_resync(exc):
                raise
            log.warning(
                "Graph no longer knows the delta link of %s/%s (%s): listing the folder again; "
                "messages seen before keep their number and are not processed twice",
                mailbox.name,
                mailbox.folder,
                exc.code or exc.status,
            )
            seen, new_link = self._delta(f"mailFolders/{folder_id}/messages/delta", first=True)
            full = True
            self.resynced = True
        for attempt in (1, 2):
            try:
                self._record(mailbox, seen, new_link, full=full)
                return
            except IntegrityError:
                # Another instance recorded the same new message first: its number stands.
                if attempt == 2:
                    raise

    def _list_all(self, folder_id: str) -> list[graph_rows.Seen]:
        """Every message of the folder by listing it, page after page."""
        seen: list[graph_rows.Seen] = []
        url = f"mailFolders/{folder_id}/messages"
        params: dict[str, str] = {
            "$select": "id,receivedDateTime",
            "$top": str(self._client.settings.page_size),
        }
        for _page in range(100_000):
            answer = self._client.call(self.user, "GET", url, params=params).json()
            for item in answer.get("value", []):
                if isinstance(item, dict) and item.get("id"):
                    seen.append(
                        graph_rows.Seen(str(item["id"]), instant(item.get("receivedDateTime")))
                    )
            if "@odata.nextLink" not in answer:
                return seen
            url, params = str(answer["@odata.nextLink"]), {}
        raise GraphError(f"Graph listing of {self.user}: no end to its pages")

    def _record_all(self, mailbox: MailboxSettings, seen: list[graph_rows.Seen]) -> None:
        for attempt in (1, 2):
            try:
                self._record(mailbox, seen, "", full=True)
                return
            except IntegrityError:
                # Another instance recorded the same new message first: its number stands.
                if attempt == 2:
                    raise

    def _record(
        self,
        mailbox: MailboxSettings,
        seen: list[graph_rows.Seen],
        new_link: str,
        *,
        full: bool,
    ) -> None:
        now = self._now
        with self._engine.begin() as connection:
            graph_rows.record_seen(connection, mailbox.name, seen, now)
            if full:
                listed = [item.immutable_id for item in seen if not item.removed]
                graph_rows.mark_absent_except(connection, mailbox.name, listed, now)
            graph_rows.save_delta_link(
                connection, mailbox.name, mailbox.folder, new_link, now, resync=self.resynced
            )
            self._listed = {row.uid: row for row in graph_rows.present(connection, mailbox.name)}

    def _delta(self, start: str, *, first: bool) -> tuple[list[graph_rows.Seen], str]:
        """Every page of a delta query from `start`: what it listed, and the new delta link."""
        settings = self._client.settings
        prefer = {"Prefer": f"{IMMUTABLE_IDS}, odata.maxpagesize={settings.page_size}"}
        params = {"$select": "receivedDateTime"} if first else None
        seen: list[graph_rows.Seen] = []
        url = start
        for _page in range(100_000):
            answer = self._client.call(
                self.user, "GET", url, params=params, extra_headers=prefer
            ).json()
            params = None  # the links Graph gives carry their own query
            for item in answer.get("value", []):
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                seen.append(
                    graph_rows.Seen(
                        str(item["id"]),
                        instant(item.get("receivedDateTime")),
                        removed="@removed" in item,
                    )
                )
            if "@odata.nextLink" in answer:
                url = str(answer["@odata.nextLink"])
                continue
            if "@odata.deltaLink" in answer:
                return seen, str(answer["@odata.deltaLink"])
            break
        raise GraphError(f"Graph delta query of {self.user}: no delta link in the answer")

    def list_uids(self) -> list[int]:
        return sorted(self._listed)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        # Graph's message has no size property; batches are cut by count, and an oversized
        # message is cut to its headers as it is read (fetch).
        return {}

    def fetch(self, uids: Sequence[int], max_bytes: int) -> Iterator[FetchedMessage]:
        for uid in uids:
            listed = self._listed.get(uid)
            if listed is None:
                continue
            answer = self._client.call(
                self.user,
                "GET",
                f"messages/{listed.immutable_id}/$value",
                limit=max_bytes,
                allow=frozenset({404}),
            )
            if answer.status == 404:
                continue  # moved or deleted meanwhile by someone else
            when = listed.received_at or self._now
            if answer.truncated:
                head = answer.body.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                size = int(answer.headers.get("Content-Length") or 0) or max_bytes + 1
                yield FetchedMessage(uid, when, size, head, True)
            else:
                yield FetchedMessage(uid, when, len(answer.body), answer.body, False)

    def move(self, uids: Sequence[int], folder: str) -> None:
        if not uids:
            return
        destination = self.folder_id(folder, create=True)
        moved: list[int] = []
        try:
            for uid in uids:
                listed = self._listed.get(uid)
                if listed is None:
                    continue
                self._client.call(
                    self.user,
                    "POST",
                    f"messages/{listed.immutable_id}/move",
                    json_body={"destinationId": destination},
                    allow=frozenset({404}),  # deleted meanwhile: nothing left to move
                )
                moved.append(uid)
        finally:
            with self._engine.begin() as connection:
                graph_rows.mark_moved(connection, moved, self._now)
            for uid in moved:
                self._listed.pop(uid, None)

    def delete_copies(self, folder: str, wanted: Copies) -> int:
        """Delete the `wanted` copies from `folder` for good: `permanentDelete` where the
        deployment offers it (the global service), else DELETE, after which each stays
        recoverable in Recoverable Items for the mailbox's deleted-item retention (`check` and
        `erase` say so). Found by Message-ID, or every message of the folder when one has none
        (Graph gives no size to search by); proven by their hash."""
        if not wanted.digests:
            return 0
        try:
            folder_id = self.folder_id(folder, create=False)
        except GraphError as missing:
            if missing.status == 404:
                return 0  # a missing folder holds none
            raise
        candidates: set[str] = set()
        filters = [f"internetMessageId eq {quote(m)}" for m in wanted.message_ids]
        if wanted.sizes:
            filters.append("")  # every message of the folder
        for found in filters:
            params = {"$select": "id,internetMessageId", "$top": "100"}
            if found:
                params["$filter"] = found
            url = f"mailFolders/{folder_id}/messages"
            for _page in range(10_000):
                answer = self._client.call(self.user, "GET", url, params=params).json()
                candidates.update(
                    str(item["id"])
                    for item in answer.get("value", [])
                    if isinstance(item, dict) and item.get("id")
                )
                if "@odata.nextLink" not in answer:
                    break
                url, params = str(answer["@odata.nextLink"]), {}
        deleted = 0
        for message in sorted(candidates):
            raw = self._client.call(
                self.user, "GET", f"messages/{message}/$value", allow=frozenset({404})
            )
            if raw.status == 404 or not is_wanted(raw.body, wanted):
                continue
            self._client.delete_message(self.user, message)
            deleted += 1
        return deleted

    # --- the journal (mailbot/recovery/journal.py, mailbot/recovery/reconcile.py) --------------

    def append_copies(self, folder: str, copies: Sequence[tuple[bytes, datetime]]) -> int:
        """Keep each message in `folder` (made if missing) as an item of the mailbox: its
        subject and its plain text, read, not a draft (MAPI's message flags set to "read" at
        creation). Graph cannot file MIME as a received item, so only the text is kept: what
        mailbot keeps this way (the erasure ledger, mailbot/privacy/ledger.py) is all in it.
        The journal never asks: under [graph] Graph keeps the Sent Items copy itself
        (`journal_over_graph`, settings/mailboxes.py)."""
        if not copies:
            return 0
        folder_id = self.folder_id(folder, create=True)
        for raw, _when in copies:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            body = message.get_body(("plain",))
            text = body.get_content() if isinstance(body, EmailMessage) else ""
            self._client.call(
                self.user,
                "POST",
                f"mailFolders/{folder_id}/messages",
                json_body={
                    "subject": str(message.get("Subject", "")),
                    "body": {"contentType": "text", "content": text},
                    "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}],
                },
            )
        return 0

    def _listing(
        self, folder: str, params: dict[str, str], *, pages: int = 100_000
    ) -> Iterator[dict[str, object]]:
        """The items of `GET mailFolders/{folder}/messages` with `params`, page after page
        (nothing when the folder does not exist: it holds no mail)."""
        try:
            folder_id = self.folder_id(folder, create=False)
        except GraphError as missing:
            if missing.status == 404:
                return
            raise
        url = f"mailFolders/{folder_id}/messages"
        query: dict[str, str] = {"$top": str(self._client.settings.page_size), **params}
        for _page in range(pages):
            answer = self._client.call(self.user, "GET", url, params=query).json()
            for item in answer.get("value", []):
                if isinstance(item, dict) and item.get("id"):
                    yield item
            if "@odata.nextLink" not in answer:
                return
            url, query = str(answer["@odata.nextLink"]), {}

    def message_ids_in(self, folder: str, since: datetime) -> set[str]:
        """The Message-IDs of the folder's messages received since `since`."""
        start = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {"$select": "internetMessageId", "$filter": f"receivedDateTime ge {start}"}
        return {
            str(item["internetMessageId"])
            for item in self._listing(folder, params)
            if item.get("internetMessageId")
        }

    def recent_heads(self, folder: str, count: int) -> list[tuple[datetime, bytes]]:
        """The newest `count` messages of the folder: when each arrived, and its header block,
        read from the start of its MIME (`internetMessageHeaders` is empty for what the
        mailbox sent itself: Sent Items)."""
        params = {"$select": "id,receivedDateTime", "$orderby": "receivedDateTime desc"}
        params["$top"] = str(count)
        heads: list[tuple[datetime, bytes]] = []
        for item in self._listing(folder, params, pages=1):
            raw = self._client.call(
                self.user,
                "GET",
                f"messages/{item['id']}/$value",
                limit=HEAD_BYTES,
                allow=frozenset({404}),
            )
            if raw.status == 404:
                continue  # moved or deleted meanwhile
            head = raw.body.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0] + b"\r\n\r\n"
            heads.append((instant(item.get("receivedDateTime")) or self._now, head))
            if len(heads) == count:
                break
        return heads

    def read_folder(self, folder: str, max_bytes: int) -> list[FetchedMessage]:
        """Every message of the folder, oldest first, each cut to its headers above
        `max_bytes` as `fetch` does. The UIDs are this listing's own (1, 2, ...: reconcile
        only orders by them after the received instant); the instant is `receivedDateTime`,
        which for Sent Items is when Exchange stored the copy, as it sent it."""
        params = {"$select": "id,receivedDateTime", "$orderby": "receivedDateTime"}
        found: list[FetchedMessage] = []
        for uid, item in enumerate(self._listing(folder, params), start=1):
            answer = self._client.call(
                self.user,
                "GET",
                f"messages/{item['id']}/$value",
                limit=max_bytes,
                allow=frozenset({404}),
            )
            if answer.status == 404:
                continue  # moved or deleted meanwhile
            when = instant(item.get("receivedDateTime")) or self._now
            if answer.truncated:
                head = answer.body.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                size = int(answer.headers.get("Content-Length") or 0) or max_bytes + 1
                found.append(FetchedMessage(uid, when, size, head, True))
            else:
                found.append(FetchedMessage(uid, when, len(answer.body), answer.body, False))
        return found
