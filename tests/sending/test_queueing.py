"""Which configured mailbox a queued message is sent from, read back from its From header."""

from __future__ import annotations

import pytest

from mailbot.sending.queueing import sending_mailbox
from mailbot.settings import Settings


@pytest.mark.parametrize(
    ("from_line", "mailbox"),
    [
        (b"From: Plaintes - MRIF <plaintes@mri.gouv.qc.ca>", "plaintes"),
        (b"From: PLAINTES@MRI.GOUV.QC.CA", "plaintes"),
        (b"From: Renseignements <renseignements@mri.gouv.qc.ca>", "renseignements"),
        # Not one of ours, or no From at all: the first configured mailbox.
        (b"From: someone@example.org", "renseignements"),
        (b"Subject: sans expediteur", "renseignements"),
    ],
)
def test_the_sending_mailbox_is_the_one_whose_address_the_message_is_from(
    base_settings: Settings, from_line: bytes, mailbox: str
) -> None:
    raw = from_line + b"\r\nMessage-ID: <1@mailbot.example>\r\n\r\nCorps du message\r\n"
    assert sending_mailbox(base_settings, raw).name == mailbox
