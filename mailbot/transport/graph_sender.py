"""Sending through Microsoft Graph: the `Sender` interface over drafts (effects: Graph).

Each message goes out as the mailbox of its From address (one of the watched mailboxes,
nothing else), with the MIME mailbot built:

    up to `sendmail_max_bytes`   POST /users/{from}/messages, the MIME in base64 (text/plain):
                                 a draft, whose answer says the Message-ID Exchange gave it;
                                 then POST .../messages/{id}/send
    larger                       a draft from JSON (POST /users/{from}/messages), each
                                 attachment through an upload session, then POST .../send

Why a draft rather than sendMail (the same MIME, one request fewer): sendMail answers 202 and
nothing else, so the Message-ID Exchange actually sent the message with (it may rewrite ours)
can never be read back, and an answer lost on the way leaves nothing to look at. The draft
gives both: its `internetMessageId` is recorded (mailbot/db/graph.py, `message_alias`) so a
reply citing it threads as a reply to ours; and after a lost answer to `send`, the draft still
in Drafts means it was not sent (it is deleted and the row retried), gone means it was.
Graph keeps a copy in the mailbox's Sent Items, as Exchange does for Outlook.

Outcomes, as the outbox knows them (mailbot/transport/sender.py): ``sent`` once Graph accepted the
send;
``retry`` for throttling that outlasted the retries, a token or permission refused (IT's fix,
then it goes), and an outcome still unknown. Before any message is sent, its Message-ID is
looked for in the mailbox's Sent Items (one request): found, an earlier attempt went out (the
process stopped between Graph's answer and the outbox's record of it), and it is not sent
twice. ``failed`` for a refusal of the message itself (400, 413); ``held`` when the message
names recipients other than the one it is for (Graph sends to the MIME's recipients, not to an
envelope).
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import email.utils
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from mailbot.errors import GraphError, TokenError
from mailbot.transport.graph import GraphClient
from mailbot.transport.sender import SendResult

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 3 * 320 * 1024  # upload sessions take multiples of 320 KiB
# The largest file an upload session takes (Microsoft Graph, "Attach large files to Outlook
# messages": up to 150 MB); the message as a whole is bounded by the tenant's own limit.
MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024
UNKNOWN_OUTCOME = frozenset({0, 500, 502, 503, 504})


def _addresses(message: EmailMessage, *names: str) -> list[str]:
    values = [str(value) for name in names for value in message.get_all(name, [])]
    return [address for _name, address in email.utils.getaddresses(values) if address]


class GraphSender:
    """sendMail as the watched mailbox the message is From; `own` are their addresses."""

    def __init__(self, client: GraphClient, own: frozenset[str]) -> None:
        self._client = client
        self._own = frozenset(address.lower() for address in own)

    @asynccontextmanager
    async def session(self, now: datetime) -> AsyncIterator[GraphSender]:
        yield self

    async def send(self, envelope_from: str, recipient: str, raw: bytes) -> SendResult:
        return await asyncio.to_thread(self.send_now, recipient, raw)

    @property
    def announced_size(self) -> int | None:
        """Graph announces nothing: its limits are `MAX_ATTACHMENT_BYTES` per file (an upload
        session) and the tenant's own message size limit, which refuses with 413."""
        return None

    def send_now(self, recipient: str, raw: bytes) -> SendResult:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        senders = _addresses(message, "From")
        if len(senders) != 1 or senders[0].lower() not in self._own:
            return SendResult("failed", "Graph sends only as a watched mailbox (From)")
        user = senders[0]
        recipients = {a.lower() for a in _addresses(message, "To", "Cc", "Bcc")}
        if recipients != {recipient.lower()}:
            return SendResult(
                "held", "Graph sends to the message's own recipients: they differ from its one"
            )
        message_id = str(message.get("Message-ID", "")).strip()
        try:
            if message_id and self.in_sent_items(user, message_id):
                log.info("found in Sent Items: sent before, not sent again")
                return SendResult("sent")
            if len(raw) <= self._client.settings.sendmail_max_bytes:
                created = self._client.call(
                    user,
                    "POST",
                    "messages",
                    data=base64.b64encode(raw),
                    content_type="text/plain",
                    idempotent=False,
                ).json()
            else:
                created = self._draft_with_attachments(user, message)
            assigned = str(created.get("internetMessageId") or "").strip()
            self._send_draft(user, str(created["id"]))
        except TokenError as exc:
            return SendResult("retry", f"Graph token: {exc}")
        except GraphError as exc:
            return _outcome(exc)
        if assigned and assigned != message_id:
            log.info("Exchange gave the message its own Message-ID; recorded beside ours")
        return SendResult("sent", assigned_message_id=assigned if assigned != message_id else "")

    def _send_draft(self, user: str, draft_id: str) -> None:
        """Send the draft; a lost answer is settled by looking for the draft: still a draft,
        it was not sent (deleted, and the error raised for a retry); gone, it was."""
        try:
            self._client.call(user, "POST", f"messages/{draft_id}/send", idempotent=False)
        except GraphError as exc:
            if exc.status in UNKNOWN_OUTCOME:
                left = self._client.call(
                    user,
                    "GET",
                    f"messages/{draft_id}",
                    params={"$select": "id,isDraft"},
                    allow=frozenset({404}),
                )
                if left.status == 404 or not left.json().get("isDraft", True):
                    log.info("the answer to send was lost; the draft went: sent")
                    return
            self._client.call(user, "DELETE", f"messages/{draft_id}", allow=frozenset({404}))
            raise

    def in_sent_items(self, user: str, message_id: str) -> bool:
        """Whether Sent Items holds a message with this Message-ID."""
        answer = self._client.call(
            user,
            "GET",
            "mailFolders/sentitems/messages",
            params={
                "$filter": f"internetMessageId eq '{message_id.replace(chr(39), chr(39) * 2)}'",
                "$select": "id,internetMessageId",
            },
        )
        return bool(answer.json().get("value"))

    def _draft_with_attachments(self, user: str, message: EmailMessage) -> dict[str, Any]:
        """A draft from the message's text, its X- headers and each attachment through an
        upload session. Graph keeps only X- headers on this path: threading rests on the
        reference in the subject."""
        body = message.get_body(("plain", "html"))
        content = body.get_content() if body is not None else ""
        kind = "html" if body is not None and body.get_content_subtype() == "html" else "text"
        draft: dict[str, Any] = {
            "subject": str(message.get("Subject", "")),
            "body": {"contentType": kind, "content": content},
            "toRecipients": [{"emailAddress": {"address": a}} for a in _addresses(message, "To")],
            "ccRecipients": [{"emailAddress": {"address": a}} for a in _addresses(message, "Cc")],
            "internetMessageHeaders": [
                {"name": name, "value": str(value)}
                for name, value in message.items()
                if name.lower().startswith("x-")
            ],
        }
        if message.get("Message-ID"):
            draft["internetMessageId"] = str(message["Message-ID"]).strip()
        created = self._client.call(user, "POST", "messages", json_body=draft).json()
        try:
            for part in message.iter_attachments():
                self._upload(user, str(created["id"]), part)
        except GraphError:
            self._client.call(user, "DELETE", f"messages/{created['id']}", allow=frozenset({404}))
            raise
        return created

    def _upload(self, user: str, draft_id: str, part: EmailMessage) -> None:
        data = part.get_payload(decode=True)
        payload = data if isinstance(data, bytes) else b""
        session = self._client.call(
            user,
            "POST",
            f"messages/{draft_id}/attachments/createUploadSession",
            json_body={
                "AttachmentItem": {
                    "attachmentType": "file",
                    "name": part.get_filename() or "attachment",
                    "size": len(payload),
                    "contentType": part.get_content_type(),
                }
            },
        ).json()
        upload_url = str(session["uploadUrl"])
        for start in range(0, max(len(payload), 1), UPLOAD_CHUNK):
            chunk = payload[start : start + UPLOAD_CHUNK]
            end = start + len(chunk) - 1
            # The upload URL carries its own authorisation; sent without our token.
            self._client.upload(upload_url, chunk, f"bytes {start}-{end}/{len(payload)}")


def _outcome(error: GraphError) -> SendResult:
    """What the outbox does with a refusal: retried unless it is about the message itself."""
    if error.status in UNKNOWN_OUTCOME:
        return SendResult("retry", f"outcome unknown (Sent Items is checked first): {error}")
    if error.status in (401, 403, 429) or error.status >= 500:
        return SendResult("retry", str(error))
    return SendResult("failed", str(error))
