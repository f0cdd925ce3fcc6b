"""The notes address as a specification (pure): where it is, which mail it makes a note, and
what becomes of mail sent to it by someone who is not staff.

The same against the real servers: tests/staff/test_notes_server.py.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from mailbot.errors import ConfigError
from mailbot.intake.decide import NOTE_FLAG, Disposition, decide
from mailbot.intake.verdicts import Kind, is_note
from mailbot.mail.parse import parse_message
from mailbot.mail.tokens import make_token
from mailbot.settings import MailboxSettings, default_notes_address, parse_settings
from tests.intake.test_classify import (
    CITIZEN,
    INFO,
    KEY,
    REF,
    STAFF,
    TOKEN_ID,
    message,
    verdict_of,
)
from tests.staff.test_staff_handoff_rules import REPO, settings

NOTES = "renseignements+note@mri.gouv.qc.ca"
NOTES_ADDRESSES = frozenset({NOTES, "plaintes+note@mri.gouv.qc.ca"})
LINK_SUBJECT = f"[{REF}] Note interne : Bourses ({make_token(KEY, REF, 'c4c4d5d5e6e6')})"


def queue(**values: object) -> MailboxSettings:
    return MailboxSettings.model_validate(
        {
            "name": "renseignements",
            "address": "Renseignements@mri.gouv.qc.ca",
            "display_name": "Renseignements",
            "login": "renseignements",
            "password_env": "UNUSED",
            "category": "information",
            "commitments": (),
            **values,
        }
    )


def test_the_notes_address_is_the_queue_address_with_plus_note_by_default() -> None:
    assert queue().notes_address == NOTES
    assert default_notes_address("plaintes@mri.gouv.qc.ca") == "plaintes+note@mri.gouv.qc.ca"
    assert queue(notes_address="Notes.Renseignements@MRI.gouv.qc.ca").notes_address == (
        "notes.renseignements@mri.gouv.qc.ca"
    )


@pytest.mark.parametrize("address", ["renseignements@mri.gouv.qc.ca", "notes", "a@b@c"])
def test_a_notes_address_must_be_one_address_other_than_the_queues(address: str) -> None:
    with pytest.raises(ValueError, match="notes_address"):
        queue(notes_address=address)


def test_a_bad_notes_address_in_the_file_is_a_configuration_error() -> None:
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["mailboxes"][0]["notes_address"] = document["mailboxes"][0]["address"]
    with pytest.raises(ConfigError, match="notes_address"):
        parse_settings(document, base_dir=REPO, environ={})


def test_notes_addresses_are_mailbots_own_never_staff_never_assignable() -> None:
    chosen = settings()
    assert chosen.notes_addresses == NOTES_ADDRESSES
    assert chosen.own_addresses >= NOTES_ADDRESSES
    assert not chosen.is_staff(NOTES)


# --- which mail is a note --------------------------------------------------------------------


def staff_mail(to: str = NOTES, subject: str = LINK_SUBJECT, **headers: str) -> bytes:
    return message(
        headers,
        "Bonjour Madame,\n\nLa bourse est offerte jusqu'au 1er mars.",
        sender=f"Sophie Lavoie <{STAFF}>",
        subject=subject,
        to=to,
    )


@pytest.mark.parametrize(
    ("raw", "rules"),
    [
        # From the note link: the notes address, the token in the subject.
        (staff_mail(), {"notes_address", "subject_token"}),
        # The link's subject, sent to the queue address (or the notes address in Bcc).
        (staff_mail(to=INFO), {"subject_token"}),
        # A reply to a notice, sent to the notes address.
        (staff_mail(subject="RE: Bourses", **{"In-Reply-To": TOKEN_ID}), {"notes_address"}),
        # The notes address seen only by the receiving server (Delivered-To).
        (
            staff_mail(to=INFO, subject="RE: Bourses", **{"In-Reply-To": TOKEN_ID}).replace(
                b"To: ", f"Delivered-To: {NOTES}\nTo: ".encode(), 1
            ),
            {"notes_address"},
        ),
        # A reply to the queue with the notes address in copy: a note, nothing relayed.
        (
            staff_mail(to=INFO, subject="RE: Bourses", **{"In-Reply-To": TOKEN_ID}).replace(
                b"To: ", f"Cc: {NOTES}\nTo: ".encode(), 1
            ),
            {"notes_address"},
        ),
    ],
    ids=[
        "note-link",
        "link-subject-to-queue",
        "reply-to-notes",
        "delivered-to-notes",
        "reply-copied-to-notes",
    ],
)
def test_staff_mail_is_a_note_by_its_address_or_its_links_subject(
    raw: bytes, rules: set[str]
) -> None:
    verdict = verdict_of(raw, notes_addresses=NOTES_ADDRESSES)
    assert verdict.kind is Kind.STAFF_REPLY and verdict.ticket_ref == REF
    assert rules <= set(verdict.rules) and is_note(verdict)
    decision = decide(
        parse_message(raw),
        verdict,
        mailbox="renseignements",
        default_category="information",
        received_at=datetime(2025, 11, 4, 14, tzinfo=UTC),
        ticket_status="open",
    )
    assert decision.disposition is Disposition.ATTACHED and NOTE_FLAG in decision.flags


def test_a_reply_to_a_notice_sent_to_the_queue_is_no_note() -> None:
    raw = staff_mail(to=INFO, subject="RE: Bourses", **{"In-Reply-To": TOKEN_ID})
    verdict = verdict_of(raw, notes_addresses=NOTES_ADDRESSES)
    assert verdict.kind is Kind.STAFF_REPLY and not is_note(verdict)


def test_a_subject_token_links_staff_mail_only() -> None:
    # A citizen who copied a note link's subject reaches no ticket by it.
    raw = message(subject=LINK_SUBJECT)
    verdict = verdict_of(raw, notes_addresses=NOTES_ADDRESSES)
    assert verdict.kind is Kind.FOLLOW_UP  # the reference typed in the subject, by the requester
    assert "subject_token" not in verdict.rules and not is_note(verdict)


def test_a_forged_token_in_the_subject_links_nothing() -> None:
    forged = LINK_SUBJECT.replace("MRI-2025-00042.", "MRI-2025-00057.", 1)
    verdict = verdict_of(staff_mail(subject=forged), notes_addresses=NOTES_ADDRESSES)
    assert verdict.ticket_ref is None and "forged_token" in verdict.rules


@pytest.mark.parametrize("to", [NOTES, f"{INFO}, {NOTES}"])
def test_mail_to_the_notes_address_from_anyone_else_is_held(to: str) -> None:
    raw = message(to=to)
    verdict = verdict_of(raw, notes_addresses=NOTES_ADDRESSES)
    assert verdict.kind is Kind.NEW_REQUEST and not verdict.may_auto_answer
    decision = decide(
        parse_message(raw),
        verdict,
        mailbox="renseignements",
        default_category="information",
        received_at=datetime(2025, 11, 4, 14, tzinfo=UTC),
        ticket_status=None,
    )
    assert decision.disposition is Disposition.HELD and decision.open_ticket is None
    assert "notes address" in decision.reason
    assert CITIZEN not in decision.reason
