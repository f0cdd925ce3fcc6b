"""The classifier as a specification: a literal message in, a verdict out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, replace

import pytest

from mailbot.intake.categories import CATEGORY_RULES
from mailbot.intake.classify import classify, new_text
from mailbot.intake.rules import RULES
from mailbot.intake.thread_links import candidate_refs
from mailbot.intake.verdicts import (
    AUTOMATIC_SIGNALS,
    ClassifyContext,
    Kind,
    TicketFacts,
    Verdict,
)
from mailbot.mail.parse import parse_message
from mailbot.mail.render import LOOP_HEADER
from mailbot.mail.tokens import make_message_id, make_token
from mailbot.settings import ClassificationSettings, MailboxSettings

KEY = b"unit-test-signing-key"
DOMAIN = "mailbot.mri.gouv.qc.ca"
INFO = "renseignements@mri.gouv.qc.ca"
COMPLAINTS = "plaintes@mri.gouv.qc.ca"
CITIZEN = "marie.tremblay@gmail.com"
STAFF = "sophie.lavoie@mri.gouv.qc.ca"
REF = "MRI-2025-00042"
OTHER_REF = "MRI-2025-00057"
TOKEN_ID = make_message_id(KEY, REF, "a1b2c3d4e5f6", DOMAIN)
OTHER_TOKEN_ID = make_message_id(KEY, OTHER_REF, "0a0b0c0d0e0f", DOMAIN)
TICKETS = {
    REF: TicketFacts(ref=REF, requester=CITIZEN, status="open"),
    OTHER_REF: TicketFacts(ref=OTHER_REF, requester="john.smith@outlook.com", status="closed"),
}


def mailbox(name: str = "renseignements", category: str = "information") -> MailboxSettings:
    return MailboxSettings.model_validate(
        {
            "name": name,
            "address": f"{name}@mri.gouv.qc.ca",
            "display_name": name,
            "login": name,
            "password_env": "UNUSED",
            "category": category,
            "commitments": (),
            "staff": ("listed.agent@partenaire.example", STAFF),
        }
    )


def context(**changes: object) -> ClassifyContext:
    base = ClassifyContext(
        mailbox=mailbox(),
        rules=ClassificationSettings(),
        own_addresses=frozenset({INFO, COMPLAINTS}),
        message_id_domain=DOMAIN,
        staff_addresses=frozenset({STAFF}),
        staff_domains=frozenset({"mri.gouv.qc.ca"}),
        signing_key=KEY,
        tickets=TICKETS,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def message(
    headers: Mapping[str, str] | None = None,
    body: str = "Bonjour, je voudrais savoir comment obtenir une attestation. Merci.",
    *,
    sender: str | None = f"Marie Tremblay <{CITIZEN}>",
    subject: str = "Demande d'information",
    to: str = INFO,
    extra: str = "",
) -> bytes:
    """A plain-text message; `headers` are added after the usual ones, `extra` verbatim."""
    lines = []
    if sender is not None:
        lines.append(f"From: {sender}")
    lines += [
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Mon, 3 Nov 2025 10:00:00 -0500",
        "Message-ID: <unit.0001@mail.example>",
        "MIME-Version: 1.0",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if extra:
        lines.append(extra.rstrip("\n"))
    else:
        lines.append('Content-Type: text/plain; charset="utf-8"')
    return ("\n".join(lines) + "\n\n" + body + "\n").encode("utf-8")


def verdict_of(raw: bytes, **changes: object) -> Verdict:
    return classify(parse_message(raw), context(**changes))


# --- The contract ------------------------------------------------------------------------


def test_kind_values_are_the_stored_names() -> None:
    assert {kind.value for kind in Kind} == {
        "new_request",
        "follow_up",
        "staff_reply",
        "auto_reply",
        "bounce",
        "read_receipt",
        "feedback_report",
        "list_mail",
        "robot",
        "own_mail",
    }


def test_loop_header_name() -> None:
    assert LOOP_HEADER == "X-Mailbot-Loop"


def test_context_defaults() -> None:
    ctx = context()
    assert ctx.known_message_ids == {}
    assert ctx.available_categories == frozenset({"information", "complaint"})


def test_values_are_frozen() -> None:
    verdict = verdict_of(message())
    with pytest.raises(FrozenInstanceError):
        verdict.kind = Kind.ROBOT  # type: ignore[misc]


def test_rule_names_are_unique_snake_case_with_reasons() -> None:
    names = [rule.name for rule in RULES] + [rule.name for rule in CATEGORY_RULES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name) for name in names)
    assert all(rule.reason for rule in RULES)
    assert all(rule.reason for rule in CATEGORY_RULES)


def test_rules_are_listed_in_table_order_with_one_reason_each() -> None:
    raw = message(
        {"Auto-Submitted": "auto-generated", "Precedence": "bulk", "List-Id": "<x.example>"},
        subject="Infolettre",
    )
    verdict = verdict_of(raw)
    order = [rule.name for rule in RULES]
    assert list(verdict.rules) == sorted(verdict.rules, key=order.index)
    assert verdict.rules == ("list_header", "precedence_bulk", "auto_submitted")
    assert len(verdict.reasons) == len(verdict.rules)


def test_classify_is_deterministic() -> None:
    raw = message({"In-Reply-To": TOKEN_ID})
    assert verdict_of(raw) == verdict_of(raw)


# --- A citizen's new request ---------------------------------------------------------------


def test_plain_request_is_a_new_request_that_may_be_answered() -> None:
    verdict = verdict_of(message())
    assert verdict == Verdict(
        kind=Kind.NEW_REQUEST,
        rules=(),
        may_auto_answer=True,
        ticket_ref=None,
        category="information",
        language="fr",
        reasons=(),
    )


def test_new_request_without_a_parsable_sender_is_never_answered() -> None:
    verdict = verdict_of(message(sender=None))
    assert verdict.kind is Kind.NEW_REQUEST
    assert "unparsable_sender" in verdict.rules
    assert not verdict.may_auto_answer


def test_lenient_from_that_hides_a_staff_address_is_no_sender() -> None:
    verdict = verdict_of(message(sender=f"{STAFF})<attacker@evil.example>"))
    assert verdict.kind is Kind.NEW_REQUEST
    assert "unparsable_sender" in verdict.rules


def test_category_is_the_mailbox_category_by_default() -> None:
    verdict = verdict_of(message(to=COMPLAINTS), mailbox=mailbox("plaintes", "complaint"))
    assert verdict.category == "complaint"
    assert verdict.rules == ()


# --- Our own mail ------------------------------------------------------------------------


def test_our_loop_header_is_own_mail() -> None:
    verdict = verdict_of(message({LOOP_HEADER: DOMAIN.upper()}))
    assert verdict.kind is Kind.OWN_MAIL
    assert verdict.rules == ("loop_header",)
    assert not verdict.may_auto_answer
    assert verdict.ticket_ref is None


def test_a_loop_header_of_another_system_is_a_robot() -> None:
    verdict = verdict_of(message({LOOP_HEADER: "helpdesk.other.example"}))
    assert verdict.kind is Kind.ROBOT
    assert verdict.rules == ("foreign_loop_header",)


def test_our_signed_message_id_is_own_mail_whoever_sends_it() -> None:
    raw = message().replace(b"<unit.0001@mail.example>", TOKEN_ID.encode())
    verdict = verdict_of(raw)
    assert verdict.kind is Kind.OWN_MAIL
    assert "own_message_id" in verdict.rules


def test_from_our_address_with_a_message_id_of_ours_is_own_mail() -> None:
    ours = f"mb-digest.2025-11-24.0a1b2c3d4e5f@{DOMAIN}"
    raw = message(sender=INFO).replace(b"unit.0001@mail.example", ours.encode())
    verdict = verdict_of(raw)
    assert verdict.kind is Kind.OWN_MAIL
    assert verdict.rules == ("from_own_address",)


def test_from_our_address_with_our_purpose_header_is_own_mail() -> None:
    verdict = verdict_of(message({"X-Mailbot-Purpose": "digest"}, sender=INFO))
    assert verdict.kind is Kind.OWN_MAIL
    assert verdict.rules == ("from_own_address",)


def test_our_address_with_a_foreign_message_id_is_not_set_aside() -> None:
    verdict = verdict_of(message(sender=INFO))
    assert verdict.kind is Kind.ROBOT
    assert verdict.rules == ("own_address_sender",)
    assert "staff_sender" not in verdict.rules  # a mailbox is not a person


# --- Automatic mail ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "rule"),
    [
        ("auto-replied", Kind.AUTO_REPLY, "auto_replied"),
        ("Auto-Replied; owner-email=x@example.org", Kind.AUTO_REPLY, "auto_replied"),
        ("auto-generated", Kind.ROBOT, "auto_submitted"),
        ("AUTO-NOTIFIED", Kind.ROBOT, "auto_submitted"),
        ("auto-generated (failure)", Kind.ROBOT, "auto_submitted"),
    ],
)
def test_auto_submitted(value: str, kind: Kind, rule: str) -> None:
    verdict = verdict_of(message({"Auto-Submitted": value}))
    assert verdict.kind is kind
    assert rule in verdict.rules
    assert not verdict.may_auto_answer


@pytest.mark.parametrize("value", ["no", "No", " no ; comment=x"])
def test_auto_submitted_no_is_a_person(value: str) -> None:
    verdict = verdict_of(message({"Auto-Submitted": value}))
    assert verdict.kind is Kind.NEW_REQUEST
    assert verdict.may_auto_answer


def test_null_return_path_is_automatic() -> None:
    verdict = verdict_of(message({"Return-Path": "<>"}))
    assert verdict.kind is Kind.ROBOT
    assert verdict.rules == ("null_return_path",)


def test_ordinary_return_path_is_not() -> None:
    assert verdict_of(message({"Return-Path": f"<{CITIZEN}>"})).kind is Kind.NEW_REQUEST


@pytest.mark.parametrize(
    "local",
    [
        "mailer-daemon",
        "MAILER-DAEMON",
        "postmaster",
        "owner-liste",
        "liste-request",
        "liste-bounces",
        "noreply",
        "no-reply-notifications",
        "ne-pas-repondre",
        "abuse",
        "root",
    ],
)
def test_robot_senders(local: str) -> None:
    verdict = verdict_of(message(sender=f"<{local}@systeme.example>"))
    assert verdict.kind is Kind.ROBOT
    assert verdict.rules == ("robot_sender",)


@pytest.mark.parametrize("local", ["norbert", "rootkit.fan", "marie.abuse-victim", "info"])
def test_people_whose_names_look_like_robots(local: str) -> None:
    assert verdict_of(message(sender=f"<{local}@example.org>")).kind is Kind.NEW_REQUEST


def test_robot_pattern_comes_from_the_settings() -> None:
    rules = ClassificationSettings(robot_pattern=r"^info$")
    assert verdict_of(message(sender="<info@example.org>"), rules=rules).kind is Kind.ROBOT
    assert verdict_of(message(sender="<noreply@x.example>"), rules=rules).kind is Kind.NEW_REQUEST


@pytest.mark.parametrize(
    "header", ["List-Id", "List-Unsubscribe", "List-Post", "list-archive", "List-Owner"]
)
def test_any_list_header_is_list_mail(header: str) -> None:
    verdict = verdict_of(message({header: "<liste.example.org>"}))
    assert verdict.kind is Kind.LIST_MAIL
    assert verdict.rules == ("list_header",)


@pytest.mark.parametrize("value", ["bulk", "junk", "list", "Bulk"])
def test_precedence_bulk(value: str) -> None:
    verdict = verdict_of(message({"Precedence": value}))
    assert verdict.kind is Kind.LIST_MAIL
    assert verdict.rules == ("precedence_bulk",)


@pytest.mark.parametrize("value", ["auto_reply", "auto-reply"])
def test_precedence_auto_reply(value: str) -> None:
    verdict = verdict_of(message({"Precedence": value}))
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.rules == ("precedence_auto_reply",)


def test_other_precedence_is_ignored() -> None:
    assert verdict_of(message({"Precedence": "first-class"})).kind is Kind.NEW_REQUEST


@pytest.mark.parametrize("value", ["All", "DR, OOF", "dr,rn,autoreply", " OOF "])
def test_auto_response_suppress(value: str) -> None:
    verdict = verdict_of(message({"X-Auto-Response-Suppress": value}))
    assert verdict.kind is Kind.ROBOT
    assert verdict.rules == ("auto_response_suppress",)


def test_auto_response_suppress_for_receipts_only_is_not_automatic() -> None:
    verdict = verdict_of(message({"X-Auto-Response-Suppress": "DR, RN, NRN"}))
    assert verdict.kind is Kind.NEW_REQUEST


@pytest.mark.parametrize(
    ("header", "kind", "rule"),
    [
        ("X-Autoreply", Kind.AUTO_REPLY, "autoreply_header"),
        ("X-Autorespond", Kind.AUTO_REPLY, "autoreply_header"),
        ("X-Loop", Kind.ROBOT, "x_loop_header"),
    ],
)
def test_autoresponder_headers(header: str, kind: Kind, rule: str) -> None:
    verdict = verdict_of(message({header: "yes"}))
    assert verdict.kind is kind
    assert verdict.rules == (rule,)


# --- Out-of-office by subject ------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Votre demande",
        "Réponse automatique : Votre demande",
        "RÉPONSE AUTOMATIQUE : Votre demande",
        "Out of Office: Votre demande",
        "Absence du bureau : Votre demande",
        "Auto: Votre demande",
    ],
)
def test_away_subject_with_an_automatic_header_is_an_auto_reply(subject: str) -> None:
    verdict = verdict_of(message({"X-Auto-Response-Suppress": "All"}, subject=subject))
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.rules == ("away_subject", "auto_response_suppress")


def test_away_subject_alone_is_a_person() -> None:
    verdict = verdict_of(message(subject="Out of office hours: can I still call you?"))
    assert verdict.kind is Kind.NEW_REQUEST
    assert verdict.rules == ("away_subject",)
    assert verdict.may_auto_answer


def test_subject_that_only_starts_with_auto_is_not_away() -> None:
    verdict = verdict_of(message(subject="Automobile : permis international"))
    assert "away_subject" not in verdict.rules


def test_citizen_out_of_office_on_a_ticket_keeps_the_ticket() -> None:
    raw = message({"Auto-Submitted": "auto-replied", "In-Reply-To": TOKEN_ID})
    verdict = verdict_of(raw)
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.ticket_ref == REF
    assert not verdict.may_auto_answer


def test_staff_out_of_office_is_an_auto_reply_not_a_staff_reply() -> None:
    raw = message(
        {"Auto-Submitted": "auto-generated", "In-Reply-To": TOKEN_ID},
        sender=f"<{STAFF}>",
        subject="Réponse automatique : [MRI-2025-00042]",
    )
    verdict = verdict_of(raw)
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.ticket_ref == REF


# --- Delivery reports --------------------------------------------------------------------


def report(report_type: str, inner: str, *, sender: str = "<MAILER-DAEMON@mx.example>") -> bytes:
    body = (
        "--b\nContent-Type: text/plain\n\nNotice.\n\n"
        f"--b\nContent-Type: message/{report_type}\n\n{inner}\n\n--b--\n"
    )
    extra = f'Content-Type: multipart/report; report-type={report_type}; boundary="b"'
    return message(sender=sender, subject="Notice", extra=extra, body=body)


DSN = (
    "Reporting-MTA: dns; mx.example\n\n"
    f"Final-Recipient: rfc822; {CITIZEN}\nAction: failed\nStatus: 5.1.1"
)


def test_delivery_status_report_is_a_bounce() -> None:
    verdict = verdict_of(report("delivery-status", DSN))
    assert verdict.kind is Kind.BOUNCE
    assert "delivery_status_report" in verdict.rules
    assert verdict.ticket_ref is None
    assert verdict.category is None


def test_bounce_finds_its_ticket_in_the_original_message_id() -> None:
    body = (
        "--b\nContent-Type: text/plain\n\nFailed.\n\n"
        f"--b\nContent-Type: message/delivery-status\n\n{DSN}\n\n"
        "--b\nContent-Type: text/rfc822-headers\n\n"
        f"Message-ID: {TOKEN_ID}\nTo: {CITIZEN}\n\n--b--\n"
    )
    extra = 'Content-Type: multipart/report; report-type=delivery-status; boundary="b"'
    raw = message(sender="<MAILER-DAEMON@mx.example>", extra=extra, body=body)
    assert verdict_of(raw).ticket_ref == REF


def test_bounce_of_a_ticket_we_do_not_know_has_no_ticket() -> None:
    body = (
        "Hi. This is the qmail-send program.\n\n--- Below this line is a copy.\n\n"
        f"Message-ID: {TOKEN_ID}\n"
    )
    raw = message(sender="<MAILER-DAEMON@mx.example>", subject="failure notice", body=body)
    assert verdict_of(raw).ticket_ref == REF
    assert verdict_of(raw, tickets={}).ticket_ref is None


def test_read_receipt_and_feedback_report() -> None:
    mdn = (
        f"Final-Recipient: rfc822;{CITIZEN}\nOriginal-Message-ID: {TOKEN_ID}\n"
        "Disposition: manual-action/MDN-sent-manually; displayed"
    )
    receipt = verdict_of(report("disposition-notification", mdn, sender=f"<{CITIZEN}>"))
    assert receipt.kind is Kind.READ_RECEIPT
    assert receipt.ticket_ref == REF
    feedback = verdict_of(report("feedback-report", "Feedback-Type: abuse\nVersion: 1"))
    assert feedback.kind is Kind.FEEDBACK_REPORT
    assert not feedback.may_auto_answer


def test_unknown_report_type_is_a_robot() -> None:
    verdict = verdict_of(report("x-weekly", "Count: 0", sender="<reports@scanner.example>"))
    assert verdict.kind is Kind.ROBOT
    assert verdict.rules == ("other_report",)


@pytest.mark.parametrize(
    "subject",
    [
        "Undelivered Mail Returned to Sender",
        "Mail delivery failed: returning message to sender",
        "Delivery Status Notification (Failure)",
        "Undeliverable: Votre demande",
        "Non remis : Votre demande",
        "Échec de la remise du message",
        "failure notice",
        "Returned mail: see transcript for details",
    ],
)
def test_non_standard_bounce_from_a_robot(subject: str) -> None:
    verdict = verdict_of(message(sender="<MAILER-DAEMON@mx.example>", subject=subject))
    assert verdict.kind is Kind.BOUNCE
    assert "bounce_subject" in verdict.rules


def test_bounce_subject_from_a_person_is_a_person() -> None:
    verdict = verdict_of(message(subject="Undeliverable: why did my mail to you bounce?"))
    assert verdict.kind is Kind.NEW_REQUEST


def test_forwarded_bounce_from_a_person_is_a_person() -> None:
    assert verdict_of(message(subject="TR : Non remis : Demande")).kind is Kind.NEW_REQUEST


def test_exim_failed_recipients_header_is_a_bounce() -> None:
    verdict = verdict_of(message({"X-Failed-Recipients": CITIZEN}, sender="<x@mx.example>"))
    assert verdict.kind is Kind.BOUNCE
    assert verdict.rules == ("failed_recipients_header",)


# --- Threading ---------------------------------------------------------------------------


def test_candidate_refs() -> None:
    raw = message(
        {
            "In-Reply-To": TOKEN_ID,
            "Cc": f"<renseignements+{make_token(KEY, OTHER_REF, 'ffffffffffff')}@mri.gouv.qc.ca>",
        },
        subject="RE : MRI-2025-00063 et ABC-2025-00001 et mri-2025-00064",
    )
    refs = candidate_refs(parse_message(raw), KEY, "MRI")
    assert refs == {REF, OTHER_REF, "MRI-2025-00063", "MRI-2025-00064"}


def test_candidate_refs_ignore_forged_tokens() -> None:
    forged = TOKEN_ID.replace(REF, OTHER_REF)
    assert candidate_refs(parse_message(message({"References": forged})), KEY, "MRI") == set()


def test_candidate_refs_include_a_report_original() -> None:
    mdn = f"Original-Message-ID: {TOKEN_ID}\nDisposition: displayed"
    mail = parse_message(report("disposition-notification", mdn))
    assert candidate_refs(mail, KEY, "MRI") == {REF}


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ({"In-Reply-To": TOKEN_ID}, "thread_token"),
        ({"References": f"<a@b.example> {TOKEN_ID} <c@d.example>"}, "thread_token"),
        ({"Cc": f"<{make_token(KEY, REF, 'abcdefabcdef')}@mri.gouv.qc.ca>"}, "address_token"),
        ({"Reply-To": f"<info+{make_token(KEY, REF, 'abcdefabcdef')}@x.example>"}, "address_token"),
    ],
)
def test_signed_token_threads_to_the_ticket(headers: dict[str, str], rule: str) -> None:
    verdict = verdict_of(message(headers))
    assert verdict.kind is Kind.FOLLOW_UP
    assert verdict.ticket_ref == REF
    assert verdict.rules == (rule,)
    assert verdict.may_auto_answer
    assert verdict.category is None


def test_token_in_the_to_address_threads() -> None:
    to = f"renseignements+{make_token(KEY, REF, 'abcdefabcdef')}@mri.gouv.qc.ca"
    verdict = verdict_of(message(to=to))
    assert (verdict.kind, verdict.ticket_ref) == (Kind.FOLLOW_UP, REF)


def test_a_stored_message_id_threads_to_its_ticket() -> None:
    raw = message({"In-Reply-To": "<original@mail.gmail.com>"})
    verdict = verdict_of(raw, known_message_ids={"<original@mail.gmail.com>": REF})
    assert (verdict.kind, verdict.ticket_ref) == (Kind.FOLLOW_UP, REF)
    assert verdict.rules == ("known_message_id",)


@pytest.mark.parametrize(
    "subject",
    [
        "RE : Votre demande MRI-2025-00042",
        "TR : MRI-2025-00042",
        "RÉF : MRI-2025-00042",
        "AW: MRI-2025-00042",
        "Fwd: dossier mri-2025-00042",
    ],
)
def test_subject_ref_from_the_requester_threads(subject: str) -> None:
    verdict = verdict_of(message(subject=subject, sender="<Marie.Tremblay@GMAIL.com>"))
    assert (verdict.kind, verdict.ticket_ref) == (Kind.FOLLOW_UP, REF)
    assert verdict.rules == ("subject_ref_from_requester",)


def test_subject_ref_from_a_stranger_opens_a_new_request() -> None:
    verdict = verdict_of(message(subject="RE : MRI-2025-00042", sender="<curieux@example.org>"))
    assert verdict.kind is Kind.NEW_REQUEST
    assert verdict.ticket_ref is None
    assert verdict.rules == ("subject_ref_from_stranger",)


def test_subject_ref_of_an_unknown_ticket_is_ignored() -> None:
    verdict = verdict_of(message(subject="RE : MRI-2025-09999"))
    assert verdict.kind is Kind.NEW_REQUEST
    assert verdict.rules == ()


def test_forged_token_never_threads() -> None:
    forged = TOKEN_ID.replace("a1b2c3d4e5f6", "a1b2c3d4e5f7")
    verdict = verdict_of(message({"In-Reply-To": forged}))
    assert verdict.kind is Kind.NEW_REQUEST
    assert verdict.rules == ("forged_token",)


def test_token_of_a_ticket_we_do_not_know() -> None:
    unknown = make_message_id(KEY, "MRI-2024-00999", "999999abcdef", DOMAIN)
    verdict = verdict_of(message({"In-Reply-To": unknown}))
    assert verdict.kind is Kind.NEW_REQUEST
    assert verdict.rules == ("unknown_ticket_ref",)


def test_token_signed_with_another_key_is_forged() -> None:
    other = make_message_id(b"another-key", REF, "a1b2c3d4e5f6", DOMAIN)
    verdict = verdict_of(message({"In-Reply-To": other}))
    assert verdict.kind is Kind.NEW_REQUEST
    assert "forged_token" in verdict.rules


def test_several_tickets_prefers_in_reply_to() -> None:
    raw = message({"In-Reply-To": OTHER_TOKEN_ID, "References": f"{TOKEN_ID} {OTHER_TOKEN_ID}"})
    verdict = verdict_of(raw, tickets={**TICKETS, OTHER_REF: replace(TICKETS[REF], ref=OTHER_REF)})
    assert verdict.ticket_ref == OTHER_REF
    assert "several_tickets" in verdict.rules


def test_follow_up_on_a_closed_ticket() -> None:
    verdict = verdict_of(
        message({"In-Reply-To": OTHER_TOKEN_ID}, sender="<john.smith@outlook.com>")
    )
    assert (verdict.kind, verdict.ticket_ref) == (Kind.FOLLOW_UP, OTHER_REF)
    assert verdict.rules == ("thread_token", "ticket_closed")


def test_follow_up_from_someone_else_is_never_answered() -> None:
    verdict = verdict_of(message({"In-Reply-To": TOKEN_ID}, sender="<luc@example.org>"))
    assert (verdict.kind, verdict.ticket_ref) == (Kind.FOLLOW_UP, REF)
    assert verdict.rules == ("thread_token", "sender_not_requester")
    assert not verdict.may_auto_answer


def test_robot_on_a_ticket_keeps_the_ticket() -> None:
    raw = message({"In-Reply-To": TOKEN_ID}, sender="<no-reply@ville.example>")
    verdict = verdict_of(raw)
    assert (verdict.kind, verdict.ticket_ref) == (Kind.ROBOT, REF)


# --- Staff -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sender", [STAFF, "nouvel.agent@mri.gouv.qc.ca", "listed.agent@partenaire.example"]
)
def test_staff_reply_on_a_signed_thread(sender: str) -> None:
    verdict = verdict_of(message({"In-Reply-To": TOKEN_ID}, sender=f"<{sender}>"))
    assert (verdict.kind, verdict.ticket_ref) == (Kind.STAFF_REPLY, REF)
    assert verdict.rules == ("thread_token", "staff_sender")
    assert not verdict.may_auto_answer


def test_staff_domain_must_match_exactly() -> None:
    raw = message({"In-Reply-To": TOKEN_ID}, sender="<agent@mri.gouv.qc.ca.evil.example>")
    assert verdict_of(raw).kind is Kind.FOLLOW_UP


def test_staff_without_a_ticket_is_held_as_a_staff_reply() -> None:
    verdict = verdict_of(message(sender=f"<{STAFF}>"))
    assert (verdict.kind, verdict.ticket_ref) == (Kind.STAFF_REPLY, None)
    assert verdict.rules == ("staff_sender", "staff_without_ticket")
    assert verdict.category is None


@pytest.mark.parametrize(
    ("headers", "subject", "known"),
    [
        ({}, "RE : MRI-2025-00042", {}),
        (
            {"In-Reply-To": "<original@mail.gmail.com>"},
            "Re: question",
            {"<original@mail.gmail.com>": REF},
        ),
    ],
)
def test_staff_needs_a_signed_link(
    headers: dict[str, str], subject: str, known: dict[str, str]
) -> None:
    raw = message(headers, sender=f"<{STAFF}>", subject=subject)
    verdict = verdict_of(raw, known_message_ids=known)
    assert (verdict.kind, verdict.ticket_ref) == (Kind.STAFF_REPLY, None)
    assert "staff_without_ticket" in verdict.rules


# --- Categories --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Plainte", "Bonjour."),
        ("Service", "Je suis très MÉCONTENTE du service."),
        ("Service", "Je suis tres mecontent du service."),
        ("Service", "I wish   to\ncomplain about the service."),
        ("Service", "C’est inacceptable."),
    ],
)
def test_complaint_phrase_in_the_information_mailbox(subject: str, body: str) -> None:
    verdict = verdict_of(message(subject=subject, body=body))
    assert verdict.category == "complaint"
    assert verdict.rules == ("complaint_phrase",)
    assert verdict.reasons[-1].startswith("formulation de plainte")


@pytest.mark.parametrize(
    "body",
    ["Je suis satisfait du service.", "Les plaintes sont rares.", "Complaintive tone, sorry."],
)
def test_complaint_phrases_match_whole_words(body: str) -> None:
    assert verdict_of(message(subject="Service", body=body)).category == "information"


def test_complaint_phrase_beyond_the_first_2000_characters_is_not_read() -> None:
    body = "Bonjour. " + "x " * 1_100 + "Je porte plainte."
    assert verdict_of(message(body=body)).category == "information"


def test_complaint_mailbox_is_never_reclassified() -> None:
    raw = message(to=COMPLAINTS, subject="Candidature de stage", body="Stage à Paris.")
    verdict = verdict_of(
        raw,
        mailbox=mailbox("plaintes", "complaint"),
        available_categories=frozenset({"information", "complaint", "internship"}),
    )
    assert verdict.category == "complaint"
    assert verdict.rules == ()


def test_internship_and_cooperation_only_when_the_queue_exists() -> None:
    stage = message(subject="Candidature de stage", body="Mon CV est joint.")
    coop = message(subject="Appel de projets", body="Projet de coopération au Bénin.")
    assert verdict_of(stage).category == "information"
    assert verdict_of(coop).category == "information"
    queues = frozenset({"information", "complaint", "internship", "cooperation"})
    stage_verdict = verdict_of(stage, available_categories=queues)
    assert (stage_verdict.category, stage_verdict.rules) == ("internship", ("internship_phrase",))
    coop_verdict = verdict_of(coop, available_categories=queues)
    assert (coop_verdict.category, coop_verdict.rules) == ("cooperation", ("cooperation_phrase",))


def test_complaint_wins_over_internship_and_both_are_recorded() -> None:
    raw = message(subject="Plainte", body="Ma candidature de stage a été perdue.")
    queues = frozenset({"information", "complaint", "internship"})
    verdict = verdict_of(raw, available_categories=queues)
    assert verdict.category == "complaint"
    assert verdict.rules == ("complaint_phrase", "internship_phrase")


def test_phrases_come_from_the_settings() -> None:
    rules = ClassificationSettings(complaint_phrases=("pas content",))
    assert verdict_of(message(body="Pas content."), rules=rules).category == "complaint"
    assert verdict_of(message(body="Inacceptable."), rules=rules).category == "information"


def test_category_only_for_new_requests() -> None:
    verdict = verdict_of(message({"In-Reply-To": TOKEN_ID}, subject="Plainte"))
    assert verdict.kind is Kind.FOLLOW_UP
    assert verdict.category is None
    assert "complaint_phrase" not in verdict.rules


# --- Language ----------------------------------------------------------------------------


def test_english_request_is_english() -> None:
    body = "Hello, I would like to know how to get my documents authenticated. Thank you."
    assert verdict_of(message(subject="Question", body=body)).language == "en"


def test_language_defaults_to_french() -> None:
    assert verdict_of(message(subject="", body="")).language == "fr"
    assert verdict_of(message(subject="MRI-2025-00042", body="OK")).language == "fr"


def test_quoted_french_history_does_not_make_an_english_reply_french() -> None:
    body = (
        "Thank you, I will send the missing form by Friday.\n\n"
        "Le lun. 3 nov. 2025 à 10 h 05, Ministère <renseignements@mri.gouv.qc.ca> a écrit :\n"
        "Bonjour, nous avons bien reçu votre demande. Elle porte le numéro MRI-2025-00042.\n"
        "Nous vous répondrons dans les dix jours ouvrables. Merci de votre patience.\n"
    )
    verdict = verdict_of(message({"In-Reply-To": TOKEN_ID}, subject="Re: Accusé", body=body))
    assert verdict.language == "en"


def test_new_text_cuts_at_the_first_quote_header() -> None:
    text = "Merci pour tout.\nÀ bientôt.\n\nOn Mon, Nov 3, 2025 at 10:05 AM X <x@y> wrote:\n> old"
    assert new_text(text) == "Merci pour tout.\nÀ bientôt."
    outlook = "Voici la pièce demandée.\n\nDe : X\nEnvoyé : lundi\nÀ : Y\nObjet : Z\nancien texte"
    assert new_text(outlook) == "Voici la pièce demandée."
    assert new_text("Pas de citation ici.") == "Pas de citation ici."


def test_new_text_keeps_everything_when_the_new_part_is_empty() -> None:
    forwarded = "-----Original Message-----\nFrom: X\nSent: Monday\nHello, I need help."
    assert new_text(forwarded) == forwarded


# --- may_auto_answer across kinds -------------------------------------------------------


def test_only_people_may_be_answered() -> None:
    answered = {
        kind
        for kind, raw in [
            (Kind.NEW_REQUEST, message()),
            (Kind.FOLLOW_UP, message({"In-Reply-To": TOKEN_ID})),
            (Kind.STAFF_REPLY, message({"In-Reply-To": TOKEN_ID}, sender=f"<{STAFF}>")),
            (Kind.AUTO_REPLY, message({"Auto-Submitted": "auto-replied"})),
            (Kind.LIST_MAIL, message({"List-Id": "<l.example>"})),
            (Kind.ROBOT, message(sender="<noreply@x.example>")),
            (Kind.OWN_MAIL, message({LOOP_HEADER: DOMAIN})),
            (Kind.BOUNCE, report("delivery-status", DSN)),
        ]
        if verdict_of(raw).may_auto_answer
    }
    assert answered == {Kind.NEW_REQUEST, Kind.FOLLOW_UP}


def test_every_automatic_rule_blocks_answers() -> None:
    automatic = {rule.name for rule in RULES if rule.signal in AUTOMATIC_SIGNALS}
    assert automatic <= {rule.name for rule in RULES if rule.blocks_answer}
    assert {"unparsable_sender", "sender_not_requester"} <= {
        rule.name for rule in RULES if rule.blocks_answer
    }


# --- Roles per ticket, and replies sent as the queue -------------------------------------------


def test_staff_writing_to_a_queue_they_do_not_work_on_is_a_citizen_there() -> None:
    raw = message(
        sender=f"<{STAFF}>", subject="Plainte", body="Je désire porter plainte à titre personnel."
    )
    complaints = mailbox("plaintes", "complaint").model_copy(update={"staff": ("x@y.ca",)})
    verdict = verdict_of(raw, mailbox=complaints)
    assert (verdict.kind, verdict.category) == (Kind.NEW_REQUEST, "complaint")
    assert verdict.rules == ("staff_sender", "staff_as_citizen")
    assert verdict.may_auto_answer  # acknowledged, with a reference, like anybody


def test_staff_at_the_domain_on_no_queue_is_a_citizen() -> None:
    verdict = verdict_of(message(sender="<nouvel.agent@mri.gouv.qc.ca>"))
    assert verdict.kind is Kind.NEW_REQUEST
    assert "staff_as_citizen" in verdict.rules


def test_staff_following_up_on_their_own_ticket_of_another_queue_is_its_citizen() -> None:
    own = TicketFacts(ref=REF, requester=STAFF, status="answered", workers=frozenset({"x@y.ca"}))
    verdict = verdict_of(
        message({"In-Reply-To": TOKEN_ID}, sender=f"<{STAFF}>"), tickets={REF: own}
    )
    assert (verdict.kind, verdict.ticket_ref) == (Kind.FOLLOW_UP, REF)
    assert "staff_as_citizen" in verdict.rules
    assert "sender_not_requester" not in verdict.rules


def test_staff_requester_who_works_the_ticket_queue_is_staff_on_it() -> None:
    own = TicketFacts(ref=REF, requester=STAFF, status="open", workers=frozenset({STAFF}))
    verdict = verdict_of(
        message({"In-Reply-To": TOKEN_ID}, sender=f"<{STAFF}>"), tickets={REF: own}
    )
    assert (verdict.kind, verdict.ticket_ref) == (Kind.STAFF_REPLY, REF)


def test_staff_replying_on_a_ticket_they_do_not_request_stays_staff_whatever_the_queue() -> None:
    # The authority rule (mailbot/standards/authority.py) then decides; it is never a citizen's.
    raw = message({"In-Reply-To": TOKEN_ID}, sender="<nouvel.agent@mri.gouv.qc.ca>")
    assert verdict_of(raw, mailbox=mailbox("plaintes", "complaint")).kind is Kind.STAFF_REPLY


@pytest.mark.parametrize("message_id", ["<unit.0001@mail.example>", f"<thunderbird-uuid@{DOMAIN}>"])
def test_a_reply_sent_as_the_queue_is_a_staff_reply_never_set_aside(message_id: str) -> None:
    raw = message(
        {"In-Reply-To": TOKEN_ID, "Sender": f"Sophie <{STAFF}>"}, sender=f"Renseignements <{INFO}>"
    ).replace(b"<unit.0001@mail.example>", message_id.encode())
    verdict = verdict_of(raw)
    assert (verdict.kind, verdict.ticket_ref) == (Kind.STAFF_REPLY, REF)
    assert "sent_as_queue" in verdict.rules
    assert "own_address_sender" not in verdict.rules
    assert not verdict.may_auto_answer


def test_a_reply_sent_as_the_queue_without_a_token_is_held_as_staff_without_a_ticket() -> None:
    verdict = verdict_of(message({"Sender": f"<{STAFF}>"}, sender=f"<{INFO}>"))
    assert (verdict.kind, verdict.ticket_ref) == (Kind.STAFF_REPLY, None)
    assert "sent_as_queue" in verdict.rules


@pytest.mark.parametrize(
    "headers",
    [
        {LOOP_HEADER: DOMAIN, "Sender": f"<{STAFF}>"},
        {"X-Mailbot-Purpose": "reply", "In-Reply-To": TOKEN_ID},
    ],
)
def test_our_own_mail_naming_a_sender_or_a_token_is_still_our_own(headers: dict[str, str]) -> None:
    verdict = verdict_of(message(headers, sender=f"<{INFO}>"))
    assert verdict.kind is Kind.OWN_MAIL
    assert "sent_as_queue" not in verdict.rules


def test_a_token_and_another_ticket_in_the_subject_name_several_tickets() -> None:
    raw = message({"In-Reply-To": TOKEN_ID}, sender=f"<{STAFF}>", subject=f"RE: {OTHER_REF}")
    verdict = verdict_of(raw)
    assert verdict.kind is Kind.STAFF_REPLY
    assert "several_tickets" in verdict.rules
    assert verdict.named_tickets == (REF, OTHER_REF)


def test_the_subject_naming_the_same_ticket_as_the_token_is_one_ticket() -> None:
    raw = message({"In-Reply-To": TOKEN_ID}, sender=f"<{STAFF}>", subject=f"RE: [{REF}] Demande")
    verdict = verdict_of(raw)
    assert "several_tickets" not in verdict.rules
    assert verdict.named_tickets == (REF,)
