"""What staff acts may do, as specifications (pure tables): the referral's checks and limits,
the person behind a reply sent as the queue, the acts a message counts as, the files a
message carries, the stricter category of a merge, the access trail's details.

The same rules against the real servers: test_referral_truth.py, test_roles_server.py,
test_limits_server.py, test_merge_confidentiality.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from mailbot.mail.parse import files_of, parse_message
from mailbot.sending.sizes import SendLimit, send_limit
from mailbot.settings import GRAPH_CLOUDS, Settings
from mailbot.staff.apply_commands import Refusal
from mailbot.staff.handoff_rules import referral_problem
from mailbot.staff.limits import acts_of
from mailbot.staff.parse_commands import parse_commands
from mailbot.staff.send_as import acting_person, judged
from mailbot.staff.trail import detail_of
from mailbot.tickets.merge import stricter_category
from tests.staff.test_staff_handoff_rules import settings, ticket

INFO = "renseignements@mri.gouv.qc.ca"
AGENT = "agent.info@mri.gouv.qc.ca"

# --- referrals --------------------------------------------------------------------------------


def test_a_ticket_under_legal_hold_is_never_referred() -> None:
    held = ticket(legal_hold_at=datetime(2025, 11, 4, tzinfo=UTC))
    assert referral_problem(settings(), held, "x@autre.example.org", "note") == (
        "refer_legal_hold",
        held.ref,
    )


@pytest.mark.parametrize(
    ("limit", "message", "files", "too_large"),
    [
        (SendLimit(20_000_000, None, "smtp"), 19_999_999, [19_000_000], False),
        (SendLimit(20_000_000, None, "smtp"), 20_000_001, [1], True),
        (SendLimit(None, None, "smtp"), 10**10, [10**9], False),  # no SIZE known: the relay says
        (SendLimit(None, 150 * 2**20, "graph"), 10**9, [150 * 2**20], False),
        (SendLimit(None, 150 * 2**20, "graph"), 10**9, [1, 150 * 2**20 + 1], True),
    ],
)
def test_what_the_transport_takes(
    limit: SendLimit, message: int, files: list[int], too_large: bool
) -> None:
    assert limit.too_large(message, files) is too_large


@pytest.mark.parametrize(
    ("cloud", "largest"),
    [
        ("global", 150_000_000),  # an upload session takes up to 150 MB
        ("us_gov_l5", 2_999_999),  # no upload sessions there: one POST, under 3 MB
    ],
)
def test_graph_announces_its_limit_per_file(
    base_settings: Settings, cloud: str, largest: int
) -> None:
    graph = SimpleNamespace(deployment=GRAPH_CLOUDS[cloud])  # only its deployment is read
    with_graph = base_settings.model_copy(update={"graph": graph})
    found = send_limit(None, with_graph)  # type: ignore[arg-type]  # nothing is read for Graph
    assert (found.max_message_bytes, found.max_file_bytes, found.source) == (
        None,
        largest,
        "graph",
    )


# --- the files a message carries ------------------------------------------------------------

MIXED = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nLe texte.\r\n"
    b"--b\r\nContent-Type: text/html\r\n\r\n<p>Le texte.</p>\r\n"
    b'--b\r\nContent-Type: application/pdf; name="sans-disposition.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
    b"--b\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0=\r\n"
    b'--b\r\nContent-Type: text/plain; name="notes.txt"\r\n'
    b'Content-Disposition: attachment; filename="../../etc/notes.txt"\r\n\r\nnotes\r\n'
    b"--b--\r\n"
)


def test_a_referral_carries_every_file_whole_and_names_none_by_a_path() -> None:
    carried = files_of(MIXED)
    assert carried.complete
    assert [(f.filename, f.content_type, f.payload) for f in carried.files] == [
        ("sans-disposition.pdf", "application/pdf", b"%PDF-"),  # a name, no disposition
        ("piece-2.png", "image/png", b"\x89PNG\r"),  # inline, nameless: named by its type
        (".._.._etc_notes.txt", "text/plain", b"notes"),  # never a path
    ]
    assert "Le texte." in parse_message(MIXED).text  # the text goes in the body, not as a file


# --- replies sent as the queue ----------------------------------------------------------------


def reply(sender_lines: str, from_address: str = INFO) -> bytes:
    return (
        f"From: Renseignements <{from_address}>\r\n{sender_lines}To: {INFO}\r\n"
        "Subject: RE: x\r\nMessage-ID: <r@x.example>\r\n\r\nBonjour\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("sender_lines", "person", "why"),
    [
        (f"Sender: Agente <{AGENT}>\r\n", AGENT, ""),
        ("", None, "without a Sender header"),
        (f"Sender: <{AGENT}>\r\nSender: <autre@mri.gouv.qc.ca>\r\n", None, "2 Sender headers"),
        ("Sender: <evil@example.net>\r\n", None, "another domain"),
        (f"Sender: <{INFO}>\r\n", None, "a mailbox of mailbot's"),
        ("Sender: a@mri.gouv.qc.ca, b@mri.gouv.qc.ca\r\n", None, "does not parse"),
        # An encoded word cannot smuggle a staff address: the raw header is what is read.
        (
            "Sender: =?utf-8?q?agent.info=40mri.gouv.qc.ca?= <evil@example.net>\r\n",
            None,
            "another domain",
        ),
    ],
)
def test_the_person_a_reply_sent_as_the_queue_names(
    sender_lines: str, person: str | None, why: str
) -> None:
    raw = reply(sender_lines)
    named = acting_person(settings(), parse_message(raw), raw)
    assert (named.person.address if named.person else None) == person
    assert why in " ".join(named.reasons)


def test_a_reply_from_a_person_is_read_as_it_is() -> None:
    raw = reply(f"Sender: <{INFO}>\r\n", from_address=AGENT)
    mail, reasons = judged(settings(), parse_message(raw), raw)
    assert (mail.sender.address if mail.sender else None, reasons) == (AGENT, ())


# --- the acts a staff message counts as -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "acts"),
    [
        ("#fermer", ("close",)),
        ("#fermer\n\nMerci, c'est fait.", ("close", "relay")),
        ("La bourse est offerte.", ("relay",)),
        ("#attente : votre formulaire", ("relay",)),
        ("#note\n\nAppel fait.", ()),
        ("#assigner sophie@mri.gouv.qc.ca", ()),
        ("#fusionner MRI-2025-00001\n\nVos deux demandes sont réunies.", ("merge",)),
        ("#référer : a@b.example\n\nPour eux.", ("refer",)),
        ("#libérer agent@mri.gouv.qc.ca\n\nD'accord.", ()),
    ],
)
def test_what_a_staff_message_counts_as(text: str, acts: tuple[str, ...]) -> None:
    assert acts_of(parse_commands(text)) == acts


# --- merges and the access trail --------------------------------------------------------------


@pytest.mark.parametrize(
    ("duplicate", "kept", "category"),
    [
        ("complaint", "information", "complaint"),
        ("information", "complaint", "complaint"),
        ("information", "information", "information"),
        ("internship", "information", "information"),
        ("complaint", "internship", "complaint"),
    ],
)
def test_a_merge_keeps_the_stricter_category(duplicate: str, kept: str, category: str) -> None:
    assert stricter_category(ticket(category=duplicate), ticket(id=2, category=kept)) == category


@pytest.mark.parametrize(
    ("refusal", "detail"),
    [
        (
            Refusal("l", "merge_not_on_queue", "MRI-2025-00001", "merge"),
            "merge_not_on_queue (MRI-2025-00001)",
        ),
        (
            Refusal("l", "refer_own_domain", "collegue@mri.gouv.qc.ca", "refer"),
            "refer_own_domain (@mri.gouv.qc.ca)",
        ),
        (Refusal("l", "not_on_queue", "plaintes"), "not_on_queue (plaintes)"),
        (Refusal("l", "unknown_answer", "Mon texte libre", "canned"), "unknown_answer"),
    ],
)
def test_the_access_trail_keeps_references_never_texts(refusal: Refusal, detail: str) -> None:
    assert detail_of(refusal) == detail
