"""`mailbot check` over Microsoft Graph: what IT needs to know on day one (effects: Graph).

One line a step, with the reason on failure (never a secret or a token):

    the deployment     which of Graph's deployments `base_url` names, and what mailbot does
                       without what it lacks (no permanentDelete: erasure leaves copies
                       recoverable for a while; no delta query; no upload sessions)
    ignored settings   every setting the file writes that [graph] makes useless, named
    the token          which authority gave it, for which client, how long it lives
    each mailbox       its watched folder read (messages in it), its processed and quarantine
                       folders found or to be created at the first pass
    a round trip       a message from each mailbox to itself, sent as mailbot sends (a MIME
                       draft, then send), found again in the mailbox and read back: which of
                       the headers mailbot relies on survived in this tenant (Message-ID,
                       In-Reply-To, References, Auto-Submitted and our X- headers), and
                       whether the Message-ID the draft announced is the one that arrived;
                       then both its copies are deleted, the one received and the one Graph
                       kept in Sent Items (and the draft, if it was not sent), so that the
                       start-up check of the next `mailbot run` finds nothing it does not know
    the notes address  a message from each mailbox to its notes address (plus addressing:
                       mailbot/transport/notes_check.py), found again in the mailbox: staff
                       notes arrive only if it does; then both its copies are deleted too

Headers that did not survive are not fatal: loop safety and threading hold with what is left
(README, "Microsoft Graph"); the line says what the tenant does. A copy the check could not
delete is harmless: it carries `X-Mailbot-Purpose: check`, which the start-up check and
`mailbot reconcile` pass over.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from mailbot.errors import ConfigError, GraphError, TokenError
from mailbot.mail.render import CHECK_PURPOSE, LOOP_HEADER, PURPOSE_HEADER
from mailbot.settings import GraphSettings, MailboxSettings, Settings, graph_cloud_of
from mailbot.transport.graph import GraphClient, quote
from mailbot.transport.logins import Logins
from mailbot.transport.notes_check import HOW_TO_FIX, probe_message

log = logging.getLogger(__name__)

Say = Callable[[str], None]
# How long the Sent Items copy is waited for once the received one is there.
SENT_COPY_WAIT = 10.0
# The headers whose fate the round trip reports, in this order.
WATCHED_HEADERS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    LOOP_HEADER,
    PURPOSE_HEADER,
)


def round_trip_message(mailbox: MailboxSettings, domain: str, nonce: str) -> EmailMessage:
    """The message a mailbox sends itself: every header mailbot relies on, set (pure)."""
    message = EmailMessage()
    message["From"] = mailbox.address
    message["To"] = mailbox.address
    message["Subject"] = f"mailbot check {nonce}"
    message["Message-ID"] = f"<mb-check.{nonce}@{domain}>"
    message["In-Reply-To"] = f"<mb-check-parent.{nonce}@{domain}>"
    message["References"] = f"<mb-check-root.{nonce}@{domain}> <mb-check-parent.{nonce}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = f"check.{nonce}"
    message[PURPOSE_HEADER] = CHECK_PURPOSE
    message.set_content("mailbot check: this message is deleted as soon as it is read back.\n")
    return message


def compare_headers(sent: EmailMessage, received: EmailMessage) -> dict[str, str]:
    """Each watched header: "kept", "changed" or "dropped" (pure)."""
    fate: dict[str, str] = {}
    for name in WATCHED_HEADERS:
        before = " ".join(str(sent.get(name, "")).split())
        after = " ".join(str(received.get(name, "")).split())
        if not after:
            fate[name] = "dropped"
        elif after == before:
            fate[name] = "kept"
        else:
            fate[name] = "changed"
    return fate


def check_graph(
    settings: Settings,
    environ: Mapping[str, str],
    say: Say,
    now: datetime,
    *,
    wait_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    client: GraphClient | None = None,
) -> bool:
    graph = settings.graph
    assert graph is not None
    say(f"ok   configuration: {len(settings.mailboxes)} mailbox(es) over Microsoft Graph")
    for line in deployment_lines(graph):
        say(line)
    for setting in settings.ignored_under_graph:
        say(f"warn ignored under [graph]: {setting}")
    try:
        tokens = Logins(settings, environ).graph() if client is None else client.tokens
        token = tokens.token(now)
    except (TokenError, ConfigError) as exc:
        say(f"FAIL token for graph: {exc}")
        return False
    seconds = int((token.expires_at - now).total_seconds())
    say(f"ok   token for graph: from {tokens.description}, valid {seconds} s")
    client = client or GraphClient(graph, tokens, lambda: now)
    ok = True
    for mailbox in settings.mailboxes:
        try:
            _check_folders(client, mailbox, say)
            _round_trip(client, mailbox, settings, say, wait_seconds, sleep)
            if not _notes_round_trip(client, mailbox, settings, say, wait_seconds, sleep):
                ok = False
        except (GraphError, TokenError) as exc:
            ok = False
            say(f"FAIL graph {mailbox.name}: {exc}{_hint(exc)}")
    return ok


def deployment_lines(graph: GraphSettings) -> list[str]:
    """What `check` says of the deployment: which one, and what mailbot does without what
    it lacks (pure)."""
    cloud = graph.deployment
    lines = [f"ok   graph deployment: {cloud.label} ({cloud.graph_host}, {cloud.login_host})"]
    if graph.cloud == "auto" and graph_cloud_of(graph.base_url) is None:
        host = graph.base_url.split("://", 1)[-1].split("/", 1)[0]
        lines[0] += f", assumed for {host} (set [graph] cloud if it fronts a national cloud)"
    if not cloud.permanent_delete:
        lines.append("warn " + erasure_note(graph))
    if not cloud.message_delta:
        lines.append(
            "warn no delta query for messages here: each poll lists the watched folder "
            "(one request a page of page_size messages)"
        )
    if not cloud.upload_sessions:
        lines.append(
            "warn no upload sessions here: a message with an attachment of 3 MB or more "
            "cannot be sent through Graph (it fails, and staff are told)"
        )
    return lines


def erasure_note(graph: GraphSettings) -> str:
    """What erasure can do in the deployment, said plainly (pure)."""
    cloud = graph.deployment
    if cloud.permanent_delete:
        return (
            "erasure deletes the mail store's copies with permanentDelete: out of every "
            "client's reach at once (Exchange purges them after the mailbox's deleted-item "
            "retention, unless a hold keeps them)"
        )
    return (
        f"no permanentDelete in {cloud.label}: erasure deletes the mail store's copies with "
        "DELETE, and each stays in its mailbox's Recoverable Items (Deletions), where the "
        "mailbox's users can recover it, until Exchange's deleted-item retention ends (14 "
        "days by default, at most 30; longer under a hold); mailbot cannot purge it sooner"
    )


def _hint(error: Exception) -> str:
    if isinstance(error, GraphError) and error.status == 403:
        return (
            " (the application is not granted this mailbox: check its RBAC for Applications "
            "management scope with Test-ServicePrincipalAuthorization; a new scope takes "
            "30 minutes to 2 hours to apply)"
        )
    return ""


def _folder_lookup(client: GraphClient, user: str, name: str) -> dict[str, object] | None:
    well_known = {"inbox": "inbox"}.get(name.lower())
    if well_known:
        return client.call(user, "GET", f"mailFolders/{well_known}").json()
    found = client.call(
        user, "GET", "mailFolders", params={"$filter": f"displayName eq {quote(name)}"}
    ).json()
    values = found.get("value") or []
    return values[0] if values and isinstance(values[0], dict) else None


def _check_folders(client: GraphClient, mailbox: MailboxSettings, say: Say) -> None:
    watched = _folder_lookup(client, mailbox.address, mailbox.folder)
    if watched is None:
        raise GraphError(f"no folder {mailbox.folder!r} in {mailbox.address}", 404)
    count = watched.get("totalItemCount")
    others = []
    for name in (mailbox.processed_folder, mailbox.quarantine_folder):
        state = "found" if _folder_lookup(client, mailbox.address, name) else "made at first pass"
        others.append(f"{name} {state}")
    say(
        f"ok   graph {mailbox.name}: {mailbox.address}, {mailbox.folder} read"
        f"{f' ({count} messages)' if count is not None else ''}; {', '.join(others)}"
    )


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """What became of a message mailbot sent itself over Graph."""

    announced: str  # the Message-ID the draft announced
    found: str | None  # the id of the copy received, None when it did not arrive in time
    kept: str | None  # the id of the copy Graph kept in Sent Items (deleted already)


def _send_and_find(
    client: GraphClient,
    user: str,
    message: EmailMessage,
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> RoundTrip:
    """Send `message` the way mailbot sends (mailbot/transport/graph_sender.py: a MIME draft,
    then send), look for the copy received and the one kept in Sent Items, and delete the Sent
    Items copy (and the draft, if sending failed): the caller deletes the received one once
    it has read it."""
    draft = client.call(
        user,
        "POST",
        "messages",
        data=base64.b64encode(message.as_bytes()),
        content_type="text/plain",
        idempotent=False,
    ).json()
    announced = str(draft.get("internetMessageId") or "").strip()
    try:
        client.call(user, "POST", f"messages/{draft['id']}/send", idempotent=False)
    except (GraphError, TokenError):
        client.delete_message(user, str(draft["id"]))  # never left in Drafts
        raise
    subject = quote(str(message["Subject"]))
    sent_items = str(client.call(user, "GET", "mailFolders/sentitems").json().get("id", ""))
    deadline = time.monotonic() + wait_seconds
    found: str | None = None
    kept: str | None = None
    while found is None or kept is None:
        listed = client.call(
            user,
            "GET",
            "messages",
            params={
                "$filter": f"subject eq {subject}",
                "$select": "id,parentFolderId,isDraft",
            },
        ).json()
        for item in listed.get("value", []):
            if not isinstance(item, dict) or item.get("isDraft") is True:
                continue
            if item.get("parentFolderId") == sent_items:
                kept = str(item["id"])
            else:
                found = str(item["id"])
        if found is not None and kept is not None:
            break
        if time.monotonic() >= deadline:
            break
        if found is not None:
            # Graph keeps the Sent Items copy as it sends: a few seconds more at most.
            deadline = min(deadline, time.monotonic() + SENT_COPY_WAIT)
        sleep(2.0)
    if kept is not None:
        client.delete_message(user, kept)
    return RoundTrip(announced, found, kept)


def _copies(trip: RoundTrip) -> str:
    if trip.kept is not None:
        return "both copies deleted"
    return (
        "the received copy deleted; no copy found in Sent Items (were one to come, the "
        "start-up check passes over it)"
    )


def _notes_round_trip(
    client: GraphClient,
    mailbox: MailboxSettings,
    settings: Settings,
    say: Say,
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> bool:
    """A message to the mailbox's notes address: does it arrive in the mailbox?"""
    user, nonce = mailbox.address, secrets.token_hex(6)
    probe = probe_message(mailbox, settings.organisation.message_id_domain, nonce)
    trip = _send_and_find(client, user, probe, wait_seconds, sleep)
    where = f"notes {mailbox.name}: {mailbox.notes_address}"
    if trip.found is None:
        say(f"FAIL {where}: sent, not received within {wait_seconds:.0f} s; {HOW_TO_FIX}")
        return False
    client.delete_message(user, trip.found)
    say(f"ok   {where} arrives in the mailbox; {_copies(trip)}")
    return True


def _round_trip(
    client: GraphClient,
    mailbox: MailboxSettings,
    settings: Settings,
    say: Say,
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> None:
    user = mailbox.address
    nonce = secrets.token_hex(6)
    sent = round_trip_message(mailbox, settings.organisation.message_id_domain, nonce)
    trip = _send_and_find(client, user, sent, wait_seconds, sleep)
    announced, found = trip.announced, trip.found
    if found is None:
        say(
            f"FAIL graph {mailbox.name}: sent to itself, not received within "
            f"{wait_seconds:.0f} s (mail flow rules or a transport delay?)"
        )
        raise GraphError(f"round trip of {user}: not received", 0)
    raw = client.call(user, "GET", f"messages/{found}/$value").body
    client.delete_message(user, found)
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    fate = compare_headers(sent, received)
    survived = [name for name, state in fate.items() if state == "kept"]
    lost = [f"{name} {state}" for name, state in fate.items() if state != "kept"]
    arrived = " ".join(str(received.get("Message-ID", "")).split())
    readback = (
        "the draft's Message-ID arrived"
        if announced and announced == arrived
        else "the draft's Message-ID did NOT arrive (replies to mailbot's mail will not thread "
        "by Message-ID: tell the maintainers)"
    )
    copies = _copies(trip)
    say(
        f"ok   graph {mailbox.name}: sent to itself and read back; kept: {', '.join(survived)}"
        + (f"; NOT kept: {', '.join(lost)}" if lost else "")
        + f"; {readback}; {copies}"
    )
