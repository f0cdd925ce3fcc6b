"""mailbot's drafts in a mailbox over Microsoft Graph: each one carries the key of the outbox
row it is for, so that none is left behind (effects: Graph).

A message goes out over Graph as a draft, then `send` (mailbot/transport/graph_sender.py). A
draft whose creation answer was lost, or whose process was killed before `send`, would stay
in Drafts: a copy of a message to a citizen that anyone who opens the shared mailbox in
Outlook could send again, outside retention. So:

    the key        the row's Message-ID (given once, when the row was queued; a retry keeps
                   it), in a single-value extended property of mailbot's own (`KEY_PROPERTY`),
                   set by a PATCH just after the draft is made (the request that makes it
                   carries nothing but MIME); the MIME carries it too, as its Message-ID and
                   in a header of mailbot's own (`KEY_HEADER`), which Exchange keeps when it
                   gives the draft a Message-ID of its own
    before a draft `look_for`: the mailbox's messages with that Message-ID or that key. One
                   that is not a draft means the row went out before (it is not sent again);
                   drafts are an earlier attempt's, and are deleted before a new one is made
    a lost answer  `look_for`, then, when it finds no draft, `by_header`: the drafts without
                   the key whose MIME carries it in `KEY_HEADER` (the creation's answer was
                   lost before the PATCH; their heads are read, so this is only done then)
    at start       `sweep`: the drafts of mailbot's own (the key, or mailbot's X- headers in
                   their MIME) older than the outbox lease are deleted: no worker is making
                   them any more, and a draft in Drafts was never sent

Every deletion is logged with the draft's Message-ID (mailbot's own, never a person's data).
Where the deployment offers `permanentDelete` a deleted draft is gone for good; elsewhere it
is deleted with DELETE (`GraphClient.delete_message`).

A draft the process left between its creation and the PATCH (killed there), in a tenant that
gives drafts a Message-ID of its own, has neither our Message-ID nor the key property: the
next attempt sends the row through a new draft (once: Sent Items is looked at first), and the
stray draft is deleted by the next start's sweep once it is older than the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailbot.mail.render import LOOP_HEADER, PURPOSE_HEADER
from mailbot.transport.graph import GraphClient, instant, quote

log = logging.getLogger(__name__)

# mailbot's property set (a GUID of its own) and the property's name: the outbox key.
PROPERTY_SET = "{5c0b8f0e-6a51-4d8e-9a3f-2f1d7c64b2a9}"
KEY_PROPERTY = f"String {PROPERTY_SET} Name MailbotOutboxKey"
# The header of the draft's MIME that carries the key (graph_sender adds it).
KEY_HEADER = "X-Mailbot-Outbox-Key"
# What the sweep reads of a draft without the key to tell whether it is mailbot's.
HEAD_BYTES = 16 * 1024


def marked(raw: bytes, key: str) -> bytes:
    """The MIME with `KEY_HEADER` first: the key, which Exchange keeps in the draft's MIME
    whatever Message-ID it gives the draft; unchanged without a key (pure)."""
    if not key:
        return raw
    return f"{KEY_HEADER}: {key}\r\n".encode("ascii", "replace") + raw


def key_property(key: str) -> list[dict[str, str]]:
    """The `singleValueExtendedProperties` that mark a draft as the one of row `key`."""
    return [{"id": KEY_PROPERTY, "value": key}]


def key_filter(key: str) -> str:
    return (
        f"singleValueExtendedProperties/Any(ep: ep/id eq {quote(KEY_PROPERTY)} "
        f"and ep/value eq {quote(key)})"
    )


@dataclass
class Found:
    """What the mailbox holds of one outbox row."""

    sent: bool = False  # a copy that is not a draft: it went out before
    drafts: list[str] = field(default_factory=list)  # drafts of earlier attempts (Graph ids)


def look_for(client: GraphClient, user: str, key: str) -> Found:
    """The mailbox's messages that are row `key`'s: by Message-ID, then (when none was sent
    under it: Exchange may give the sent message a Message-ID of its own) by the key."""
    found = Found()
    for condition in (f"internetMessageId eq {quote(key)}", key_filter(key)):
        answer = client.call(
            user,
            "GET",
            "messages",
            params={"$filter": condition, "$select": "id,isDraft,parentFolderId"},
        ).json()
        for item in answer.get("value", []):
            if not isinstance(item, dict) or not item.get("id"):
                continue
            if item.get("isDraft") is True:
                if item["id"] not in found.drafts:
                    found.drafts.append(str(item["id"]))
            else:
                found.sent = True
        if found.sent:
            return found
    return found


def by_header(client: GraphClient, user: str, key: str) -> list[str]:
    """The drafts in `user`'s Drafts without the key property whose MIME carries `key` in
    `KEY_HEADER`: made for row `key`, their creation's answer lost before the PATCH."""
    found = []
    for item in _drafts(client, user):
        if _key_of(item):
            continue
        head = client.call(
            user, "GET", f"messages/{item['id']}/$value", limit=HEAD_BYTES, allow=frozenset({404})
        )
        if head.status != 404 and _header_key(head.body) == key:
            found.append(str(item["id"]))
    return found


def discard(client: GraphClient, user: str, draft_ids: list[str], key: str, why: str) -> None:
    """Delete these drafts of row `key`, each logged."""
    for draft_id in draft_ids:
        client.delete_message(user, draft_id)
        log.warning("draft of %s deleted: %s", key, why)


def sweep(client: GraphClient, user: str, now: datetime, older_than: timedelta) -> int:
    """Delete the drafts of mailbot's own in `user`'s Drafts made before `now - older_than`;
    how many."""
    horizon = now - older_than
    deleted = 0
    for item in _drafts(client, user):
        created = instant(item.get("createdDateTime"))
        if created is None or created >= horizon:
            continue
        key = _key_of(item)
        if not key:
            head = client.call(
                user,
                "GET",
                f"messages/{item['id']}/$value",
                limit=HEAD_BYTES,
                allow=frozenset({404}),
            )
            if head.status == 404 or not _is_ours(head.body):
                continue
            key = str(item.get("internetMessageId") or "(no Message-ID)")
        client.delete_message(user, str(item["id"]))
        deleted += 1
        log.warning(
            "draft of %s left unsent since %s deleted (older than the outbox lease)",
            key,
            created.isoformat(timespec="seconds"),
        )
    return deleted


def _drafts(client: GraphClient, user: str) -> Iterator[dict[str, object]]:
    url = "mailFolders/drafts/messages"
    params: dict[str, str] = {
        "$select": "id,createdDateTime,internetMessageId",
        "$expand": f"singleValueExtendedProperties($filter=id eq {quote(KEY_PROPERTY)})",
        "$top": str(client.settings.page_size),
    }
    for _page in range(10_000):
        answer = client.call(user, "GET", url, params=params).json()
        for item in answer.get("value", []):
            if isinstance(item, dict) and item.get("id"):
                yield item
        if "@odata.nextLink" not in answer:
            return
        url, params = str(answer["@odata.nextLink"]), {}


def _key_of(item: dict[str, object]) -> str:
    properties = item.get("singleValueExtendedProperties")
    if not isinstance(properties, list):
        return ""
    for prop in properties:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == KEY_PROPERTY.lower():
            return str(prop.get("value") or "")
    return ""


def _header_block(raw: bytes) -> bytes:
    """A message's header block: what comes before its first empty line."""
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]


def _header_key(raw: bytes) -> str:
    """The value of `KEY_HEADER` in a draft's header block ("" when it has none)."""
    wanted = KEY_HEADER.lower().encode() + b":"
    for line in _header_block(raw).splitlines():
        if line.lower().startswith(wanted):
            return line[len(wanted) :].strip().decode("ascii", "replace")
    return ""


def _is_ours(raw: bytes) -> bool:
    """Whether a draft's MIME carries mailbot's own headers (in its header block)."""
    head = b"\n" + _header_block(raw).lower()
    names = (PURPOSE_HEADER, LOOP_HEADER, KEY_HEADER)
    return any(b"\n" + name.lower().encode() + b":" in head for name in names)
