"""Sending through Microsoft Graph: the `Sender` interface over drafts (effects: Graph).

Each message goes out as the mailbox of its From address (one of the watched mailboxes,
nothing else), with the MIME mailbot built, as a draft that is then sent. Before anything,
the mailbox is asked for what it already holds of the row (`graph_drafts.look_for`): a copy
that went out means it is not sent again; drafts left by an earlier attempt are deleted.
Then (sizes: mailbot/transport/graph_limits.py; every request stays under Graph's 4 MB):

    the MIME fits one request   POST /users/{from}/messages, the MIME in base64 (text/plain):
    (`mime_fits`)               a draft, whose answer says the Message-ID Exchange gave it;
                                PATCH it with the outbox key (graph_drafts.KEY_PROPERTY)
    larger                      a MIME draft as above of the message without its
                                attachments (every header kept, so it threads as the others
                                do), then each attachment by its size: under 3 MB a POST to
                                the draft's attachments (a fileAttachment), from 3 MB to
                                150 MB an upload session (createUploadSession, then PUTs of
                                3,932,160 bytes at most), both when the reading of "3 MB"
                                decides
    then                        POST .../messages/{id}/send

Why a draft rather than sendMail (the same MIME, one request fewer): sendMail answers 202 and
nothing else, so the Message-ID Exchange actually sent the message with (it may rewrite ours)
can never be read back, and an answer lost on the way leaves nothing to look at. The draft
gives both: its `internetMessageId` is recorded (mailbot/db/graph_rows.py, `message_alias`) so a
reply citing it threads as a reply to ours; and after a lost answer to `send`, the draft still
in Drafts means it was not sent (it is deleted and the row retried), gone means it was.
Graph keeps a copy in the mailbox's Sent Items, as Exchange does for Outlook.

A lost answer to the draft's creation (a timeout, a reset connection) leaves a draft Graph may
have made: it is looked for at once and deleted, and the row is tried again; what the look
misses, the next attempt's `look_for` finds. A draft whose attachments or key could not be
added is deleted before the error is reported.

Outcomes, as the outbox knows them (mailbot/transport/base.py): ``sent`` once Graph accepted
the send, or when the mailbox already holds the message as sent; ``retry`` for throttling that
outlasted the retries, a token or permission refused (IT's fix, then it goes), and an outcome
still unknown; ``failed`` for a refusal of the message itself (400, 413) and for a message
Graph cannot carry in this deployment (an attachment of 3 MB or more where upload sessions are
not offered, or over 150 MB); ``held`` when the message names recipients other than the one it
is for (Graph sends to the MIME's recipients, not to an envelope).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import email
import email.policy
import email.utils
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from typing import Any

from mailbot.errors import GraphError, TokenError
from mailbot.transport import graph_drafts
from mailbot.transport.base import SendResult
from mailbot.transport.graph import GraphClient
from mailbot.transport.graph_limits import (
    REQUEST_LIMIT,
    TOO_SMALL_FOR_UPLOAD,
    Route,
    attachment_route,
    byte_ranges,
    content_range,
    mime_fits,
)

log = logging.getLogger(__name__)

UNKNOWN_OUTCOME = frozenset({0, 500, 502, 503, 504})


class Unsendable(Exception):
    """The message cannot go through Graph as it is, in this deployment."""


@dataclass(frozen=True, slots=True)
class DraftAttachment:
    """One attachment of a message too large for a MIME draft, and how it is added."""

    name: str
    content_type: str
    data: bytes
    post_body: bytes  # the request that POSTs it, as it would be sent
    route: Route


def _addresses(message: EmailMessage, *names: str) -> list[str]:
    values = [str(value) for name in names for value in message.get_all(name, [])]
    return [address for _name, address in email.utils.getaddresses(values) if address]


def attachments_of(message: EmailMessage, upload_sessions: bool) -> list[DraftAttachment]:
    """The message's attachments, each with its POST body and its route (pure)."""
    found = []
    for part in message.iter_attachments():
        decoded = part.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else b""
        name = part.get_filename() or "attachment"
        body = json.dumps(
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name,
                "contentType": part.get_content_type(),
                "contentBytes": base64.b64encode(data).decode("ascii"),
            }
        ).encode("utf-8")
        route = attachment_route(len(data), len(body), upload_sessions)
        found.append(DraftAttachment(name, part.get_content_type(), data, body, route))
    return found


def without_attachments(message: EmailMessage) -> bytes:
    """The message's MIME with its attachments left out, every header as it was (pure): the
    draft a message too large for one request starts from."""
    bare = copy.deepcopy(message)
    attached = {id(part) for part in bare.iter_attachments()}
    if attached:
        parts = bare.get_payload()
        assert isinstance(parts, list)
        bare.set_payload([part for part in parts if id(part) not in attached])
    return bare.as_bytes(policy=email.policy.SMTP)


class GraphSender:
    """Drafts sent as the watched mailbox the message is From; `own` are their addresses."""

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
        """Graph announces nothing: its limits are `graph_limits.UPLOAD_MAX` per file (an
        upload session) and the tenant's own message size limit, which refuses with 413."""
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
        key = str(message.get("Message-ID", "")).strip()
        try:
            if key:
                found = graph_drafts.look_for(self._client, user, key)
                if found.sent:
                    log.info("%s is in the mailbox as sent: sent before, not sent again", key)
                    return SendResult("sent")
                graph_drafts.discard(
                    self._client, user, found.drafts, key, "left by an attempt that did not send it"
                )
            marked = graph_drafts.marked(raw, key)
            if mime_fits(len(marked), self._client.settings.sendmail_max_bytes):
                created = self._mime_draft(user, key, marked)
            else:
                created = self._draft_then_attachments(user, key, message)
            assigned = str(created.get("internetMessageId") or "").strip()
            self._send_draft(user, str(created["id"]), key)
        except TokenError as exc:
            return SendResult("retry", f"Graph token: {exc}")
        except GraphError as exc:
            return _outcome(exc)
        except Unsendable as exc:
            return SendResult("failed", str(exc))
        if assigned and assigned != key:
            log.info("Exchange gave %s a Message-ID of its own; recorded beside ours", key)
        return SendResult("sent", assigned_message_id=assigned if assigned != key else "")

    # --- the draft ---------------------------------------------------------------------------

    def _create(self, user: str, key: str, body: bytes, content_type: str) -> dict[str, Any]:
        """POST the draft. A lost answer leaves a draft Graph may have made: it is looked for
        and deleted at once (the next attempt looks again), then the error is raised."""
        try:
            return self._client.call(
                user, "POST", "messages", data=body, content_type=content_type, idempotent=False
            ).json()
        except GraphError as exc:
            if exc.status in UNKNOWN_OUTCOME and key:
                try:
                    found = graph_drafts.look_for(self._client, user, key)
                    drafts = found.drafts or graph_drafts.by_header(self._client, user, key)
                    graph_drafts.discard(
                        self._client, user, drafts, key, "its creation's answer was lost"
                    )
                except GraphError as again:
                    log.warning("drafts of %s not looked for yet (next attempt): %s", key, again)
            raise

    def _mime_draft(self, user: str, key: str, raw: bytes) -> dict[str, Any]:
        created = self._create(user, key, base64.b64encode(raw), "text/plain")
        if key:
            self._while_drafting(
                user,
                str(created["id"]),
                key,
                lambda draft: self._client.call(
                    user,
                    "PATCH",
                    f"messages/{draft}",
                    json_body={"singleValueExtendedProperties": graph_drafts.key_property(key)},
                ),
            )
        return created

    def _draft_then_attachments(self, user: str, key: str, message: EmailMessage) -> dict[str, Any]:
        """A MIME draft of the message without its attachments, every header kept (Message-ID,
        In-Reply-To, References: the citizen's client threads it as it does the others), then
        each attachment by its size."""
        deployment = self._client.settings.deployment
        attachments = attachments_of(message, deployment.upload_sessions)
        for attachment in attachments:
            if attachment.route == "impossible":
                raise Unsendable(
                    f"an attachment of {len(attachment.data)} bytes cannot go through Graph "
                    f"in {deployment.label}"
                    + (
                        " (no upload sessions there: 3 MB or more)"
                        if not deployment.upload_sessions
                        else " (150 MB at most)"
                    )
                )
        bare = graph_drafts.marked(without_attachments(message), key)
        if not mime_fits(len(bare), self._client.settings.sendmail_max_bytes):
            raise Unsendable(f"its text alone is over Graph's {REQUEST_LIMIT} bytes of request")
        created = self._mime_draft(user, key, bare)
        draft_id = str(created["id"])
        for attachment in attachments:
            self._while_drafting(user, draft_id, key, partial(self._attach, user, attachment))
        return created

    def _discard_else_later(self, user: str, draft_ids: list[str], key: str, why: str) -> None:
        """Delete these drafts of row `key`; one that cannot be deleted now is left to the next
        attempt's look and the start's sweep, and said."""
        try:
            graph_drafts.discard(self._client, user, draft_ids, key, why)
        except GraphError as again:
            log.warning("draft of %s not deleted yet (next attempt): %s", key, again)

    def _while_drafting(
        self, user: str, draft_id: str, key: str, step: Callable[[str], object]
    ) -> None:
        """One step on a new draft; the draft is deleted when the step fails."""
        try:
            step(draft_id)
        except (GraphError, TokenError) as exc:
            self._discard_else_later(user, [draft_id], key, f"unfinished: {exc}")
            raise

    def _attach(self, user: str, attachment: DraftAttachment, draft_id: str) -> None:
        if attachment.route == "post":
            self._post_attachment(user, draft_id, attachment)
            return
        session = self._client.call(
            user,
            "POST",
            f"messages/{draft_id}/attachments/createUploadSession",
            json_body={
                "AttachmentItem": {
                    "attachmentType": "file",
                    "name": attachment.name,
                    "size": len(attachment.data),
                    "contentType": attachment.content_type,
                }
            },
            allow=frozenset({400}) if attachment.route == "upload_else_post" else frozenset(),
        )
        if session.status == 400:
            if session.error_code != TOO_SMALL_FOR_UPLOAD:
                raise GraphError(
                    f"Graph createUploadSession: HTTP 400 {session.error_code}",
                    400,
                    session.error_code,
                )
            # Graph counts this file as under 3 MB: its documented way is the POST.
            self._post_attachment(user, draft_id, attachment)
            return
        upload_url = str(session.json()["uploadUrl"])
        size = len(attachment.data)
        for first, last in byte_ranges(size):
            # The upload URL carries its own authorisation; sent without our token.
            self._client.upload(
                upload_url, attachment.data[first : last + 1], content_range(first, last, size)
            )

    def _post_attachment(self, user: str, draft_id: str, attachment: DraftAttachment) -> None:
        self._client.call(
            user,
            "POST",
            f"messages/{draft_id}/attachments",
            data=attachment.post_body,
            content_type="application/json",
            idempotent=False,
        )

    def _send_draft(self, user: str, draft_id: str, key: str) -> None:
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
                    log.info("the answer to send was lost; the draft of %s went: sent", key)
                    return
            self._discard_else_later(user, [draft_id], key, f"not sent: {exc}")
            raise


def _outcome(error: GraphError) -> SendResult:
    """What the outbox does with a refusal: retried unless it is about the message itself."""
    if error.status in UNKNOWN_OUTCOME:
        return SendResult("retry", f"outcome unknown (the mailbox is checked first): {error}")
    if error.status in (401, 403, 429) or error.status >= 500:
        return SendResult("retry", str(error))
    return SendResult("failed", str(error))
