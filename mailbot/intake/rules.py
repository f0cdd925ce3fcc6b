"""The rule table: small named predicates over the `Evidence`, each with the signal it gives
and its reason in French (pure).

Notes (`NOTE_RULES`, mailbot/intake/verdicts.py): mail addressed to a queue's notes address
(To, Cc, or the envelope recipient a receiving server records: Delivered-To,
X-Original-To...), or staff mail whose signed token is in its subject (the "note" link of a
staff notice puts it there), is an internal note: it never reaches a citizen. Reading the
headers loosely is safe here because it only ever takes power away: a note still needs the
staff checks a reply needs (mailbot/staff/replies.py), and can never become a reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from mailbot.intake.evidence import (
    Evidence,
    has_our_loop_header,
    has_own_message_id,
    is_from_own_address,
    ticket_of,
)
from mailbot.intake.verdicts import AUTOMATIC_SIGNALS, Signal
from mailbot.mail.addresses import addresses_in
from mailbot.mail.render import LOOP_HEADER
from mailbot.mail.text import fold


def _first_token(value: str) -> str:
    """A structured header's keyword, parameters dropped: "auto-replied; x=y" -> "auto-replied"."""
    return value.split(";", 1)[0].strip().lower()


def _has_foreign_loop_header(e: Evidence) -> bool:
    domain = e.context.message_id_domain.strip().lower()
    return any(value.strip().lower() != domain for value in e.values(LOOP_HEADER))


def _is_own_address_with_foreign_id(e: Evidence) -> bool:
    return (
        e.sender in e.context.own_addresses and not is_from_own_address(e) and not e.sent_as_queue
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
    in which flufl.bounce's detectors found a failed recipient (delivery_reports.FailureNotice),
    with a sign that a machine sent it: a person who pastes such a report stays a person."""
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


def _is_ticket_closed(e: Evidence) -> bool:
    facts = ticket_of(e)
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
    facts = ticket_of(e)
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
    _rule("loop_header", Signal.OWN, has_our_loop_header, f"porte notre en-tête {LOOP_HEADER}"),
    _rule("own_message_id", Signal.OWN, has_own_message_id, "Message-ID signé par mailbot"),
    _rule(
        "from_own_address",
        Signal.OWN,
        is_from_own_address,
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
