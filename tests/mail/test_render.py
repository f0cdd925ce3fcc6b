"""The wire form of composed mail (pure): line lengths, identifiers kept whole, addresses."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbot.mail import mime
from mailbot.mail.mime import fold
from mailbot.mail.render import Envelope, Rendered, compose
from tests.intake.test_spine import parsed

LONG_ID = "<CAKx" + "a" * 90 + "@mail.gmail.com>"
OUR_ID = "<mb.MRI-2025-00001.1529cf4a6c97.e27bnwlqc4x7afkusix4@mri.gouv.qc.ca>"


def composed(**envelope: object) -> bytes:
    values: dict[str, object] = {
        "from_address": "renseignements@mri.gouv.qc.ca",
        "from_name": "Renseignements - MRIF",
        "to_address": "josee.tremblay@example.org",
        "message_id": OUR_ID,
        "date": datetime(2025, 11, 3, 15, 1, tzinfo=UTC),
        **envelope,
    }
    rendered = Rendered(
        subject="Accusé de réception de votre demande au sujet des bourses d'études "
        "[MRI-2025-00001]",
        text="Nous avons bien reçu votre demande le lundi 3 novembre 2025. " * 4 + "\n",
        html="<p>Nous avons bien reçu votre demande.</p>",
    )
    return compose(
        Envelope(**values),  # type: ignore[arg-type]
        rendered,
        auto_submitted="auto-replied",
        loop_token="mri.gouv.qc.ca",
    )


def header_lines(raw: bytes) -> list[str]:
    return raw.partition(b"\r\n\r\n")[0].decode("ascii").split("\r\n")


def test_body_and_header_lines_stay_within_76_characters() -> None:
    raw = composed()
    long_lines = [line for line in raw.split(b"\r\n") if len(line) > 76]
    assert long_lines == [f"Message-ID: {OUR_ID}".encode()]  # one unbreakable token
    message = parsed(raw)
    assert "lundi 3 novembre 2025. Nous avons" in str(
        message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    )
    assert str(message["Subject"]).endswith("bourses d'études [MRI-2025-00001]")


def test_identifiers_are_never_folded_inside_or_before_one_nor_encoded() -> None:
    raw = composed(in_reply_to=LONG_ID, references=("<root@example.org>", LONG_ID, "<a@b.ca>"))
    lines = header_lines(raw)
    assert f"Message-ID: {OUR_ID}" in lines
    assert f"In-Reply-To: {LONG_ID}" in lines
    start = lines.index("References: <root@example.org>")
    assert lines[start + 1 : start + 3] == [f" {LONG_ID}", " <a@b.ca>"]
    message = parsed(raw)
    assert message["In-Reply-To"] == LONG_ID
    assert str(message["References"]).split() == ["<root@example.org>", LONG_ID, "<a@b.ca>"]


def test_an_identifier_that_is_not_ascii_is_left_out_rather_than_encoded() -> None:
    raw = composed(in_reply_to="<été@example.org>", references=("<été@example.org>", "<a@b.ca>"))
    message = parsed(raw)
    assert message["In-Reply-To"] is None
    assert message["References"] == "<a@b.ca>"
    assert b"=?" not in b"".join(line.encode() for line in header_lines(raw) if "Ref" in line)


def test_identifiers_are_packed_per_line() -> None:
    ids = " ".join(f"<id-{n}-xxxxxxxxxx@example.org>" for n in range(5))
    folded = fold("References", ids.split())
    assert folded == (
        "References: <id-0-xxxxxxxxxx@example.org> <id-1-xxxxxxxxxx@example.org>\r\n"
        " <id-2-xxxxxxxxxx@example.org> <id-3-xxxxxxxxxx@example.org>\r\n"
        " <id-4-xxxxxxxxxx@example.org>\r\n"
    )


def test_a_recipient_without_a_name_is_written_in_angle_brackets() -> None:
    lines = header_lines(composed())
    assert "To: <josee.tremblay@example.org>" in lines
    named = header_lines(composed(to_name="Josée Tremblay"))
    assert "To: =?utf-8?q?Jos=C3=A9e?= Tremblay <josee.tremblay@example.org>" in named


def test_content_language_survives_setting_the_body() -> None:
    assert parsed(composed())["Content-Language"] == "fr"


def test_a_word_that_looks_like_an_encoded_word_is_never_decoded_as_one() -> None:
    for utf8 in (False, True):  # ASCII headers, and UTF-8 ones under SMTPUTF8
        header = mime.unstructured("Subject", "Re: =?utf-8?q?Pay=C3=A9?= été", utf8=utf8)
        assert "=?utf-8?q?Pay=C3=A9?=" not in header
        message = parsed((header + "\r\n").encode())
        assert str(message["Subject"]) == "Re: =?utf-8?q?Pay=C3=A9?= été"


def test_a_display_name_with_quotes_specials_or_accents_reads_back_whole() -> None:
    names = ['Roy, Marie "Mimi" (bureau)', "Zoë <x@evil.example>", "Back\\slash; J."]
    for name in names:
        raw = (mime.address("To", "m@example.org", name) + "\r\n").encode()
        [address] = parsed(raw)["To"].addresses
        assert (address.display_name, address.addr_spec) == (name, "m@example.org")


def test_a_long_subject_outside_ascii_folds_within_76_and_reads_back_exactly() -> None:
    subject = "Demande d'accès à l'information « très urgente » " * 6 + "[MRI-2025-00001]"
    header = mime.unstructured("Subject", subject)
    assert all(len(line) <= 76 for line in header.split("\r\n"))
    assert str(parsed((header + "\r\n").encode())["Subject"]) == subject
