"""`mailbot check`'s own round-trip message is no part of the service: wherever a copy of it is
(a Sent folder, the processed folder), the start-up check and `mailbot reconcile` pass over
it, over IMAP as over Graph."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbot.recovery.reconcile import reconcile, store_ahead
from mailbot.settings import Settings
from mailbot.transport.graph_check import round_trip_message
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes


def test_copies_of_checks_round_trip_are_not_taken_for_unknown_mail(
    make_app: AppFactory, fast_settings: Settings, memory: MemoryMailboxes
) -> None:
    info = fast_settings.mailbox("renseignements")
    check = round_trip_message(info, "mri.gouv.qc.ca", "0123456789ab").as_bytes()
    box = memory["renseignements"]
    at = datetime(2025, 11, 3, 14, 0, tzinfo=UTC)
    box.deliver(check, at, info.sent_folder)
    box.deliver(check, at, info.processed_folder)
    app = make_app("2025-11-03T10:05:00-05:00")
    assert store_ahead(app) == []
    report = reconcile(app)
    assert report.ok and report.replayed == 0 and report.sent_only == 0, report.summary()
