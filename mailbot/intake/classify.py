"""Named rules -> a verdict that records the rules that fired (pure).

`classify` never reads a database: the caller first asks `candidate_refs`
(mailbot/intake/thread_links.py) which ticket references the message names, looks those up,
and passes the facts in `ClassifyContext` (mailbot/intake/verdicts.py).

How a verdict is reached:
  1. every rule of `RULES` (mailbot/intake/rules.py, a table of small named predicates over
     the `Evidence` of mailbot/intake/evidence.py) is tested; the names of those that fire
     are kept, in table order;
  2. the kind follows from the *signals* of the rules that fired, strongest first: our own
     mail, then delivery reports, automatic replies, list mail, other automatic mail; only a
     message with none of those is a person's mail (staff reply, follow-up or new request);
  3. for a new request, `CATEGORY_RULES` (mailbot/intake/categories.py) may move it from the
     information queue to another queue that exists (a complaint sent to the information
     mailbox, for example).

Automatic mail is never answered (RELIABILITY.md, "When never to answer automatically"), but
it is not dropped: when it belongs to a ticket, `ticket_ref` says which, so the caller can
attach it with a flag. Only our own looped mail (`Kind.OWN_MAIL`) is set aside.
"""

from __future__ import annotations

from typing import Literal

from mailbot.intake.categories import categorise
from mailbot.intake.evidence import Evidence, gather_evidence
from mailbot.intake.rules import RULES
from mailbot.intake.thread_links import Threading
from mailbot.intake.verdicts import ClassifyContext, Kind, Signal, Verdict
from mailbot.mail.language import detect_language
from mailbot.mail.parse import InboundMail
from mailbot.mail.quotes import extract_new_text
from mailbot.mail.text import strip_reply_prefix
from mailbot.settings import Category

_LANGUAGE_TEXT_CHARS = 4_000


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
    evidence = gather_evidence(mail, context)
    fired = tuple(rule for rule in RULES if rule.test(evidence))
    signals = frozenset(rule.signal for rule in fired)
    kind = _kind(signals, evidence)
    reasons = [rule.reason for rule in fired]
    names = [rule.name for rule in fired]
    category: Category | None = None
    if kind is Kind.NEW_REQUEST:
        category, category_rules = categorise(mail, context)
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
