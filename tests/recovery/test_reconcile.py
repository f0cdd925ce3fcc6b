"""Reconciliation with the mail store, without servers: the database lost, the processed and
Sent folders bring back every ticket under the reference its citizen was told, and nothing
is sent again."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from mailbot.app import App
from mailbot.ops.passes import run_pass
from mailbot.privacy.ledger_entry import split
from mailbot.recovery.reconcile import reconcile, store_ahead
from mailbot.settings import DatabaseSettings, RetentionSettings, Settings
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import AGENT, INFO, at, request
from tests.privacy.test_retention import staff_reply

CITIZENS = ("ana@example.org", "bob@example.org", "carl@example.org")


def refs(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        found = connection.execute(sa.text("SELECT requester, ref FROM ticket"))
        return {requester: ref for requester, ref in found}


def statuses(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT ref, status FROM ticket")).all())


def notice_of(relay: RecordingSender, ref: str) -> bytes:
    [notice] = [raw for raw in relay.to(AGENT) if f"[{ref}] Nouvelle".encode() in raw]
    return notice


def handle_mail(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender, custom: Settings
) -> dict[str, str]:
    """Two requests; then a third, and a staff answer to the first; the references given."""
    box = memory["renseignements"]
    for n, citizen in enumerate(CITIZENS[:2]):
        box.deliver(request(f"<req-{n}@example.org>", sender=citizen), at(f"2025-11-03T10:0{n}"))
    run_pass(make_app("2025-11-03T10:05:00-05:00", custom))
    # Arrived earlier than it reached the inbox (a slow relay): replayed in arrival order,
    # it comes first, yet keeps the reference it was given.
    box.deliver(request("<req-2@example.org>", sender=CITIZENS[2]), at("2025-11-03T09:30"))
    told = refs(make_app("2025-11-03T11:00:00-05:00", custom))
    notice = notice_of(relay, told[CITIZENS[0]])
    box.deliver(
        staff_reply(notice, "Voici la réponse.", AGENT, INFO, "<answer-1@mri.gouv.qc.ca>"),
        at("2025-11-03T11:01"),
    )
    app = make_app("2025-11-03T11:05:00-05:00", custom)
    run_pass(app)
    return refs(app)


def elsewhere(settings: Settings, tmp_path: Path, name: str) -> Settings:
    url = f"sqlite:///{tmp_path / name / 'mailbot.db'}"
    return settings.model_copy(update={"database": DatabaseSettings(url=url)})


def test_an_empty_database_is_rebuilt_from_the_mail_store_and_nothing_is_sent_again(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    told = handle_mail(make_app, memory, relay, fast_settings)
    answered = told[CITIZENS[0]]
    sent = list(relay.sent)
    assert len(relay.to(CITIZENS[0])) == 2  # the acknowledgement and the answer
    empty = make_app("2025-11-03T12:00:00-05:00", elsewhere(fast_settings, tmp_path, "new"))
    assert store_ahead(empty) == ["renseignements/Traites", "renseignements/Sent"]

    report = reconcile(empty)

    assert report.ok and report.replayed == 4, report.summary()
    assert refs(empty) == told
    assert statuses(empty)[answered] == "answered"
    assert store_ahead(empty) == []
    run_pass(empty)
    assert relay.sent == sent  # no second acknowledgement, answer or notice
    memory["renseignements"].deliver(
        request("<req-9@example.org>", sender="dora@example.org"), at("2025-11-03T12:01")
    )
    run_pass(make_app("2025-11-03T12:05:00-05:00", elsewhere(fast_settings, tmp_path, "new")))
    new = refs(empty)["dora@example.org"]
    assert new not in told.values() and new == "MRI-2025-00004"
    # Running it again changes nothing.
    again = reconcile(empty)
    assert again.replayed == 0 and len(refs(empty)) == 4


def test_a_reference_nobody_was_told_goes_past_every_reference_seen() -> None:
    assert split("MRI-2025-00042") == ("MRI", 2025, 42)
    assert split("A-B-2026-00001") == ("A-B", 2026, 1)
    assert split("nonsense") is None


def test_mail_retention_emptied_long_before_the_newest_is_not_brought_back(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
) -> None:
    short = fast_settings.model_copy(
        update={
            "retention": RetentionSettings(
                raw_days=30, anonymise_days=30, unlinked_days=30, enabled=False
            )
        }
    )
    box = memory["renseignements"]
    box.deliver(request("<old@example.org>", sender=CITIZENS[0]), at("2025-09-01T10:00"))
    run_pass(make_app("2025-09-01T10:05:00-04:00", short))
    box.deliver(request("<new@example.org>", sender=CITIZENS[1]), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:05:00-05:00", short)
    run_pass(app)
    # Retention anonymised the old ticket: its message's identifiers are gone.
    with app.engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE inbound_message SET sha256 = '', message_id = '', raw = x'' "
                "WHERE internal_date < '2025-10-01'"
            )
        )
    sent = len(relay.sent)

    report = reconcile(app)

    assert report.ok and report.replayed == 0, report.summary()
    assert store_ahead(app) == []
    run_pass(make_app("2025-11-03T10:10:00-05:00", short))
    assert len(relay.sent) == sent and len(refs(app)) == 2
