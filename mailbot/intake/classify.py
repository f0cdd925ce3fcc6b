"""Named rules -> a verdict that records the rules that fired (pure).

`classify` never reads a database: the caller first asks `candidate_refs` which ticket
references the message names, looks those up, and passes the facts in `ClassifyContext`.

How a verdict is reached:
  1. every rule of `RULES` (a table of small named predicates) is tested; the names of those
     that fire are kept, in table order;
  2. the kind follows from the *signals* of the rules that fired, strongest first: our own
     mail, then delivery reports, automatic replies, list mail, other automatic mail; only a
     message with none of those is a person's mail (staff reply, follow-up or new request);
  3. for a new request, `CATEGORY_RULES` may move it from the information queue to another
     queue that exists (a complaint sent to the information mailbox, for example).

Threading: a signed token (mailbot/mail/tokens.py) in In-Reply-To/References or in a To/Cc/Reply-To
address links a message to its ticket, whoever sends it; then a stored Message-ID; a reference
typed in the subject counts only when the sender is that ticket's requester. Staff reach a
ticket only through a signed token: anything less is a staff reply without a ticket, held.
When In-Reply-To, References and the subject name different tickets, `several_tickets`
fires: a staff reply is then held and its sender asked which ticket it is for.

Roles are per ticket. A staff address is staff (`STAFF_REPLY`) on a ticket it reaches by a
signed token, unless it is that ticket's requester and does not work on its queue, and on
the queue of the mailbox it writes to when it works there; anywhere else it is a person
like any other: a message to a queue it does not work on, without a token, opens a ticket
there (acknowledged, with a clock). A message from one of our own addresses that is not our
own mail (no loop header of ours, no Message-ID of ours, no X-Mailbot-Purpose) and that
answers one of our messages or names a `Sender:` is a reply sent as the queue's address
(Outlook "Send As"): a staff reply, judged on the person `Sender:` names
(mailbot/staff/send_as.py), or held; never set aside.

Notes (`NOTE_RULES`): mail addressed to a queue's notes address (To, Cc, or the envelope
recipient a receiving server records: Delivered-To, X-Original-To...), or staff mail whose
signed token is in its subject (the "note" link of a staff notice puts it there), is an
internal note: it never reaches a citizen. Reading the headers loosely is safe here because
it only ever takes power away: a note still needs the staff checks a reply needs
(mailbot/staff/replies.py), and can never become a reply.

Automatic mail is never answered (RELIABILITY.md, "When never to answer automatically"), but
it is not dropped: when it belongs to a ticket, `ticket_ref` says which, so the caller can
attach it with a flag. Only our own looped mail (`Kind.OWN_MAIL`) is set aside.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from mailbot.mail import tokens
from mailbot.mail.addresses import addresses_in
from mailbot.mail.delivery_reports import quoted_message_ids
from mailbot.mail.language import detect_language
from mailbot.mail.parse import InboundMail
from mailbot.mail.render import LOOP_HEADER, PURPOSE_HEADER
from mailbot.mail.text import fold, strip_reply_prefix
from mailbot.settings import (
    Category,
    ClassificationSettings,
    MailboxSettings,
    is_staff_address,
)
from mailbot.staff.quotes import extract_new_text

# How much of the body the category phrases read: the request itself, not a quoted thread.
CATEGORY_TEXT_CHARS = 2_000
_LANGUAGE_TEXT_CHARS = 4_000


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


# --- Threading: which ticket a message names, and how -------------------------------------

_SUBJECT_REF = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]{0,9}-\d{4}-\d{5,})(?!\d)")


@dataclass(frozen=True, slots=True)
class Threading:
    """The ticket links found in one message, verified against the facts given."""

    ticket_ref: str | None = None  # the ticket the message joins, if any
    signed: bool = False  # found through a token a stranger cannot forge
    header_token: bool = False  # a verified token of a known ticket in In-Reply-To/References
    address_token: bool = False  # ... in a To/Cc/Reply-To address
    subject_token: bool = False  # ... in the subject of staff mail, and nowhere else (a note)
    known_message_id: bool = False  # In-Reply-To/References names a message we stored
    subject_ref_from_requester: bool = False
    subject_ref_from_stranger: bool = False
    unknown_refs: tuple[str, ...] = ()  # verified tokens naming no ticket we know
    # Every ticket the message names (tokens, stored Message-IDs, references in its subject),
    # merged ones as the ticket kept; more than one is `several_tickets`.
    named: tuple[str, ...] = ()
    several_tickets: bool = False
    forged_token: bool = False
    report_ref: str | None = None  # for reports: the ticket of the message reported on


def _link_texts(mail: InboundMail) -> tuple[str, ...]:
    addresses = (*mail.to, *mail.cc, *mail.reply_to)
    return (*mail.thread_ids, *(address.address for address in addresses))


def _report_texts(mail: InboundMail) -> tuple[str, ...]:
    """Where a report names the message it is about: its own field, or copied headers."""
    texts = [mail.delivery_report.original_message_id] if mail.delivery_report else []
    texts.extend(quoted_message_ids(mail.text))
    return tuple(texts)


def _refs(key: bytes, texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(token.ticket_ref for token in tokens.find_tokens(key, texts)))


def _subject_refs(subject: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(match.upper() for match in _SUBJECT_REF.findall(subject)))


def candidate_refs(mail: InboundMail, signing_key: bytes, ticket_prefix: str) -> frozenset[str]:
    """Refs the caller must look up before `classify`.

    Verified tokens in In-Reply-To/References, in To/Cc/Reply-To addresses, in a report's
    original Message-ID and in the subject, plus refs of the form PREFIX-YYYY-NNNNN in the
    subject.
    """
    refs = set(_refs(signing_key, (*_link_texts(mail), *_report_texts(mail), mail.subject)))
    prefix = ticket_prefix.upper() + "-"
    refs.update(ref for ref in _subject_refs(mail.subject) if ref.startswith(prefix))
    return frozenset(refs)


def _thread(
    mail: InboundMail, context: ClassifyContext, sender: str | None, is_staff: bool
) -> Threading:
    """Find the ticket: signed tokens first, then stored Message-IDs, then the subject.

    A ref in the subject alone is accepted only from that ticket's requester: anybody can
    type a reference, and a stranger must not land on somebody else's ticket. A signed token
    in the subject links staff mail only (the notes link of a staff notice), as a note.
    """
    key, tickets = context.signing_key, context.tickets
    header_refs = _refs(key, mail.thread_ids)
    address_refs = _refs(key, (a.address for a in (*mail.to, *mail.cc, *mail.reply_to)))
    token_refs = tuple(dict.fromkeys((*header_refs, *address_refs)))
    # Each reference as the ticket it stands for (a merged one names the ticket kept).
    known_tokens = list(dict.fromkeys(tickets[ref].ref for ref in token_refs if ref in tickets))
    known_ids = [
        context.known_message_ids[item]
        for item in mail.thread_ids
        if item in context.known_message_ids
    ]
    report_refs = [tickets[ref].ref for ref in _refs(key, _report_texts(mail)) if ref in tickets]
    subject_refs = [ref for ref in _subject_refs(mail.subject) if ref in tickets]
    named = tuple(
        dict.fromkeys(
            (
                *known_tokens,
                *(tickets[ref].ref if ref in tickets else ref for ref in known_ids),
                *(tickets[ref].ref for ref in subject_refs),
            )
        )
    )
    found = Threading(
        header_token=any(ref in tickets for ref in header_refs),
        address_token=any(ref in tickets for ref in address_refs),
        known_message_id=bool(known_ids),
        unknown_refs=tuple(ref for ref in token_refs if ref not in tickets),
        named=named,
        several_tickets=len(named) > 1,
        forged_token=tokens.has_forged_token(
            key, (*_link_texts(mail), mail.message_id, mail.subject)
        ),
        report_ref=report_refs[0] if report_refs else None,
    )
    if known_tokens:
        return replace(found, ticket_ref=known_tokens[0], signed=True)
    if known_ids:
        return replace(found, ticket_ref=known_ids[0])
    subject_tokens = [tickets[ref].ref for ref in _refs(key, (mail.subject,)) if ref in tickets]
    if is_staff and subject_tokens:
        return replace(found, ticket_ref=subject_tokens[0], signed=True, subject_token=True)
    for ref in subject_refs:
        if sender is not None and sender == tickets[ref].requester.lower():
            return replace(found, ticket_ref=tickets[ref].ref, subject_ref_from_requester=True)
    return replace(found, subject_ref_from_stranger=bool(subject_refs))


# --- The evidence every rule reads -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """One message and its context, with the facts several rules share computed once."""

    mail: InboundMail
    context: ClassifyContext
    sender: str | None  # the one usable From address (parse.usable_address); None: none
    is_staff: bool  # a staff address (listed on a queue, or at a staff domain)
    thread: Threading
    # Staff acting as staff here (see the module docstring: roles are per ticket); a staff
    # address that is not is a person like any other.
    acts_as_staff: bool = False
    # From one of our addresses, not our own mail, answering us or naming a `Sender:`.
    sent_as_queue: bool = False

    def values(self, name: str) -> tuple[str, ...]:
        return self.mail.header_values(name)


def _gather_evidence(mail: InboundMail, context: ClassifyContext) -> Evidence:
    sender = mail.from_address.address if mail.from_address is not None else None
    is_staff = _is_staff(sender, context)
    evidence = Evidence(
        mail=mail,
        context=context,
        sender=sender,
        is_staff=is_staff,
        thread=_thread(mail, context, sender, is_staff),
    )
    return replace(
        evidence,
        acts_as_staff=evidence.is_staff and _acts_as_staff(evidence),
        sent_as_queue=_is_sent_as_queue(evidence),
    )


def _works_on_mailbox(e: Evidence) -> bool:
    """The sender is on the staff or supervisors of the queue the message was sent to."""
    mailbox = e.context.mailbox
    return e.sender in {a.strip().lower() for a in (*mailbox.staff, *mailbox.supervisors)}


def _acts_as_staff(e: Evidence) -> bool:
    """A staff address acts as staff on a ticket its signed token names (unless it is that
    ticket's requester and not on its queue), and, without one, on the queue it works on."""
    if e.thread.signed:
        facts = _ticket(e)
        return facts is None or e.sender != facts.requester.lower() or e.sender in facts.workers
    return _works_on_mailbox(e)


def _is_staff(sender: str | None, context: ClassifyContext) -> bool:
    if sender is None:
        return False
    return is_staff_address(
        sender,
        listed=context.staff_addresses | {a.lower() for a in context.mailbox.staff},
        domains=context.staff_domains,
        own=context.own_addresses,
    )


def _first_token(value: str) -> str:
    """A structured header's keyword, parameters dropped: "auto-replied; x=y" -> "auto-replied"."""
    return value.split(";", 1)[0].strip().lower()


# --- The rules: small named predicates ---------------------------------------------------


def _has_our_loop_header(e: Evidence) -> bool:
    domain = e.context.message_id_domain.strip().lower()
    return any(value.strip().lower() == domain for value in e.values(LOOP_HEADER))


def _has_foreign_loop_header(e: Evidence) -> bool:
    domain = e.context.message_id_domain.strip().lower()
    return any(value.strip().lower() != domain for value in e.values(LOOP_HEADER))


def _has_own_message_id(e: Evidence) -> bool:
    return bool(e.mail.message_id) and bool(
        tokens.find_tokens(e.context.signing_key, (e.mail.message_id,))
    )


# The shape of every Message-ID mailbot writes: "<mb.REF.NONCE.SIG@domain>" (a thread token)
# or "<mb-KIND.NONCE@domain>" (mailbot/sending/outgoing.py).
_OUR_MESSAGE_ID = re.compile(r"^<mb[.-][^@<>\s]+@(?P<domain>[^@<>\s]+)>$", re.IGNORECASE)


def _message_id_is_ours(e: Evidence) -> bool:
    """A Message-ID of mailbot's shape in our domain: a person's client in the ministry's
    domain writes its own ids there too, never in this shape."""
    match = _OUR_MESSAGE_ID.match(e.mail.message_id.strip())
    domain = e.context.message_id_domain.strip().lower()
    return match is not None and match.group("domain").lower() == domain


def _has_our_purpose_header(e: Evidence) -> bool:
    return bool(e.values(PURPOSE_HEADER))


def _is_from_own_address(e: Evidence) -> bool:
    return e.sender in e.context.own_addresses and (
        _message_id_is_ours(e) or _has_our_purpose_header(e)
    )


def _is_sent_as_queue(e: Evidence) -> bool:
    """From one of our addresses but not by mailbot, answering one of our messages or naming
    a `Sender:`: a staff member's reply sent as the queue (Outlook "Send As")."""
    return (
        e.sender in e.context.own_addresses
        and not _is_from_own_address(e)
        and not _has_our_loop_header(e)
        and not _has_own_message_id(e)
        and (e.thread.signed or bool(e.values("Sender")))
    )


def _is_own_address_with_foreign_id(e: Evidence) -> bool:
    return (
        e.sender in e.context.own_addresses and not _is_from_own_address(e) and not e.sent_as_queue
    )


def _report_type_is(report_type: str) -> Callable[[Evidence], bool]:
    def test(e: Evidence) -> bool:
        report = e.mail.delivery_report
        return report is not None and report.report_type == report_type

    return test


def _is_other_report(e: Evidence) -> bool:
    report = e.mail.delivery_report
    known = ("delivery-status", "disposition-notification", "feedback-report")
    return report is not None and report.report_type not in known


def _has_failed_recipients(e: Evidence) -> bool:
    return bool(e.values("X-Failed-Recipients"))


_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliver(ed|able)|mail delivery failed|delivery status notification"
    r"|delivery (has )?failed|delivery failure|delivery delayed|failure notice|returned mail"
    r"|mail system error|message not delivered|non[- ]?remis|echec de la remise"
    r"|remise differee|notification d'etat de (la )?remise|nondeliverable)"
)


def _is_failure_notice(e: Evidence) -> bool:
    """A delivery report in another form than RFC 3464 (qmail, Exim, Sendmail, Exchange...),
    in which flufl.bounce's detectors found a failed recipient (parse.FailureNotice), with a
    sign that a machine sent it: a person who pastes such a report stays a person."""
    machine_sent = (
        _has_null_return_path(e)
        or bool(_auto_submitted_values(e))
        or _is_robot_sender(e)
        or "@" not in (e.mail.header("From") or "")
    )
    return e.mail.failure_notice is not None and machine_sent


def _is_bounce_by_subject(e: Evidence) -> bool:
    """Non-standard bounces: a bounce subject, from a sender that is not a person."""
    machine_sent = (
        e.sender is None
        or _is_robot_sender(e)
        or _has_null_return_path(e)
        or bool(_auto_submitted_values(e))
    )
    return machine_sent and bool(_BOUNCE_SUBJECT.match(fold(e.mail.subject)))


def _auto_submitted_values(e: Evidence) -> tuple[str, ...]:
    """Auto-Submitted keywords other than "no" (RFC 3834), parameters ignored."""
    return tuple(
        keyword for keyword in map(_first_token, e.values("Auto-Submitted")) if keyword != "no"
    )


def _is_auto_replied(e: Evidence) -> bool:
    return "auto-replied" in _auto_submitted_values(e)


def _is_auto_submitted_otherwise(e: Evidence) -> bool:
    return any(keyword != "auto-replied" for keyword in _auto_submitted_values(e))


def _has_autoreply_header(e: Evidence) -> bool:
    return bool(e.values("X-Autoreply") or e.values("X-Autorespond"))


def _precedence(e: Evidence) -> str:
    values = e.values("Precedence")
    return _first_token(values[0]).replace("-", "_") if values else ""


def _has_precedence_auto_reply(e: Evidence) -> bool:
    return _precedence(e) == "auto_reply"


def _has_precedence_bulk(e: Evidence) -> bool:
    return _precedence(e) in ("bulk", "junk", "list")


_AWAY_SUBJECT = re.compile(
    r"^\s*(automatic reply|reponse automatique|autoreply|auto[- ]reply|auto[- ]response"
    r"|auto\b|out of (the )?office|absence du bureau|absente? du bureau|message d'absence"
    r"|avis d'absence|away from (the )?office|vacation reply|en vacances|abwesenheitsnotiz)"
)


def _has_away_subject(e: Evidence) -> bool:
    return bool(_AWAY_SUBJECT.match(fold(e.mail.subject)))


def _has_list_header(e: Evidence) -> bool:
    return any(name.startswith("list-") for name, _value in e.mail.headers)


def _has_null_return_path(e: Evidence) -> bool:
    return e.mail.return_path == ""


@lru_cache(maxsize=8)
def _robot_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


def _is_robot_sender(e: Evidence) -> bool:
    if e.mail.from_address is None:
        return False
    pattern = _robot_pattern(e.context.rules.robot_pattern)
    return bool(pattern.match(e.mail.from_address.local_part))


def _suppresses_auto_responses(e: Evidence) -> bool:
    wanted = {"all", "oof", "autoreply"}
    for value in e.values("X-Auto-Response-Suppress"):
        if wanted & {item.strip().lower() for item in value.split(",")}:
            return True
    return False


def _has_x_loop(e: Evidence) -> bool:
    return bool(e.values("X-Loop"))


def _ticket(e: Evidence) -> TicketFacts | None:
    ref = e.thread.ticket_ref
    return e.context.tickets.get(ref) if ref is not None else None


def _is_ticket_closed(e: Evidence) -> bool:
    facts = _ticket(e)
    return facts is not None and facts.status == "closed"


# Where a message says whom it was delivered to: the recipients its sender wrote, and the
# envelope recipient as receiving servers record it (Postfix, Dovecot and Gmail: Delivered-To,
# X-Original-To; Exim: Envelope-To; Exchange: its OriginalEnvelopeRecipients, where kept), so
# a note sent in Bcc is seen where the server says so.
_RECIPIENT_HEADERS = (
    "to",
    "cc",
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "x-ms-exchange-organization-originalenveloperecipients",
)


def _is_to_notes_address(e: Evidence) -> bool:
    if not e.context.notes_addresses:
        return False
    written = " ".join(value for name in _RECIPIENT_HEADERS for value in e.values(name))
    return bool(e.context.notes_addresses & addresses_in(written))


def _is_staff_without_signed_link(e: Evidence) -> bool:
    return e.acts_as_staff and not e.thread.signed


def _is_staff_as_citizen(e: Evidence) -> bool:
    return e.is_staff and not e.acts_as_staff


def _is_sender_not_requester(e: Evidence) -> bool:
    facts = _ticket(e)
    if facts is None or e.acts_as_staff or e.sent_as_queue:
        return False
    return e.sender is None or e.sender != facts.requester.lower()


@dataclass(frozen=True, slots=True)
class Rule:
    """One named predicate. `blocks_answer`: when it fires, nothing is answered automatically."""

    name: str
    signal: Signal
    test: Callable[[Evidence], bool]
    reason: str
    blocks_answer: bool = False


def _rule(name: str, signal: Signal, test: Callable[[Evidence], bool], reason: str) -> Rule:
    return Rule(name, signal, test, reason, blocks_answer=signal in AUTOMATIC_SIGNALS)


RULES: tuple[Rule, ...] = (
    # Our own mail, looped back: set aside before anything else looks at it.
    _rule("loop_header", Signal.OWN, _has_our_loop_header, f"porte notre en-tête {LOOP_HEADER}"),
    _rule("own_message_id", Signal.OWN, _has_own_message_id, "Message-ID signé par mailbot"),
    _rule(
        "from_own_address",
        Signal.OWN,
        _is_from_own_address,
        "expédié par une de nos adresses, avec un Message-ID de notre domaine",
    ),
    # Delivery reports (multipart/report, RFC 6522) and non-standard bounces.
    _rule(
        "feedback_report",
        Signal.FEEDBACK,
        _report_type_is("feedback-report"),
        "rapport de plainte pour pourriel (feedback-report)",
    ),
    _rule(
        "disposition_notification",
        Signal.RECEIPT,
        _report_type_is("disposition-notification"),
        "accusé de lecture (disposition-notification)",
    ),
    _rule(
        "delivery_status_report",
        Signal.BOUNCE,
        _report_type_is("delivery-status"),
        "rapport de remise (delivery-status)",
    ),
    _rule(
        "failed_recipients_header",
        Signal.BOUNCE,
        _has_failed_recipients,
        "en-tête X-Failed-Recipients (rapport de non-remise)",
    ),
    _rule(
        "failure_notice",
        Signal.BOUNCE,
        _is_failure_notice,
        "rapport de non-remise d'un autre format (qmail, Exim, Sendmail…), destinataire en échec",
    ),
    _rule(
        "bounce_subject",
        Signal.BOUNCE,
        _is_bounce_by_subject,
        "objet de rapport de non-remise, expédié par un robot",
    ),
    # Autoresponders (RFC 3834) and out-of-office messages.
    _rule("auto_replied", Signal.AUTO_REPLY, _is_auto_replied, "Auto-Submitted: auto-replied"),
    _rule(
        "autoreply_header",
        Signal.AUTO_REPLY,
        _has_autoreply_header,
        "en-tête X-Autoreply ou X-Autorespond",
    ),
    _rule(
        "precedence_auto_reply",
        Signal.AUTO_REPLY,
        _has_precedence_auto_reply,
        "Precedence: auto_reply",
    ),
    Rule(
        "away_subject",
        Signal.AWAY_SUBJECT,
        _has_away_subject,
        "objet de réponse automatique ou d'absence du bureau",
    ),
    # Lists, newsletters, bulk mail (RFC 2369, RFC 2919).
    _rule("list_header", Signal.LIST, _has_list_header, "en-tête List-* (liste de diffusion)"),
    _rule(
        "precedence_bulk",
        Signal.LIST,
        _has_precedence_bulk,
        "Precedence: bulk, list ou junk",
    ),
    # Any other automatic mail.
    _rule(
        "auto_submitted",
        Signal.AUTOMATIC,
        _is_auto_submitted_otherwise,
        "Auto-Submitted autre que « no »",
    ),
    _rule(
        "null_return_path",
        Signal.AUTOMATIC,
        _has_null_return_path,
        "expéditeur d'enveloppe nul (Return-Path: <>)",
    ),
    _rule("robot_sender", Signal.AUTOMATIC, _is_robot_sender, "adresse d'expéditeur de robot"),
    _rule(
        "auto_response_suppress",
        Signal.AUTOMATIC,
        _suppresses_auto_responses,
        "X-Auto-Response-Suppress demande de ne pas répondre",
    ),
    _rule("x_loop_header", Signal.AUTOMATIC, _has_x_loop, "en-tête X-Loop"),
    _rule(
        "foreign_loop_header",
        Signal.AUTOMATIC,
        _has_foreign_loop_header,
        f"en-tête {LOOP_HEADER} d'un autre système",
    ),
    _rule(
        "own_address_sender",
        Signal.AUTOMATIC,
        _is_own_address_with_foreign_id,
        "expédié sous une de nos adresses, mais pas par mailbot",
    ),
    _rule("other_report", Signal.AUTOMATIC, _is_other_report, "autre rapport multipart/report"),
    # Threading.
    Rule(
        "thread_token",
        Signal.NOTE,
        lambda e: e.thread.header_token,
        "répond à un de nos messages (jeton signé dans In-Reply-To/References)",
    ),
    Rule(
        "address_token",
        Signal.NOTE,
        lambda e: e.thread.address_token,
        "écrit à une adresse de réponse signée d'un dossier",
    ),
    Rule(
        "subject_token",
        Signal.NOTE,
        lambda e: e.thread.subject_token,
        "jeton signé dans l'objet (lien « note interne » d'un avis au personnel) : note",
    ),
    Rule(
        "notes_address",
        Signal.NOTE,
        _is_to_notes_address,
        "écrit à l'adresse des notes d'une file : note interne, jamais transmise",
        blocks_answer=True,
    ),
    Rule(
        "known_message_id",
        Signal.NOTE,
        lambda e: e.thread.known_message_id,
        "répond à un message déjà classé dans un dossier",
    ),
    Rule(
        "subject_ref_from_requester",
        Signal.NOTE,
        lambda e: e.thread.subject_ref_from_requester,
        "numéro de dossier dans l'objet, envoyé par le demandeur du dossier",
    ),
    Rule(
        "subject_ref_from_stranger",
        Signal.NOTE,
        lambda e: e.thread.subject_ref_from_stranger,
        "numéro de dossier dans l'objet, mais l'expéditeur n'est pas le demandeur",
    ),
    Rule(
        "unknown_ticket_ref",
        Signal.NOTE,
        lambda e: bool(e.thread.unknown_refs),
        "jeton signé d'un dossier introuvable",
    ),
    Rule(
        "several_tickets",
        Signal.NOTE,
        lambda e: e.thread.several_tickets,
        "le message renvoie à plusieurs dossiers",
    ),
    Rule(
        "forged_token",
        Signal.NOTE,
        lambda e: e.thread.forged_token,
        "jeton de dossier altéré ou contrefait (ignoré)",
    ),
    Rule("ticket_closed", Signal.NOTE, _is_ticket_closed, "le dossier visé est fermé"),
    # The sender.
    Rule("staff_sender", Signal.NOTE, lambda e: e.is_staff, "expéditeur du personnel"),
    Rule(
        "staff_without_ticket",
        Signal.NOTE,
        _is_staff_without_signed_link,
        "message du personnel sans lien signé vers un dossier",
    ),
    Rule(
        "staff_as_citizen",
        Signal.NOTE,
        _is_staff_as_citizen,
        "membre du personnel qui n'agit pas ici comme tel (autre file, ou son propre dossier) :"
        " traité comme toute personne",
    ),
    Rule(
        "sent_as_queue",
        Signal.NOTE,
        lambda e: e.sent_as_queue,
        "envoyé sous l'adresse de la file (« Envoyer en tant que ») : jugé sur la personne"
        " que nomme l'en-tête Sender",
    ),
    Rule(
        "unparsable_sender",
        Signal.NOTE,
        lambda e: e.sender is None,
        "adresse d'expéditeur absente, illisible ou ambiguë",
        blocks_answer=True,
    ),
    Rule(
        "loose_sender_syntax",
        Signal.NOTE,
        lambda e: e.sender is not None and e.mail.sender is None,
        "adresse d'expéditeur lue avec tolérance (syntaxe non conforme)",
    ),
    Rule(
        "sender_not_requester",
        Signal.NOTE,
        _is_sender_not_requester,
        "l'expéditeur n'est pas le demandeur du dossier",
        blocks_answer=True,
    ),
)


# The rules that make a message an internal note (mailbot/intake/decide.py).
NOTE_RULES = frozenset({"notes_address", "subject_token"})


def is_note(verdict: Verdict) -> bool:
    """Whether the message is an internal note: sent to a notes address, or linked to its
    ticket by the token of a notes link."""
    return bool(NOTE_RULES & set(verdict.rules))


# --- Categories of new requests ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """Moves a new request sent to the information mailbox to another queue that exists."""

    name: str
    category: Category
    phrases: Callable[[ClassificationSettings], tuple[str, ...]]
    reason: str


CATEGORY_RULES: tuple[CategoryRule, ...] = (
    CategoryRule(
        "complaint_phrase",
        "complaint",
        lambda rules: rules.complaint_phrases,
        "formulation de plainte : classé comme plainte",
    ),
    CategoryRule(
        "internship_phrase",
        "internship",
        lambda rules: rules.internship_phrases,
        "formulation de candidature de stage",
    ),
    CategoryRule(
        "cooperation_phrase",
        "cooperation",
        lambda rules: rules.cooperation_phrases,
        "formulation de projet de coopération",
    ),
)


@lru_cache(maxsize=32)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """Whole words, any spacing, accent- and case-insensitive (text is folded first)."""
    alternatives = [
        r"\s+".join(re.escape(word) for word in fold(phrase).split()) for phrase in phrases
    ]
    alternatives = [item for item in alternatives if item]
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


ADDRESSED_TO_COMPLAINTS = CategoryRule(
    "addressed_to_complaints",
    "complaint",
    lambda rules: (),
    "adressé aussi à la boîte des plaintes : classé comme plainte",
)


def _category(
    mail: InboundMail, context: ClassifyContext
) -> tuple[Category, tuple[CategoryRule, ...]]:
    """The queue of a new request. A message the citizen addressed to the complaints mailbox
    too (To or Cc) is a complaint whichever copy is read first: one request, one ticket."""
    default = context.mailbox.category
    if default != "complaint" and context.complaint_addresses & addresses_in(
        " ".join((*mail.header_values("to"), *mail.header_values("cc")))
    ):
        return "complaint", (ADDRESSED_TO_COMPLAINTS,)
    if default != "information":
        return default, ()
    text = fold(f"{mail.subject}\n{mail.text[:CATEGORY_TEXT_CHARS]}")
    fired = []
    for rule in CATEGORY_RULES:
        if rule.category not in context.available_categories:
            continue
        pattern = _phrase_pattern(tuple(rule.phrases(context.rules)))
        if pattern is not None and pattern.search(text):
            fired.append(rule)
    return (fired[0].category if fired else default), tuple(fired)


# --- Language ----------------------------------------------------------------------------


def new_text(text: str) -> str:
    """The text above the quoted history (the cut staff replies get,
    `quotes.extract_new_text`); the whole text when fewer than three words stand above it."""
    kept = extract_new_text(text).text
    return kept if len(kept.split()) >= 3 else text


def _language(mail: InboundMail) -> Literal["fr", "en"]:
    subject = strip_reply_prefix(mail.subject)
    return detect_language(f"{subject}\n{new_text(mail.text[:_LANGUAGE_TEXT_CHARS])}")


# --- The verdict -------------------------------------------------------------------------


def _kind(signals: frozenset[Signal], evidence: Evidence) -> Kind:
    """The strongest signal decides; a person's mail is what remains."""
    if Signal.OWN in signals:
        return Kind.OWN_MAIL
    if Signal.FEEDBACK in signals:
        return Kind.FEEDBACK_REPORT
    if Signal.RECEIPT in signals:
        return Kind.READ_RECEIPT
    if Signal.BOUNCE in signals:
        return Kind.BOUNCE
    # An away subject alone is a person's words ("Auto : permis de conduire"); with any
    # automatic sign it is an out-of-office.
    away = Signal.AWAY_SUBJECT in signals and bool(signals & {Signal.AUTOMATIC, Signal.LIST})
    if Signal.AUTO_REPLY in signals or away:
        return Kind.AUTO_REPLY
    if Signal.LIST in signals:
        return Kind.LIST_MAIL
    if Signal.AUTOMATIC in signals:
        return Kind.ROBOT
    if evidence.acts_as_staff or evidence.sent_as_queue:
        return Kind.STAFF_REPLY
    if evidence.thread.ticket_ref is not None:
        return Kind.FOLLOW_UP
    return Kind.NEW_REQUEST


def _ticket_ref(kind: Kind, thread: Threading) -> str | None:
    if kind in (Kind.OWN_MAIL, Kind.NEW_REQUEST):
        return None
    if kind is Kind.STAFF_REPLY:
        # Staff reach a ticket only through a link a stranger cannot forge.
        return thread.ticket_ref if thread.signed else None
    if kind in (Kind.BOUNCE, Kind.READ_RECEIPT, Kind.FEEDBACK_REPORT):
        if thread.report_ref is not None:
            return thread.report_ref
        return thread.ticket_ref if (thread.signed or thread.known_message_id) else None
    return thread.ticket_ref


def classify(mail: InboundMail, context: ClassifyContext) -> Verdict:
    """Test every rule on `mail`; the verdict names the rules that fired and what follows."""
    evidence = _gather_evidence(mail, context)
    fired = tuple(rule for rule in RULES if rule.test(evidence))
    signals = frozenset(rule.signal for rule in fired)
    kind = _kind(signals, evidence)
    reasons = [rule.reason for rule in fired]
    names = [rule.name for rule in fired]
    category: Category | None = None
    if kind is Kind.NEW_REQUEST:
        category, category_rules = _category(mail, context)
        names.extend(rule.name for rule in category_rules)
        reasons.extend(rule.reason for rule in category_rules)
    may_auto_answer = (
        kind in (Kind.NEW_REQUEST, Kind.FOLLOW_UP)
        and evidence.sender is not None
        and not any(rule.blocks_answer for rule in fired)
    )
    return Verdict(
        kind=kind,
        rules=tuple(names),
        may_auto_answer=may_auto_answer,
        ticket_ref=_ticket_ref(kind, evidence.thread),
        category=category,
        language=_language(mail),
        reasons=tuple(reasons),
        named_tickets=evidence.thread.named,
    )
