"""Delivery reports recognised and read: RFC 3464 reports and other failure notices (pure).

Delivery reports come in two forms. A multipart/report (RFC 3464) is read field by field
(`DeliveryReport`). Any other form (qmail's, Exim's, Sendmail's, Exchange's text notices...)
is read by GNU Mailman's `flufl.bounce` detectors (`FailureNotice`), and only in mail that
bears a sign of a machine sender (`has_machine_signs`): the detectors read every line of a
message several times, which a person's mail must not pay for.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from mailbot.mail.addresses import addresses_in, normalise_address
from mailbot.mail.decoding import flatten, header_str, part_text, raw_header, walk_bounded

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
# How much of a returned message's text is searched for the Message-ID it carries, and of a
# machine's message the bounce detectors read (the notice and the returned headers come
# first; past this, a returned attachment would cost seconds for nothing).
REPORT_SCAN_CHARS = 50_000
NOTICE_SCAN_BYTES = 64 * 1024
# A returned copy has one Message-ID; a few more allow for a quoted thread, no more.
MAX_RETURNED_IDS = 10
_EMBEDDED_MESSAGE_ID = re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# A detector that breaks on broken mail is expected (the notice is then left to the subject
# rule of classification): flufl.bounce would log its traceback at ERROR first.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The machine-readable part of a multipart/report (bounce, read receipt, feedback)."""

    report_type: str  # delivery-status | disposition-notification | feedback-report | ...
    action: str = ""  # failed | delayed | delivered | relayed | expanded
    status: str = ""  # e.g. 5.1.1
    final_recipient: str = ""
    original_message_id: str = ""

    @property
    def is_permanent_failure(self) -> bool:
        return self.report_type == "delivery-status" and (
            self.status.startswith("5.") or (not self.status and self.action == "failed")
        )


@dataclass(frozen=True, slots=True)
class FailureNotice:
    """A delivery report in another form than RFC 3464, as `flufl.bounce` reads it: the
    recipients that failed for good and those that failed for now."""

    permanent: tuple[str, ...]  # normalised, lower-cased addresses
    temporary: tuple[str, ...] = ()
    status: str = ""  # the RFC 3463 code its text gives (a permanent one first), e.g. 5.1.1
    returned_message_ids: tuple[str, ...] = ()  # the Message-IDs of the copy it returns

    @property
    def is_permanent_failure(self) -> bool:
        """A recipient failed for good, and the text gives no transient code (4.x.x) alone:
        detectors that cannot tell a delay from a failure call every failure permanent."""
        return bool(self.permanent) and not self.status.startswith("4.")


def read_delivery_report(message: Message, report_type: str) -> DeliveryReport:
    action = status = final_recipient = original = ""
    for part, _depth in walk_bounded(message, []):
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/disposition-notification"):
            for block in _report_blocks(part):
                action = action or flatten(block.get("Action", "") or "").lower()
                if not status:
                    match = _STATUS.search(str(block.get("Status", "") or ""))
                    status = match.group(0) if match else ""
                recipient = str(block.get("Final-Recipient", "") or "")
                if recipient and not final_recipient:
                    final_recipient = flatten(recipient.rpartition(";")[2]).strip("<> ").lower()
                original = original or flatten(str(block.get("Original-Message-ID", "") or ""))
        elif ctype in ("message/rfc822", "text/rfc822-headers") and not original:
            original = _embedded_message_id(part)
    return DeliveryReport(
        report_type=report_type,
        action=action,
        status=status,
        final_recipient=final_recipient,
        original_message_id=original,
    )


def _report_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [item for item in payload if isinstance(item, Message)]
    if isinstance(payload, str):
        # Some servers send the status as text: parse its header blocks ourselves.
        return [email.message_from_string(chunk + "\n") for chunk in payload.split("\n\n")]
    return []


def _embedded_message_id(part: Message) -> str:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return flatten(str(inner[0].get("Message-ID", "") or ""))
        return ""
    headers = email.message_from_string(part_text(part))
    return flatten(str(headers.get("Message-ID", "") or ""))


def quoted_message_ids(text: str) -> tuple[str, ...]:
    """The Message-IDs of header lines quoted in a text ("Message-ID: <...>", quoted or not
    with ">"): where a report that returns a copy in its text names the message it is about."""
    found = _EMBEDDED_MESSAGE_ID.findall(text[:REPORT_SCAN_CHARS])
    return tuple(dict.fromkeys(found))


class _TextHeaders(email.policy.Compat32):
    """compat32 with every header value as text: the bounce detectors call string methods on
    headers, where compat32 gives a `Header` object for raw 8-bit bytes."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return header_str(value)


_TEXT_HEADERS = _TextHeaders()
_NOTICE_SENDERS = frozenset({"mailer-daemon", "postmaster"})


def has_machine_signs(message: Message, from_raw: str | None, return_path: str | None) -> bool:
    """A sign, readable without the configuration, that no person sent the message: the null
    sender, an Auto-Submitted other than "no", Exim's X-Failed-Recipients, a From that names
    no address, or a mailer daemon's. Classification then judges the sender with its rules."""
    if return_path == "" or raw_header(message, "X-Failed-Recipients") is not None:
        return True
    auto = (raw_header(message, "Auto-Submitted") or "").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return True
    if "@" not in (from_raw or ""):
        return True
    found = addresses_in(flatten(from_raw or "", 10_000))
    return any(address.partition("@")[0] in _NOTICE_SENDERS for address in found)


def read_failure_notice(raw: bytes, message: Message, text: str) -> FailureNotice | None:
    """What flufl.bounce's detectors find in the head of `raw`, or None: no failed recipient,
    or a detector broke on the message (seen with no From header at all)."""
    head = raw[:NOTICE_SCAN_BYTES]
    if len(raw) > NOTICE_SCAN_BYTES:
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        temporary, permanent = all_failures(email.message_from_bytes(head, policy=_TEXT_HEADERS))
    except Exception:  # heuristics over any input: a failure only means "not recognised"
        return None
    failed = _normalised(permanent)
    delayed = _normalised(temporary) - failed
    if not failed and not delayed:
        return None
    returned = [
        _embedded_message_id(part)
        for part, _depth in walk_bounded(message, [])
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers")
    ]
    codes = [match.group(0) for match in _STATUS.finditer(text[:REPORT_SCAN_CHARS])]
    permanent_codes = [code for code in codes if code.startswith("5.")]
    transient_codes = [code for code in codes if code.startswith("4.")]
    return FailureNotice(
        permanent=tuple(sorted(failed)),
        temporary=tuple(sorted(delayed)),
        status=(permanent_codes or transient_codes or [""])[0],
        returned_message_ids=tuple(
            dict.fromkeys(flatten(item) for item in (*returned, *quoted_message_ids(text)) if item)
        )[:MAX_RETURNED_IDS],
    )


def _normalised(addresses: frozenset[bytes]) -> set[str]:
    decoded = (normalise_address(item.decode("ascii", "replace")) for item in addresses)
    return {address for address in decoded if address is not None}
