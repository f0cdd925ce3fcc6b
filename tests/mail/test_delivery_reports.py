"""Delivery reports in every form the corpus holds: how each is recognised, and which
recipients it says failed, for good or for now.

RFC 3464 reports are read field by field (`DeliveryReport`); the other forms (qmail, Exim,
Sendmail...) by flufl.bounce's detectors (`FailureNotice`), only in mail a machine sent.
"""

from __future__ import annotations

import logging

import pytest

from mailbot.intake.classify import classify
from mailbot.intake.verdicts import Kind, Verdict
from mailbot.mail.delivery_reports import NOTICE_SCAN_BYTES
from mailbot.mail.parse import InboundMail, parse_message
from tests.mail.test_corpus import CORPUS, CORPUS_DIR, confusion

OURS = "<mb.MRI-2025-00071.7100abcdef71.atu5zzpnd2n5sl5ihofh@mailbot.mri.gouv.qc.ca>"


def failed(mail: InboundMail) -> tuple[tuple[str, ...], tuple[str, ...], str, bool]:
    """(failed for good, failed for now, status code, permanent?) whichever form the report has."""
    report, notice = mail.delivery_report, mail.failure_notice
    if report is not None:
        recipients = (report.final_recipient,)
        if report.is_permanent_failure:
            return recipients, (), report.status, True
        return (), recipients, report.status, False
    if notice is not None:
        return notice.permanent, notice.temporary, notice.status, notice.is_permanent_failure
    return (), (), "", False


# file, the rule that recognises its form, failed for good, failed for now, status code.
TABLE = [
    ("bounce_postfix_dsn_5_1_1.eml", "delivery_status_report", ("p.roy@hotmail.com",), (), "5.1.1"),
    (
        "bounce_exchange_dsn_fr.eml",
        "delivery_status_report",
        ("john.smith@outlook.com",),
        (),
        "5.1.10",
    ),
    (
        "bounce_exchange_delay_4xx.eml",
        "delivery_status_report",
        (),
        ("d.cote@cssdm.gouv.qc.ca",),
        "4.4.7",
    ),
    (
        "bounce_gmail_dsn_failure.eml",
        "delivery_status_report",
        ("marie.tremblay2@gmail.com",),
        (),
        "5.1.1",
    ),
    (
        "mimekit_delivery_status_no_blank_line.eml",
        "delivery_status_report",
        ("newsletter-request@imusic.com",),
        (),
        "",
    ),
    ("bounce_qmail_failure_notice.eml", "failure_notice", ("k.nguyen@icloud.com",), (), "5.1.1"),
    ("bounce_exim_non_dsn.eml", "failure_notice", ("l.gagnon@videotron.ca",), (), ""),
    (
        "bounce_sendmail_returned_mail.eml",
        "failure_notice",
        ("jdoe@mortimer.example.net",),
        (),
        "5.1.1",
    ),
    # No detector reads this French notice: recognised by its subject, no recipient extracted.
    ("bounce_text_echec_remise_fr.eml", "bounce_subject", (), (), ""),
]


def test_the_table_holds_every_bounce_of_the_corpus() -> None:
    bounces = {name for name, label in CORPUS.labels.items() if label.kind is Kind.BOUNCE}
    assert {row[0] for row in TABLE} == bounces


@pytest.mark.parametrize(
    ("name", "rule", "permanent", "temporary", "status"), TABLE, ids=[row[0] for row in TABLE]
)
def test_each_report_is_recognised_and_names_who_failed(
    name: str, rule: str, permanent: tuple[str, ...], temporary: tuple[str, ...], status: str
) -> None:
    verdict = confusion.classify_file(CORPUS_DIR / name, CORPUS).verdict
    assert verdict.kind is Kind.BOUNCE
    assert rule in verdict.rules
    mail = parse_message((CORPUS_DIR / name).read_bytes())
    assert failed(mail) == (permanent, temporary, status, bool(permanent))


@pytest.mark.parametrize(
    ("name", "returned"),
    [
        ("bounce_qmail_failure_notice.eml", (OURS,)),
        (
            "bounce_exim_non_dsn.eml",
            ("<mb.MRI-2025-00063.63c0ffee1234.jkgiuitlgsmn3xucshcv@mailbot.mri.gouv.qc.ca>",),
        ),
        ("bounce_sendmail_returned_mail.eml", ()),  # returns no copy: it can match nothing
    ],
)
def test_a_notice_names_the_message_it_returns(name: str, returned: tuple[str, ...]) -> None:
    notice = parse_message((CORPUS_DIR / name).read_bytes()).failure_notice
    assert notice is not None and notice.returned_message_ids == returned


def test_no_other_corpus_message_is_read_as_a_failure_notice() -> None:
    for path in CORPUS.files():
        if path.name.startswith("bounce_"):
            continue
        assert parse_message(path.read_bytes()).failure_notice is None, path.name


QMAIL = (CORPUS_DIR / "bounce_qmail_failure_notice.eml").read_bytes()
QMAIL_HEAD, _, QMAIL_BODY = QMAIL.partition(b"\n\n")


def notice(head: bytes, body: bytes = QMAIL_BODY) -> InboundMail:
    return parse_message(head + b"\n\n" + body)


def verdict_of(mail: InboundMail) -> Verdict:
    """`mail` classified as if it had reached the information mailbox of the corpus."""
    label = CORPUS.labels["bounce_qmail_failure_notice.eml"]
    return classify(mail, confusion.context_for(mail, label, CORPUS))


def test_a_person_who_pastes_a_notice_is_not_a_machine() -> None:
    head = (
        b"Return-Path: <k.nguyen@icloud.com>\nFrom: Kim Nguyen <k.nguyen@icloud.com>\n"
        b"To: renseignements@mri.gouv.qc.ca\nSubject: Je ne recois pas vos messages\n"
        b"Message-ID: <kim-1@icloud.com>"
    )
    mail = notice(head, b"Voici ce que j'ai recu :\n\n" + QMAIL_BODY)
    assert mail.failure_notice is None
    assert verdict_of(mail).kind is Kind.NEW_REQUEST


def test_a_notice_from_a_daemon_with_an_unencoded_8bit_name_is_read() -> None:
    head = QMAIL_HEAD.replace(
        b"From: MAILER-DAEMON@mail.icloud-relay.example",
        "From: Système de messagerie <MAILER-DAEMON@mail.icloud-relay.example>".encode(),
    ).replace(b"Return-Path: <>\n", b"")
    found = notice(head).failure_notice
    assert found is not None and found.permanent == ("k.nguyen@icloud.com",)


def test_a_detector_that_breaks_leaves_the_notice_to_the_subject_rule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without any From, one of flufl.bounce's detectors raises before the qmail one runs.
    head = QMAIL_HEAD.replace(b"From: MAILER-DAEMON@mail.icloud-relay.example\n", b"")
    with caplog.at_level(logging.DEBUG):
        mail = notice(head)
    assert mail.failure_notice is None
    assert [record for record in caplog.records if record.name.startswith("flufl")] == []
    verdict = verdict_of(mail)
    assert verdict.kind is Kind.BOUNCE and "bounce_subject" in verdict.rules


def test_a_notice_with_only_transient_codes_stops_nothing() -> None:
    body = QMAIL_BODY.replace(b"(#5.1.1)", b"(#4.2.2)")
    found = notice(QMAIL_HEAD, body).failure_notice
    assert found is not None and found.permanent == ("k.nguyen@icloud.com",)
    assert found.status == "4.2.2" and not found.is_permanent_failure


def test_a_notice_is_read_from_the_head_of_a_long_message() -> None:
    returned_attachment = b"A" * 76 + b"\n"
    body = QMAIL_BODY + returned_attachment * (2 * NOTICE_SCAN_BYTES // 77)
    found = notice(QMAIL_HEAD, body).failure_notice
    assert found is not None and found.permanent == ("k.nguyen@icloud.com",)
    assert found.returned_message_ids == (OURS,)
