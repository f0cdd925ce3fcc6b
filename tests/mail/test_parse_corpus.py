"""parse_message on every corpus file, and on damaged copies of them: never raises, and
everything it returns is safe to put in a header or a log line."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from mailbot.mail.decoding import MAX_HEADER_CHARS, MAX_TEXT_CHARS
from mailbot.mail.parse import InboundMail, parse_message

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
FILES = tuple(sorted(CORPUS_DIR.glob("*.eml")))
IDS = [path.name for path in FILES]
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
ADDRESS = re.compile(r"[^@\s<>()\[\]\\,;:\"]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


def parse(name: str) -> InboundMail:
    return parse_message((CORPUS_DIR / name).read_bytes())


def strings(value: object) -> list[str]:
    """Every str inside a parsed message (dataclasses and tuples, recursively)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple):
        return [text for item in value for text in strings(item)]
    if is_dataclass(value) and not isinstance(value, type):
        return [text for item in fields(value) for text in strings(getattr(value, item.name))]
    return []


def assert_safe(mail: InboundMail) -> None:
    for name, value in mail.headers:
        assert name == name.lower()
        assert "\r" not in value and "\n" not in value, name
        assert len(value) <= MAX_HEADER_CHARS
    for value in (mail.subject, mail.message_id, *mail.in_reply_to, *mail.references):
        assert "\r" not in value and "\n" not in value
    for address in (mail.sender, *mail.to, *mail.cc, *mail.reply_to):
        if address is not None:
            assert ADDRESS.fullmatch(address.address), address
            assert "\r" not in address.display_name and "\n" not in address.display_name
    for item in (mail.message_id, *mail.in_reply_to, *mail.references):
        assert item == "" or MESSAGE_ID.fullmatch(item), item
    for name, value in mail.headers:
        assert "\x00" not in value, name
    for text in strings(mail):
        text.encode("utf-8")  # no lone surrogates escape the parser
    assert len(mail.text) <= MAX_TEXT_CHARS and len(mail.html) <= MAX_TEXT_CHARS


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_parses_safely(path: Path) -> None:
    assert_safe(parse_message(path.read_bytes()))


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_damaged_copies_parse_safely(path: Path) -> None:
    raw = path.read_bytes()
    cuts = {len(raw) * share // 7 for share in range(1, 7)}
    variants = [raw[:cut] for cut in cuts]
    variants.append(raw.replace(b"\n", b"\r"))  # old Mac line ends
    variants.append(raw.replace(b"--", b"-"))  # every boundary broken
    variants.append(bytes(byte | 0x80 if byte == 0x65 else byte for byte in raw))  # 8-bit noise
    for variant in variants:
        assert_safe(parse_message(variant))


def test_corpus_mixes_line_endings() -> None:
    crlf = [path for path in FILES if b"\r\n" in path.read_bytes()]
    assert 0 < len(crlf) < len(FILES)


def test_raw_utf8_headers_are_decoded() -> None:
    mail = parse("malformed_8bit_utf8_headers.eml")
    assert mail.subject == "Délégation du Québec à Tokyo — heures d'ouverture"
    assert mail.sender is not None and mail.sender.display_name == "Hélène Côté"


def test_raw_latin1_headers_and_body_without_charset_are_decoded() -> None:
    mail = parse("malformed_8bit_latin1_headers.eml")
    assert mail.subject == "Plainte concernant l'accueil au bureau de Québec"
    assert "reçu à vos bureaux de Québec" in mail.text
    assert "\ufffd" not in mail.text


@pytest.mark.parametrize("wire", ["utf-8", "cp1252"])
def test_encoded_words_beside_raw_8bit_text_keep_every_accent(wire: str) -> None:
    header = "Subject: Réponse =?utf-8?q?d=C3=A9j=C3=A0?= =?utf-8?q?_re=C3=A7ue?=, merci à vous"

    mail = parse_message(f"{header}\r\nFrom: <a@example.org>\r\n\r\nx\r\n".encode(wire))

    assert mail.subject == "Réponse déjà reçue, merci à vous"


def test_a_character_split_across_encoded_words_beside_raw_text_is_whole() -> None:
    header = "Subject: Voilà =?utf-8?q?d=C3?= =?utf-8?q?=A9j=C3=A0?= fin"

    mail = parse_message(f"{header}\r\nFrom: <a@example.org>\r\n\r\nx\r\n".encode())

    assert mail.subject == "Voilà déjà fin"


def test_unknown_charset_decodes_with_replacement() -> None:
    mail = parse("malformed_unknown_charset.eml")
    assert mail.subject.startswith("Demande d'information sur les s")
    assert "je voudrais savoir si le minist" in mail.text


def test_cp1252_html_only_message_gives_text() -> None:
    mail = parse("fr_outlook_html_only_cp1252.eml")
    assert mail.content_type == "text/html"
    assert "délégation du Sénégal" in mail.text
    assert mail.sender is not None and mail.sender.display_name == "Jean-François Bélanger"


def test_broken_boundary_keeps_the_words() -> None:
    mail = parse("malformed_broken_boundary.eml")
    assert "documentation sur les programmes" in mail.text
    assert "multipart body without usable boundaries; kept as plain text" in mail.defects


def test_missing_from_message_id_and_bad_date() -> None:
    assert parse("malformed_missing_from.eml").sender is None
    assert parse("malformed_missing_message_id.eml").message_id == ""
    assert parse("malformed_bad_date.eml").date is None
    assert parse("fr_gmail_new_request.eml").date is not None


def test_deep_nesting_is_capped() -> None:
    mail = parse("malformed_deep_nesting.eml")
    assert "MIME nesting too deep; inner parts were ignored" in mail.defects


def test_nesting_that_exhausts_the_parser_keeps_the_headers() -> None:
    mail = parse("malformed_recursion_bomb.eml")
    assert mail.subject == "Bonjour"
    assert mail.message_id == "<recursion.bomb@nested.example>"
    assert "MIME nesting too deep to parse; the body is kept as raw text" in mail.defects


def test_header_injection_is_flattened_and_a_broken_encoded_word_does_not_raise() -> None:
    mail = parse("malformed_header_injection.eml")
    assert "\r" not in mail.subject and "\n" not in mail.subject
    assert mail.header("bcc") is None


def test_lenient_from_is_no_sender() -> None:
    mail = parse("malformed_cve_2023_27043_from.eml")
    assert mail.sender is None
    assert "From header could not be parsed strictly" in mail.defects


def test_display_name_that_looks_like_an_address_is_only_a_name() -> None:
    mail = parse("fr_display_name_spoof_staff.eml")
    assert mail.sender is not None
    assert mail.sender.address == "s.lavoie.mri@gmail.com"


def test_null_sender_forms() -> None:
    assert parse("bounce_postfix_dsn_5_1_1.eml").return_path == ""
    assert parse("bounce_sendmail_returned_mail.eml").sender is None
    assert parse("fr_gmail_new_request.eml").return_path == "marie.tremblay@gmail.com"


@pytest.mark.parametrize(
    ("name", "report_type", "action", "status"),
    [
        ("bounce_postfix_dsn_5_1_1.eml", "delivery-status", "failed", "5.1.1"),
        ("bounce_exchange_dsn_fr.eml", "delivery-status", "failed", "5.1.10"),
        ("bounce_exchange_delay_4xx.eml", "delivery-status", "delayed", "4.4.7"),
        ("bounce_gmail_dsn_failure.eml", "delivery-status", "failed", "5.1.1"),
        ("mimekit_delivery_status_no_blank_line.eml", "delivery-status", "failed", ""),
        ("read_receipt_outlook_fr.eml", "disposition-notification", "", ""),
        ("feedback_report_arf_hotmail.eml", "feedback-report", "", ""),
    ],
)
def test_delivery_reports(name: str, report_type: str, action: str, status: str) -> None:
    report = parse(name).delivery_report
    assert report is not None
    assert (report.report_type, report.action, report.status) == (report_type, action, status)


def test_bounce_names_the_original_message() -> None:
    report = parse("bounce_postfix_dsn_5_1_1.eml").delivery_report
    assert report is not None
    assert report.final_recipient == "p.roy@hotmail.com"
    assert report.original_message_id.startswith("<mb.MRI-2025-00088.")
    assert report.is_permanent_failure
    delay = parse("bounce_exchange_delay_4xx.eml").delivery_report
    assert delay is not None and not delay.is_permanent_failure
