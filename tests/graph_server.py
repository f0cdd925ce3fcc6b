"""A local Microsoft Graph for the tests: the part of Graph's documented HTTP API mailbot uses,
on a free loopback port, in a thread, with Exchange's habits where they matter.

    POST /{tenant}/oauth2/v2.0/token                     client credentials (Basic or form)
    GET  /v1.0/users/{u}/mailFolders[?$filter=displayName eq 'X']
    GET  /v1.0/users/{u}/mailFolders/{id or well-known name}
    POST /v1.0/users/{u}/mailFolders                     201, or 409 ErrorFolderExists
    POST /v1.0/users/{u}/mailFolders/{f}/messages        an item in the folder, from JSON: a
                                                         draft, unless MAPI's message flags
                                                         (Integer 0x0E07) say it is not
    GET  /v1.0/users/{u}/mailFolders/{f}/messages/delta  pages (Prefer: odata.maxpagesize),
                                                         @removed entries, a delta link; 410
                                                         SyncStateNotFound once links expire
    GET  /v1.0/users/{u}/mailFolders/{f}/messages   $filter internetMessageId eq '<id>',
                                                    receivedDateTime ge <instant> or an
                                                    extended property's Any(...), $orderby
                                                    receivedDateTime [desc], $top, $skip pages,
                                                    $expand=singleValueExtendedProperties(...)
    GET  /v1.0/users/{u}/messages                   every folder: $filter subject eq, or
                                                    internetMessageId eq, or Any(...)
    GET  /v1.0/users/{u}/messages/{id}[/$value]
    PATCH /v1.0/users/{u}/messages/{id}                  singleValueExtendedProperties
    POST /v1.0/users/{u}/messages/{id}/move              the id stays (immutable ids)
    POST /v1.0/users/{u}/sendMail                        MIME in base64 (text/plain), 202
    POST /v1.0/users/{u}/messages                        a draft: MIME in base64, or JSON (only
                                                         x- internetMessageHeaders)
    POST /v1.0/users/{u}/messages/{id}/attachments       a fileAttachment under 3 MB
    POST /v1.0/users/{u}/messages/{id}/attachments/createUploadSession   3 MB to 150 MB; PUT
                                                         the upload URL in order
    POST /v1.0/users/{u}/messages/{id}/send
    DELETE /v1.0/users/{u}/messages/{id}                 to Recoverable Items (Deletions)
    POST /v1.0/users/{u}/messages/{id}/permanentDelete   gone (the Purges folder)

What Microsoft documents about sizes is enforced, so that a client that ignores it fails
here: a request body over 4 MB (4,194,304 bytes) is answered 413; a POSTed attachment of
3 MB or more is refused; an upload session under 3 MB is refused with
ErrorAttachmentSizeShouldNotBeLessThanMinimumSize, one over 150 MB too; its PUTs must come in
order, each range matching its bytes, with Content-Type application/octet-stream, the last
answered 201 with a Location. The documentation does not say whether its MB is 10^6 or 2^20
bytes: `megabyte` chooses (tests run both). The error codes other than the documented one are
this server's own.

A national cloud is played by switching off what its reference pages say it lacks:
`offers_permanent_delete` (global only), `offers_message_delta` (not in China),
`offers_upload_sessions` (not in US Government L4/L5); such a request is answered 400.

Mail sent to a hosted mailbox is delivered to its inbox; any other recipient's copy lands in
`outgoing`. Sent mail is kept in the sender's Sent Items (received at its Date header: the
instant a fixed clock gave it), with the draft's extended properties (the same item, moved).
`throttle(n)` answers the next n Graph requests 429 (or 503/504) with a Retry-After, and
`throttle_uploads(n)` the next n PUTs to an upload session's URL;
`expire_delta_links()` makes every delta link unknown; `drop_headers` removes headers from sent
mail as Exchange is reported to do; `in_flight_peak` is the most requests seen at once for one
mailbox; `fail_after_send` makes sendMail or a draft's send go out and then answer 504 (the
outcome unknown to the caller); `rewrite_message_ids` gives each message Exchange stores a
Message-ID of its own; `fail(method, pattern, mode)` loses the answer to a request after
doing it ("answer_lost": the connection is closed unanswered) or holds a request without
doing it ("hang", until `release()` or `hang_seconds`). `sizes` records every request's body
length; `now` stamps each message's createdDateTime.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import itertools
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

TENANT = "3f2c1a6e-8b4d-4e1f-9a7c-2d5e6f708192"
RECOVERABLE = "Recoverable Items Deletions"
WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "recoverableitemsdeletions": RECOVERABLE,
}
# Not a folder of the mailbox's tree: never listed, never in a search of every folder.
HIDDEN = frozenset({RECOVERABLE})
# "The maximum request length supported is 4MB" (ASP.NET's 4096 KB).
REQUEST_LIMIT = 4 * 1024 * 1024
TOO_SMALL = "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
_ANY = re.compile(
    r"^singleValueExtendedProperties/Any\(ep: ep/id eq '((?:[^']|'')*)' and "
    r"ep/value eq '((?:[^']|'')*)'\)$"
)
_EXPAND = re.compile(r"^singleValueExtendedProperties\(\$filter=id eq '((?:[^']|'')*)'\)$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
Mode = Literal["answer_lost", "hang"]


@dataclass
class Message:
    id: str
    folder: str  # folder id
    raw: bytes
    received: datetime
    is_draft: bool = False
    draft: dict[str, Any] = field(default_factory=dict)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    extended: dict[str, str] = field(default_factory=dict)  # singleValueExtendedProperties
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def internet_message_id(self) -> str:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        return str(parsed.get("Message-ID", "")).strip() or str(
            self.draft.get("internetMessageId", "")
        )


@dataclass
class Mailbox:
    address: str
    folders: dict[str, str] = field(default_factory=dict)  # id -> display name
    messages: dict[str, Message] = field(default_factory=dict)

    def folder_named(self, name: str) -> str | None:
        return next((fid for fid, n in self.folders.items() if n == name), None)


@dataclass
class Fault:
    method: str
    pattern: str
    mode: Mode
    left: int


@dataclass
class Change:
    seq: int
    mailbox: str
    folder: str
    message: str
    added: bool


@dataclass
class GraphServer:
    """The local Graph; start() it, register() mailboxes, deliver() mail."""

    client_id: str = "graph-client"
    client_secret: str = "graph-secret"
    port: int = 0
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    outgoing: list[tuple[str, bytes]] = field(default_factory=list)  # (recipient, raw)
    drop_headers: frozenset[str] = frozenset()
    fail_after_send: int = 0
    rewrite_message_ids: bool = False
    granted: set[str] | None = None  # None: every mailbox
    # Exchange Online delivers user+tag@domain to user@domain (its default since 2022);
    # False: as a tenant that turned plus addressing off (the address is unknown).
    plus_addressing: bool = True
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    # When mail answering each Message-ID (its In-Reply-To) first left (time.time()).
    answered_at: dict[str, float] = field(default_factory=dict)
    in_flight_peak: dict[str, int] = field(default_factory=dict)
    tokens_issued: int = 0
    throttled_answers: int = 0
    _in_flight: dict[str, int] = field(default_factory=dict)
    _throttle: list[tuple[int, str]] = field(default_factory=list)
    _throttle_uploads: list[tuple[int, str]] = field(default_factory=list)
    _changes: list[Change] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _epoch: int = 1
    _tokens: set[str] = field(default_factory=set)
    _uploads: dict[str, tuple[str, str, str, str, int, bytearray]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    slow_seconds: float = 0.0  # each Graph request takes this long (to see concurrency)
    # What "MB" means in Microsoft's attachment limits (3 MB, 150 MB).
    megabyte: int = 1024 * 1024
    offers_permanent_delete: bool = True
    offers_message_delta: bool = True
    offers_upload_sessions: bool = True
    sizes: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, bytes)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    hang_seconds: float = 30.0
    faults_hit: int = 0
    _faults: list[Fault] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)

    # --- the test's side -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1.0"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{TENANT}/oauth2/v2.0/token"

    def start(self) -> GraphServer:
        server = _Quiet(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def register(self, address: str) -> Mailbox:
        with self._lock:
            box = Mailbox(address.lower())
            for name in WELL_KNOWN.values():
                box.folders[_new_id()] = name
            self.mailboxes[address.lower()] = box
            return box

    def deliver(self, address: str, raw: bytes, at: datetime | None = None) -> str:
        with self._lock:
            box = self.mailboxes[address.lower()]
            inbox = box.folder_named("Inbox")
            assert inbox is not None
            return self._add(box, inbox, raw, at or datetime.now(UTC))

    def folder(self, address: str, name: str) -> list[bytes]:
        with self._lock:
            box = self.mailboxes[address.lower()]
            fid = box.folder_named(name)
            return [m.raw for m in box.messages.values() if m.folder == fid]

    def to(self, recipient: str) -> list[bytes]:
        with self._lock:
            return [raw for who, raw in self.outgoing if who.lower() == recipient.lower()]

    def throttle(self, count: int, status: int = 429, retry_after: str = "0") -> None:
        with self._lock:
            self._throttle.extend([(status, retry_after)] * count)

    def throttle_uploads(self, count: int, status: int = 429, retry_after: str = "0") -> None:
        with self._lock:
            self._throttle_uploads.extend([(status, retry_after)] * count)

    def expire_delta_links(self) -> None:
        with self._lock:
            self._epoch += 1

    def count(self, method: str, pattern: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and re.search(pattern, p))

    def drafts(self, address: str) -> list[Message]:
        with self._lock:
            box = self.mailboxes[address.lower()]
            return [m for m in box.messages.values() if m.is_draft]

    def fail(self, method: str, pattern: str, mode: Mode, count: int = 1) -> None:
        """The next `count` requests `method` whose path matches `pattern` lose their answer
        after being done ("answer_lost") or are held without being done ("hang")."""
        with self._lock:
            self._faults.append(Fault(method, pattern, mode, count))

    def release(self) -> None:
        """Let the held requests go (unanswered, undone)."""
        self._released.set()

    def take_fault(self, method: str, path: str) -> Mode | None:
        with self._lock:
            for fault in self._faults:
                if fault.left and fault.method == method and re.search(fault.pattern, path):
                    fault.left -= 1
                    self.faults_hit += 1
                    return fault.mode
        return None

    # --- mail ----------------------------------------------------------------------------

    def _add(self, box: Mailbox, folder: str, raw: bytes, at: datetime, **extra: Any) -> str:
        message = Message(_new_id(), folder, raw, at, created=self.now(), **extra)
        box.messages[message.id] = message
        self._changes.append(Change(next(self._seq), box.address, folder, message.id, True))
        return message.id

    def _move(self, box: Mailbox, message: Message, folder: str) -> None:
        if message.folder == folder:
            return
        self._changes.append(
            Change(next(self._seq), box.address, message.folder, message.id, False)
        )
        message.folder = folder
        self._changes.append(Change(next(self._seq), box.address, folder, message.id, True))

    def _remove(self, box: Mailbox, message: Message) -> None:
        self._changes.append(
            Change(next(self._seq), box.address, message.folder, message.id, False)
        )
        del box.messages[message.id]

    def _as_exchange_keeps(self, raw: bytes) -> bytes:
        """The MIME as Exchange stores it: with its own Message-ID when `rewrite_message_ids`."""
        if not self.rewrite_message_ids:
            return raw
        message = email.message_from_bytes(raw, policy=email.policy.default)
        del message["Message-ID"]
        message["Message-ID"] = f"<{secrets.token_hex(12)}@YT2PR01MB8838.CANPRD01.PROD.OUTLOOK.COM>"
        return message.as_bytes()

    def _send(self, box: Mailbox, raw: bytes, extended: dict[str, str] | None = None) -> None:
        """Exchange's path: the copy in Sent Items (with the draft's extended properties),
        then delivery to each recipient."""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        for name in self.drop_headers:
            del message[name]
        raw = message.as_bytes()
        sent = box.folder_named("Sent Items")
        assert sent is not None
        self._add(box, sent, raw, _sent_at(message), extended=dict(extended or {}))
        answering = " ".join(str(message.get("In-Reply-To", "")).split())
        if answering:
            self.answered_at.setdefault(answering, time.time())
        values = [str(v) for n in ("To", "Cc", "Bcc") for v in message.get_all(n, [])]
        for _name, address in email.utils.getaddresses(values):
            target = self.mailboxes.get(address.lower())
            local, _, domain = address.lower().rpartition("@")
            if target is None and self.plus_addressing and "+" in local:
                target = self.mailboxes.get(f"{local.split('+', 1)[0]}@{domain}")
            if target is not None:
                inbox = target.folder_named("Inbox")
                assert inbox is not None
                self._add(target, inbox, raw, datetime.now(UTC))
            else:
                self.outgoing.append((address, raw))

    # --- delta ---------------------------------------------------------------------------

    def _delta(self, box: Mailbox, folder: str, token: str | None, size: int) -> dict[str, Any]:
        """A page: `token` is epoch:since:upto:offset (since 0: the full listing)."""
        if token is None:
            epoch, since, upto, offset = self._epoch, 0, next(self._seq), 0
        else:
            epoch, since, upto, offset = (int(x) for x in _unb64(token).split(":"))
            if epoch != self._epoch:
                raise _Gone
            if offset == 0 and since == upto:  # a delta link: its changes up to now
                upto = next(self._seq)
        items: list[dict[str, Any]]
        if since == 0:
            items = [
                {"id": m.id, "receivedDateTime": _iso(m.received)}
                for m in box.messages.values()
                if m.folder == folder and not m.is_draft
            ]
        else:
            last: dict[str, bool] = {}
            for change in self._changes:
                if (
                    change.mailbox == box.address
                    and change.folder == folder
                    and since < change.seq <= upto
                ):
                    last[change.message] = change.added
            items = []
            for mid, added in last.items():
                if added and mid in box.messages and box.messages[mid].folder == folder:
                    items.append({"id": mid, "receivedDateTime": _iso(box.messages[mid].received)})
                else:
                    items.append({"id": mid, "@removed": {"reason": "changed"}})
        page = items[offset : offset + size]
        base = f"{self.base_url}/users/{box.address}/mailFolders/{folder}/messages/delta"
        answer: dict[str, Any] = {"value": page}
        if offset + size < len(items):
            nxt = _b64(f"{epoch}:{since}:{upto}:{offset + size}")
            answer["@odata.nextLink"] = f"{base}?$skiptoken={nxt}"
        else:
            answer["@odata.deltaLink"] = f"{base}?$deltatoken={_b64(f'{epoch}:{upto}:{upto}:0')}"
        return answer

    # --- requests ------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append((method, path))
            if self._throttle:
                status, retry_after = self._throttle.pop(0)
                self.throttled_answers += 1
                return _error(
                    status,
                    "TooManyRequests" if status == 429 else "ServiceUnavailable",
                    {"Retry-After": retry_after},
                )
        auth = headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self._tokens:
            return _error(401, "InvalidAuthenticationToken")
        match = re.match(r"^/v1\.0/users/([^/]+)/(.*)$", path)
        if not match:
            return _error(404, "ResourceNotFound")
        user = urllib.parse.unquote(match.group(1)).lower()
        rest = match.group(2)
        if user not in self.mailboxes:
            return _error(404, "ErrorInvalidUser")
        if self.granted is not None and user not in self.granted:
            return _error(403, "ErrorAccessDenied")
        with self._lock:
            self._in_flight[user] = self._in_flight.get(user, 0) + 1
            self.in_flight_peak[user] = max(self.in_flight_peak.get(user, 0), self._in_flight[user])
        try:
            if self.slow_seconds:
                time.sleep(self.slow_seconds)
            with self._lock:
                return self._route(self.mailboxes[user], method, rest, query, headers, body)
        finally:
            with self._lock:
                self._in_flight[user] -= 1

    def _route(
        self, box: Mailbox, method: str, rest: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = rest.split("/")
        if parts[0] == "mailFolders":
            return self._folders(box, method, parts[1:], query, headers, body)
        if parts[0] == "sendMail" and method == "POST":
            if "text/plain" not in headers.get("Content-Type", ""):
                return _error(400, "ErrorInvalidRequest")
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                return _error(400, "ErrorMimeContentInvalidBase64String")
            self._send(box, self._as_exchange_keeps(raw))
            if self.fail_after_send:
                self.fail_after_send -= 1
                return _error(504, "GatewayTimeout")
            return 202, {}, b""
        if parts[0] == "messages":
            return self._messages(box, method, parts[1:], query, body)
        return _error(404, "ResourceNotFound")

    def _folder_id(self, box: Mailbox, ref: str) -> str | None:
        if ref in box.folders:
            return ref
        name = WELL_KNOWN.get(ref.lower())
        return box.folder_named(name) if name else None

    def _folders(
        self,
        box: Mailbox,
        method: str,
        parts: list[str],
        query: dict[str, str],
        headers: Any,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        if not parts or parts == [""]:
            if method == "POST":
                name = str(json.loads(body)["displayName"])
                if box.folder_named(name):
                    return _error(409, "ErrorFolderExists")
                fid = _new_id()
                box.folders[fid] = name
                return _json(201, {"id": fid, "displayName": name})
            wanted = re.match(r"^displayName eq '(.*)'$", query.get("$filter", ""))
            items = [
                {"id": fid, "displayName": name}
                for fid, name in box.folders.items()
                if name not in HIDDEN
                and (wanted is None or name == wanted.group(1).replace("''", "'"))
            ]
            return _json(200, {"value": items})
        found_id = self._folder_id(box, parts[0])
        if found_id is None:
            return _error(404, "ErrorItemNotFound")
        fid = found_id
        if len(parts) == 1:
            total = sum(1 for m in box.messages.values() if m.folder == fid)
            return _json(200, {"id": fid, "displayName": box.folders[fid], "totalItemCount": total})
        if parts[1:] == ["messages", "delta"]:
            if not self.offers_message_delta:
                return _error(400, "BadRequest")  # "Resource not found for the segment"
            size = 10
            found = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer", ""))
            if found:
                size = int(found.group(1))
            token = query.get("$deltatoken") or query.get("$skiptoken")
            try:
                return _json(200, self._delta(box, fid, token, size))
            except _Gone:
                return _error(410, "SyncStateNotFound")
        if parts[1:] == ["messages"] and method == "POST":
            return self._file(box, fid, json.loads(body))
        if parts[1:] == ["messages"]:
            return self._listing(box, fid, query)
        return _error(404, "ResourceNotFound")

    def _file(
        self, box: Mailbox, fid: str, item: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        """An item made in a folder from JSON; as Exchange does, it is a draft unless its
        message flags, set at creation, lack MSGFLAG_UNSENT (8)."""
        flags = [
            int(prop["value"])
            for prop in item.get("singleValueExtendedProperties", [])
            if str(prop.get("id", "")).lower() == "integer 0x0e07"
        ]
        is_draft = not flags or bool(flags[0] & 8)
        message = Message("", fid, b"", datetime.now(UTC), is_draft=is_draft, draft=item)
        raw = _mime_of_draft(box.address, message)
        mid = self._add(box, fid, raw, datetime.now(UTC), is_draft=is_draft, draft=item)
        return _json(
            201,
            {
                "id": mid,
                "isDraft": is_draft,
                "internetMessageId": box.messages[mid].internet_message_id,
            },
        )

    def _listing(
        self, box: Mailbox, fid: str, query: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """A folder's messages: `$filter` internetMessageId eq '<id>', receivedDateTime ge
        <instant> or an extended property's Any(...), `$orderby` receivedDateTime [desc],
        pages of `$top` (default 10) linked by `$skip`."""
        found = [m for m in box.messages.values() if m.folder == fid]
        wanted = query.get("$filter", "")
        since = re.match(r"^receivedDateTime ge (\S+)$", wanted)
        if since:
            start = datetime.fromisoformat(since.group(1).replace("Z", "+00:00"))
            found = [m for m in found if m.received >= start]
        elif wanted:
            test = _condition(wanted)
            if test is None:
                return _error(400, "ErrorInvalidUrlQueryFilter")
            found = [m for m in found if test(m)]
        order = query.get("$orderby", "")
        if order:
            if order.split()[0] != "receivedDateTime":
                return _error(400, "ErrorInvalidProperty")
            found.sort(key=lambda m: m.received, reverse=order.endswith(" desc"))
        top, skip = int(query.get("$top", "10")), int(query.get("$skip", "0"))
        expand = query.get("$expand", "")
        items = [_summary(m, expand) for m in found[skip : skip + top]]
        answer: dict[str, Any] = {"value": items}
        if skip + top < len(found):
            rest = {**query, "$skip": str(skip + top), "$top": str(top)}
            folder_url = f"{self.base_url}/users/{box.address}/mailFolders/{fid}/messages"
            answer["@odata.nextLink"] = f"{folder_url}?{urllib.parse.urlencode(rest)}"
        return _json(200, answer)

    def _messages(
        self, box: Mailbox, method: str, parts: list[str], query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if not parts or parts == [""]:
            if method == "GET":
                return self._search(box, query)
            return self._create_draft(box, body)
        message = box.messages.get(parts[0])
        if message is None:
            return _error(404, "ErrorItemNotFound")
        if len(parts) == 1:
            if method == "DELETE":
                # A soft delete: the message leaves every folder a client shows for the
                # dumpster, from which a user can still recover it.
                recoverable = box.folder_named(RECOVERABLE)
                assert recoverable is not None
                if message.folder == recoverable:
                    self._remove(box, message)
                else:
                    self._move(box, message, recoverable)
                return 204, {}, b""
            if method == "PATCH":
                changes = json.loads(body)
                for prop in changes.get("singleValueExtendedProperties", []):
                    message.extended[str(prop["id"])] = str(prop["value"])
                return _json(200, _summary(message, ""))
            return _json(200, _summary(message, query.get("$expand", "")))
        action = "/".join(parts[1:])
        if action == "$value" and method == "GET":
            return (
                200,
                {"Content-Type": "text/plain"},
                message.raw or _mime_of_draft(box.address, message),
            )
        if action == "permanentDelete" and method == "POST":
            if not self.offers_permanent_delete:
                return _error(400, "BadRequest")  # "Resource not found for the segment"
            self._remove(box, message)
            return 204, {}, b""
        if action == "move" and method == "POST":
            target = self._folder_id(box, str(json.loads(body)["destinationId"]))
            if target is None:
                return _error(404, "ErrorItemNotFound")
            self._move(box, message, target)
            return _json(201, {"id": message.id, "parentFolderId": target})
        if action == "attachments" and method == "POST":
            return self._attach(message, body)
        if action == "attachments/createUploadSession" and method == "POST":
            return self._upload_session(box, message, body)
        if action == "send" and method == "POST":
            if not message.is_draft:
                return _error(400, "ErrorInvalidRequest")
            raw = _mime_with_attachments(message.raw, message.attachments) or _mime_of_draft(
                box.address, message
            )
            self._remove(box, message)
            self._send(box, raw, message.extended)
            if self.fail_after_send:
                self.fail_after_send -= 1
                return _error(504, "GatewayTimeout")
            return 202, {}, b""
        return _error(404, "ResourceNotFound")

    def _search(self, box: Mailbox, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """GET /messages: every folder's messages (not the dumpster's), filtered by subject,
        internetMessageId or an extended property."""
        wanted = query.get("$filter", "")
        by_subject = re.match(r"^subject eq '(.*)'$", wanted)
        test: Callable[[Message], bool] | None
        if by_subject:
            subject = by_subject.group(1).replace("''", "'")
            test = lambda m: _subject(m) == subject  # noqa: E731
        else:
            test = _condition(wanted) if wanted else (lambda m: True)
        if test is None:
            return _error(400, "ErrorInvalidUrlQueryFilter")
        shown = {fid for fid, name in box.folders.items() if name not in HIDDEN}
        items = [
            _summary(m, query.get("$expand", ""))
            for m in box.messages.values()
            if m.folder in shown and test(m)
        ]
        return _json(200, {"value": items})

    def _create_draft(self, box: Mailbox, body: bytes) -> tuple[int, dict[str, str], bytes]:
        drafts = box.folder_named("Drafts")
        assert drafts is not None
        if body.lstrip().startswith(b"{"):
            draft = json.loads(body)
            for header in draft.get("internetMessageHeaders", []):
                if not str(header.get("name", "")).lower().startswith("x-"):
                    return _error(400, "InvalidInternetMessageHeader")
            extended = {
                str(p["id"]): str(p["value"])
                for p in draft.get("singleValueExtendedProperties", [])
            }
            mid = self._add(
                box,
                drafts,
                b"",
                datetime.now(UTC),
                is_draft=True,
                draft=draft,
                extended=extended,
            )
        else:  # MIME, base64 (text/plain)
            try:
                raw = self._as_exchange_keeps(base64.b64decode(body, validate=True))
            except ValueError:
                return _error(400, "ErrorMimeContentInvalidBase64String")
            mid = self._add(box, drafts, raw, datetime.now(UTC), is_draft=True)
        return _json(201, _summary(box.messages[mid], ""))

    def _attach(self, message: Message, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """A fileAttachment POSTed to a message: under 3 MB only."""
        item = json.loads(body)
        if item.get("@odata.type") != "#microsoft.graph.fileAttachment":
            return _error(400, "ErrorInvalidRequest")
        try:
            data = base64.b64decode(str(item["contentBytes"]), validate=True)
        except ValueError:
            return _error(400, "ErrorInvalidRequest")
        if len(data) >= 3 * self.megabyte:
            return _error(413, "ErrorAttachmentSizeTooLargeForPost")
        name, ctype = str(item.get("name", "")), str(item.get("contentType", ""))
        message.attachments.append((name, ctype or "application/octet-stream", data))
        return _json(201, {"id": _new_id(), "name": name, "size": len(data)})

    def _upload_session(
        self, box: Mailbox, message: Message, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if not self.offers_upload_sessions:
            return _error(400, "BadRequest")  # "Resource not found for the segment"
        item = json.loads(body)["AttachmentItem"]
        if item.get("attachmentType") != "file":
            return _error(400, "ErrorInvalidRequest")
        size = int(item["size"])
        if size < 3 * self.megabyte:
            return _error(400, TOO_SMALL)
        if size > 150 * self.megabyte:
            return _error(400, "ErrorAttachmentSizeOverMaximum")
        key = secrets.token_hex(8)
        self._uploads[key] = (
            box.address,
            message.id,
            str(item["name"]),
            str(item.get("contentType") or "application/octet-stream"),
            size,
            bytearray(),
        )
        expires = _iso(datetime.now(UTC) + timedelta(minutes=15))
        return _json(
            201,
            {
                "uploadUrl": f"{self.url}/upload/{key}",
                "expirationDateTime": expires,
                "nextExpectedRanges": ["0-"],
            },
        )

    def upload(
        self, method: str, key: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """A PUT of an upload session's URL (no token: the URL carries its own), in order;
        a DELETE cancels the session."""
        with self._lock:
            if key not in self._uploads:
                return _error(404, "ErrorItemNotFound")
            address, mid, name, ctype, size, data = self._uploads[key]
            if method == "DELETE":
                del self._uploads[key]
                return 204, {}, b""
            if self._throttle_uploads:
                status, retry_after = self._throttle_uploads.pop(0)
                self.throttled_answers += 1
                return _error(status, "TooManyRequests", {"Retry-After": retry_after})
            if "Authorization" in headers:
                return _error(400, "ErrorInvalidRequest")  # "Do not specify an Authorization"
            if headers.get("Content-Type", "") != "application/octet-stream":
                return _error(400, "ErrorInvalidRequest")
            found = _RANGE.match(headers.get("Content-Range", ""))
            if not found:
                return _error(400, "ErrorInvalidContentRange")
            first, last, total = (int(x) for x in found.groups())
            if total != size or first != len(data) or last - first + 1 != len(body):
                return _error(416, "ErrorInvalidContentRange")
            data.extend(body)
            if len(data) < size:
                return _json(200, {"nextExpectedRanges": [f"{len(data)}"]})
            del self._uploads[key]
            message = self.mailboxes[address].messages.get(mid)
            if message is None:
                return _error(404, "ErrorItemNotFound")
            message.attachments.append((name, ctype, bytes(data)))
            attachment = _new_id()
            where = f"{self.base_url}/users/{address}/messages/{mid}/attachments/{attachment}"
            return 201, {"Location": where}, b""

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, str], bytes]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            pair = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = pair.partition(":")
            client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        if client_id != self.client_id or secret != self.client_secret:
            return _json(401, {"error": "invalid_client"})
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(value)
            self.tokens_issued += 1
        return _json(200, {"access_token": value, "token_type": "Bearer", "expires_in": 3599})

    def __enter__(self) -> GraphServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _condition(text: str) -> Callable[[Message], bool] | None:
    """The messages a `$filter` keeps: internetMessageId eq, or an extended property's
    Any(...) (its id compared as written, its value without case, as Graph documents)."""
    by_id = re.match(r"^internetMessageId eq '(.*)'$", text)
    if by_id:
        wanted = by_id.group(1).replace("''", "'")
        return lambda m: m.internet_message_id == wanted
    found = _ANY.match(text)
    if found:
        prop, value = (g.replace("''", "'") for g in found.groups())
        return lambda m: m.extended.get(prop, "").lower() == value.lower() and prop in m.extended
    return None


def _summary(message: Message, expand: str) -> dict[str, Any]:
    """A message as a listing shows it; with the extended property `expand` asks for."""
    item: dict[str, Any] = {
        "id": message.id,
        "isDraft": message.is_draft,
        "internetMessageId": message.internet_message_id,
        "parentFolderId": message.folder,
        "receivedDateTime": _iso(message.received),
        "createdDateTime": _iso(message.created),
    }
    wanted = _EXPAND.match(expand)
    if wanted:
        prop = wanted.group(1).replace("''", "'")
        if prop in message.extended:
            item["singleValueExtendedProperties"] = [{"id": prop, "value": message.extended[prop]}]
    return item


def _mime_with_attachments(raw: bytes, attachments: list[tuple[str, str, bytes]]) -> bytes:
    """A MIME draft's bytes with the attachments added to it since ("" for a JSON draft)."""
    if not raw or not attachments:
        return raw
    mime = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mime, EmailMessage)
    for name, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        mime.add_attachment(
            data, maintype=maintype, subtype=subtype or "octet-stream", filename=name
        )
    return mime.as_bytes()


def _subject(message: Message) -> str:
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    return str(parsed.get("Subject", ""))


class _Quiet(ThreadingHTTPServer):
    """A client killed mid-request (the SIGKILL tests) is no error of the server's."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Gone(Exception):
    pass


def _mime_of_draft(sender: str, message: Message) -> bytes:
    draft = message.draft
    mime = EmailMessage()
    mime["From"] = sender
    to = [r["emailAddress"]["address"] for r in draft.get("toRecipients", [])]
    mime["To"] = ", ".join(to)
    mime["Subject"] = str(draft.get("subject", ""))
    mime["Message-ID"] = str(draft.get("internetMessageId") or email.utils.make_msgid())
    for header in draft.get("internetMessageHeaders", []):
        mime[str(header["name"])] = str(header["value"])
    mime.set_content(str(draft.get("body", {}).get("content", "")))
    for name, ctype, data in message.attachments:
        maintype, _, subtype = ctype.partition("/")
        mime.add_attachment(
            data, maintype=maintype, subtype=subtype or "octet-stream", filename=name
        )
    return mime.as_bytes()


_ids = itertools.count(1)


def _new_id() -> str:
    # Long and opaque, as Graph's immutable ids are.
    return "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A" + secrets.token_hex(16) + f"{next(_ids):06d}"


def _sent_at(message: EmailMessage) -> datetime:
    """When the Sent Items copy is stored: Exchange's now; here the message's Date when it has
    one, so that a test under a fixed clock sees the instants its clock gave."""
    try:
        stamped = email.utils.parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError):
        return datetime.now(UTC)
    return stamped if stamped.tzinfo else datetime.now(UTC)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text.encode()).decode()


def _json(
    status: int, payload: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def _error(
    status: int, code: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"code": code, "message": code}}, headers)


def _handler_for(server: GraphServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, answer: tuple[int, dict[str, str], bytes]) -> None:
            status, headers, body = answer
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self, method: str) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            body = self._body()
            with server._lock:
                server.sizes.append((method, parts.path, len(body)))
            if len(body) > REQUEST_LIMIT:
                self._answer(_error(413, "RequestEntityTooLarge"))
                return
            fault = server.take_fault(method, parts.path)
            if fault == "hang":
                server._released.wait(server.hang_seconds)
                self.close_connection = True
                return
            if parts.path.endswith("/oauth2/v2.0/token"):
                form = dict(urllib.parse.parse_qsl(body.decode()))
                answer = server.token(form, self.headers.get("Authorization", ""))
            elif parts.path.startswith("/upload/"):
                key = parts.path.rsplit("/", 1)[1]
                answer = server.upload(method, key, self.headers, body)
            else:
                answer = server.handle(method, parts.path, query, self.headers, body)
            if fault == "answer_lost":
                self.close_connection = True
                return
            self._answer(answer)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

    return Handler
