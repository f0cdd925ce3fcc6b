"""What classification takes and gives: the context of a message, the verdict, its kinds and
signals (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from mailbot.settings import Category, ClassificationSettings, MailboxSettings


class Kind(StrEnum):
    NEW_REQUEST = "new_request"  # a citizen's new request: opens a ticket, gets an acknowledgement
    FOLLOW_UP = "follow_up"  # a citizen's message on an existing ticket
    STAFF_REPLY = "staff_reply"  # from a staff address, about a ticket (or held: no ticket)
    AUTO_REPLY = "auto_reply"  # out-of-office / autoresponder
    BOUNCE = "bounce"  # delivery status notification, standard or not
    READ_RECEIPT = "read_receipt"  # disposition notification
    FEEDBACK_REPORT = "feedback_report"  # abuse / spam report (ARF)
    LIST_MAIL = "list_mail"  # mailing lists, newsletters, bulk mail
    ROBOT = "robot"  # other automatic mail (no-reply senders, notifications...)
    OWN_MAIL = "own_mail"  # our own mail looped back: set aside, never answered


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the caller found in the database for one candidate reference."""

    ref: str
    requester: str  # lower-cased address
    status: str  # "open" | "on_hold" | "answered" | "closed"
    # The staff and supervisors of the ticket's current queue (lower-case).
    workers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ClassifyContext:
    """Everything `classify` needs besides the message; built by the caller per message."""

    mailbox: MailboxSettings
    rules: ClassificationSettings
    own_addresses: frozenset[str]  # every configured mailbox address (lower-case)
    message_id_domain: str  # domain of our own Message-IDs
    staff_addresses: frozenset[str]  # lower-case
    staff_domains: frozenset[str]
    signing_key: bytes
    tickets: Mapping[str, TicketFacts]  # facts for candidate_refs(); missing = unknown ref
    # Message-ID (with <>) of a message already stored -> the ref of its ticket.
    known_message_ids: Mapping[str, str] = field(default_factory=dict)
    # Queues that exist: a new request is only ever moved to one of these.
    available_categories: frozenset[str] = frozenset({"information", "complaint"})
    # Addresses of the complaint mailboxes (lower-case).
    complaint_addresses: frozenset[str] = frozenset()
    # Every queue's notes address (lower-case): mail to one is an internal note.
    notes_addresses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    rules: tuple[str, ...]  # names of every rule that fired, in table order
    may_auto_answer: bool
    ticket_ref: str | None  # the ticket this message belongs to, if threading found one
    category: Category | None  # for a NEW_REQUEST: the queue to open it in
    language: Literal["fr", "en"]
    reasons: tuple[str, ...] = ()  # one short French sentence per rule, for `mailbot show`
    # Every ticket the message names (`Threading.named`): several is `several_tickets`.
    named_tickets: tuple[str, ...] = ()


class Signal(StrEnum):
    """What a rule says about a message; the kind follows from the strongest signal."""

    OWN = "own"  # our own mail
    FEEDBACK = "feedback"  # an abuse report
    RECEIPT = "receipt"  # a read receipt
    BOUNCE = "bounce"  # a delivery report
    AUTO_REPLY = "auto_reply"  # an autoresponder
    AWAY_SUBJECT = "away_subject"  # an out-of-office subject: decides only with other signs
    LIST = "list"  # list or bulk mail
    AUTOMATIC = "automatic"  # some other automatic mail
    NOTE = "note"  # a fact about threading or the sender; decides no kind by itself


# Signals that mean "sent by a machine": never answered automatically.
AUTOMATIC_SIGNALS = frozenset(
    {
        Signal.OWN,
        Signal.FEEDBACK,
        Signal.RECEIPT,
        Signal.BOUNCE,
        Signal.AUTO_REPLY,
        Signal.LIST,
        Signal.AUTOMATIC,
    }
)


# The rules that make a message an internal note (mailbot/intake/decide.py).
NOTE_RULES = frozenset({"notes_address", "subject_token"})


def is_note(verdict: Verdict) -> bool:
    """Whether the message is an internal note: sent to a notes address, or linked to its
    ticket by the token of a notes link."""
    return bool(NOTE_RULES & set(verdict.rules))
