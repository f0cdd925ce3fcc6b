"""A staff notice names what it does not show: a calendar invitation, an inline image without
a file name, parts past the depth limit, a defect the parser noted (in-memory servers)."""

from __future__ import annotations

from mailbot.mail.decoding import MAX_DEPTH
from mailbot.mail.parse import parse_message
from mailbot.ops.passes import run_pass
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import AGENT, CITIZEN, INFO, at
from tests.staff.test_staff_work import text_of

HEAD = (
    f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\nSubject: Rencontre\r\n"
    "Message-ID: <inv-1@example.org>\r\nDate: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
    "MIME-Version: 1.0\r\n"
)
CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Rencontre bourses\r\n"
    "DTSTART:20251110T140000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def notice_for(
    raw: bytes, make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> str:
    memory["renseignements"].deliver(raw, at("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = relay.to(AGENT)
    return text_of(notice)


def test_a_calendar_only_invitation_is_named_in_the_notice(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    raw = HEAD + "Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\n" + CALENDAR
    text = notice_for(raw.encode(), make_app, memory, relay)
    assert "invitation de calendrier (text/calendar," in text
    assert "dossier « Traites »" in text


def test_an_inline_image_without_a_name_is_named_in_the_notice(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    raw = (
        HEAD + 'Content-Type: multipart/related; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoir la photo.\r\n"
        "--r\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n"
    )
    text = notice_for(raw.encode(), make_app, memory, relay)
    assert "Voir la photo." in text
    assert "image intégrée sans nom de fichier (image/png, 8 octets)" in text


def test_parts_past_the_depth_limit_and_parser_defects_are_named(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    body = "Content-Type: text/plain; charset=utf-8\r\n\r\nTout au fond.\r\n"
    for level in range(MAX_DEPTH + 2):
        body = (
            f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n'
            f"--b{level}\r\n{body}--b{level}--\r\n"
        )
    raw = (HEAD + body).encode()
    assert any("too deep" in d for d in parse_message(raw).defects)
    text = notice_for(raw, make_app, memory, relay)
    assert "parties imbriquées au-delà de la limite, non lues" in text


def test_a_plain_request_says_nothing_is_left_out(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    raw = HEAD + "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n"
    assert "ne montre pas tout" not in notice_for(raw.encode(), make_app, memory, relay)
