"""Sending through Microsoft Graph: the `Sender` interface over sendMail (effects: Graph).

Each message goes out as the mailbox of its From address (one of the watched mailboxes,
nothing else), with the MIME mailbot built:

    up to `sendmail_max_bytes`   POST /users/{from}/sendMail, the MIME in base64 (text/plain)
    larger                       a draft (POST /users/{from}/messages, JSON), each attachment
                                 through an upload session, then POST .../send

Graph keeps a copy in the mailbox's Sent Items, as Exchange does for Outlook.

Outcomes, as the outbox knows them (mailbot/sender.py): ``sent`` on Graph's 202; ``retry``
for throttling that outlasted the retries, a token or permission refused (IT's fix, then it
goes), and an answer that leaves the outcome unknown (503, 504, a lost connection: Graph may
have sent it). Before any message is sent, its Message-ID is looked for in the mailbox's Sent
Items (one request): found, an earlier attempt went out (an unknown answer, or the process
stopped between Graph's 202 and the outbox's record of it), and it is not sent twice.
``failed`` for a refusal of the message itself (400, 413 with no smaller way); ``held`` when
the message names recipients other than the one it is for (Graph sends to the MIME's
recipients, not to an envelope).
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
from mailbot.graph import GraphClient
from mailbot.sender import SendResult

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 3 * 320 * 1024  # upload sessions take multiples of 320 KiB
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
                self._client.call(
                    user,
                    "POST",
                    "sendMail",
                    data=base64.b64encode(raw),
                    content_type="text/plain",
                    idempotent=False,
                )
            else:
                self._send_large(user, message)
        except TokenError as exc:
            return SendResult("retry", f"Graph token: {exc}")
        except GraphError as exc:
            return _outcome(exc)
        return SendResult("sent")

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

    def _send_large(self, user: str, message: EmailMessage) -> None:
        """A draft with the message's text, its X- headers and each attachment through an
        upload session, then sent. Graph keeps only X- headers on this path: threading
        rests on the signed token in the subject."""
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
        draft_id = str(created["id"])
        try:
            for part in message.iter_attachments():
                self._upload(user, draft_id, part)
            self._client.call(user, "POST", f"messages/{draft_id}/send", idempotent=False)
        except GraphError as exc:
            if exc.status not in UNKNOWN_OUTCOME:
                # Refused: the draft goes; a retry makes a new one.
                self._client.call(user, "DELETE", f"messages/{draft_id}", allow=frozenset({404}))
            raise

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
