"""The erasure ledger, on the in-memory mail store: a reference once given is never given
again, even after an erasure deleted every copy that carried it and the database was lost; an
erasure stays erased after a restore of an older backup (not one byte of the person left in
the database's files) and after a rebuild; the notices about a held message go with it.

The tests that take the test database (`database_url`) run on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.db import backup
from mailbot.ops.passes import run_pass
from mailbot.privacy.erasure import erase_requester
from mailbot.privacy.ledger import read_ledger, start_new_database
from mailbot.privacy.ledger_entry import (
    LedgerEntry,
    ReadEntry,
    address_hash,
    entry_text,
    read_entry,
)
from mailbot.privacy.retention import run_retention
from mailbot.recovery.reconcile import reconcile
from mailbot.settings import DatabaseSettings, RetentionSettings, Settings
from tests.conftest import AppFactory, fresh_database
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import at, request
from tests.privacy.test_retention import traces
from tests.recovery.test_backup import restore_here

ANA, BOB, ZOE, DORA = (f"{name}@example.org" for name in ("ana", "bob", "zoe", "dora"))
ZOE_WORDS = ("Zoé Pelletier", "zircon-mot-unique", "Ma demande Zircon", "absente-zircon")
CONTROL = "quartz-mot-unique"  # Bob's words: still there, and the search finds them
KEY = b"test-signing-key-0123456789abcdef"


def refs(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        found = connection.execute(sa.text("SELECT requester, ref FROM ticket ORDER BY ref"))
        return {requester: ref for requester, ref in found}


def on(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"database": DatabaseSettings(url=url)})


@pytest.fixture
def chosen(fast_settings: Settings, database_url: str) -> Settings:
    """The in-memory servers, on the test database (SQLite, or PostgreSQL in the db run)."""
    return on(fast_settings, database_url)


@contextmanager
def lost_and_new(tmp_path: Path) -> Iterator[str]:
    """The database is lost: a new, empty one (of the same kind) in its place."""
    with fresh_database(tmp_path / "new" / "mailbot.db") as url:
        yield url


def zoe(subject: str, body: str, message_id: str, *extra: str, sender: str = ZOE) -> bytes:
    return (
        f"From: Zoé Pelletier <{sender}>\r\nTo: renseignements@mri.gouv.qc.ca\r\n"
        f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n"
        + "".join(f"{line}\r\n" for line in extra)
        + "Date: Mon, 3 Nov 2025 09:58:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def three_requests(
    make_app: AppFactory, memory: MemoryMailboxes, custom: Settings, now: str = "2025-11-03"
) -> App:
    box = memory["renseignements"]
    box.deliver(request("<a@example.org>", sender=ANA), at(f"{now}T10:00"))
    box.deliver(
        request("<b@example.org>", sender=BOB, body=f"Bonjour {CONTROL}."), at(f"{now}T10:01")
    )
    box.deliver(
        zoe("Ma demande Zircon", "Bonjour zircon-mot-unique.", "<z@example.org>"),
        at(f"{now}T10:02"),
    )
    app = make_app(f"{now}T10:05:00-05:00", custom)
    assert run_pass(app).ok
    return app


def store_bytes(memory: MemoryMailboxes, *, ledger: bool = False) -> bytes:
    """Every message of every folder of the in-memory mail store (the ledger's on demand)."""
    return b"\n".join(
        raw
        for box in memory.boxes.values()
        for name, folder in box.folders.items()
        if ledger or name != "Registre-mailbot"
        for raw, _at in folder.values()
    )


def test_an_entry_reads_back_signed_and_a_changed_or_foreign_one_is_not_trusted() -> None:
    entry = LedgerEntry(
        entry="e1",
        instance="i1",
        at=datetime(2025, 11, 4, 15, tzinfo=UTC),
        kind="erase",
        run="r1",
        trigger="erase",
        actor="responsable acces",
        high_water=(("MRI", 2025, 42), ("MRI", 2026, 3)),
        addresses=(address_hash(KEY, ZOE),),
        refs=("MRI-2025-00042",),
        messages=tuple(f"{n:032x}" for n in range(13)),  # wrapped over three lines
        sent=("<mb-internal.1@mri.gouv.qc.ca>",),
        counts=(0, 1, 2),
    )
    text = entry_text(entry, KEY)

    assert read_entry("Registre...\r\n\r\n" + text.replace("\n", "\r\n"), KEY) == ReadEntry(
        entry, True
    )
    assert "zoe" not in text.lower() and max(len(line) for line in text.splitlines()) < 240
    changed = read_entry(text.replace("MRI-2025-00042", "MRI-2025-00041"), KEY)
    assert changed is not None and not changed.verified
    foreign = read_entry(text, b"another instance's key 0123456789")
    assert foreign is not None and not foreign.verified
    assert read_entry("Bonjour, rien ici.", KEY) is None


def test_after_an_erasure_and_the_loss_of_the_database_no_reference_is_given_twice(
    make_app: AppFactory,
    chosen: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    app = three_requests(make_app, memory, chosen)
    told = refs(app)
    assert told[ZOE] == "MRI-2025-00003"  # the highest: only her mail carried it

    erased = erase_requester(
        make_app("2025-11-04T10:00:00-05:00", chosen), ZOE, "demande 2025-090", "responsable"
    )

    assert erased.anonymised == ["MRI-2025-00003"]
    assert b"MRI-2025-00003" not in store_bytes(memory)  # every copy that said it is gone
    with lost_and_new(tmp_path) as url:
        new = on(chosen, url)
        rebuilt = reconcile(make_app("2025-11-04T11:00:00-05:00", new))
        assert rebuilt.ok, rebuilt.summary()
        assert "references continue after MRI-2025-00003" in rebuilt.summary()
        memory["renseignements"].deliver(
            request("<d@example.org>", sender=DORA), at("2025-11-04T11:01")
        )
        # A second instance on the same (new) database answers her.
        later = make_app("2025-11-04T11:05:00-05:00", new)
        run_pass(later)

        assert refs(later) == {ANA: told[ANA], BOB: told[BOB], DORA: "MRI-2025-00004"}
        assert len(relay.to(DORA)) == 1


def test_a_new_database_starts_above_the_ledger_when_every_ticket_was_erased(
    make_app: AppFactory, chosen: Settings, memory: MemoryMailboxes, tmp_path: Path
) -> None:
    app = three_requests(make_app, memory, chosen)
    for citizen in (ANA, BOB, ZOE):
        erase_requester(make_app("2025-11-04T10:00:00-05:00", chosen), citizen, "d", "resp")
    assert b"MRI-2025-" not in store_bytes(memory)
    with app.engine.connect() as connection:
        ours = connection.execute(
            sa.text("SELECT value FROM service_meta WHERE key = 'instance_id'")
        ).scalar_one()

    with lost_and_new(tmp_path) as url:
        new = make_app("2025-11-04T11:00:00-05:00", on(chosen, url))
        assert start_new_database(new, []) == ["MRI-2025-00003"]
        memory["renseignements"].deliver(
            request("<d@example.org>", sender=DORA), at("2025-11-04T11:01")
        )
        run_pass(make_app("2025-11-04T11:05:00-05:00", on(chosen, url)))

        assert refs(new) == {DORA: "MRI-2025-00004"}
        with new.engine.connect() as connection:
            adopted = connection.execute(
                sa.text("SELECT value FROM service_meta WHERE key = 'instance_id'")
            ).scalar_one()
        assert adopted == ours  # the same instance, rebuilt


def held_mail_from_zoe(memory: MemoryMailboxes, relay: RecordingSender) -> None:
    """Her out-of-office (no ticket), a message with two senders (held, no ticket: staff get
    a notice quoting its subject), and a reply of hers to Ana's acknowledgement (held on
    Ana's ticket: someone other than its requester)."""
    box = memory["renseignements"]
    box.deliver(
        zoe(
            "Absence", "Je suis absente-zircon.", "<z2@example.org>", "Auto-Submitted: auto-replied"
        ),
        at("2025-11-03T11:00"),
    )
    box.deliver(
        zoe(
            "Zircon encore",
            "Deux expéditeurs.",
            "<z3@example.org>",
            sender=f"{ZOE}>, Autre <autre@example.com",
        ),
        at("2025-11-03T11:01"),
    )
    [ack] = relay.to(ANA)
    ack_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in ack.split(b"\r\n")
        if line.lower().startswith(b"message-id:")
    )
    box.deliver(
        zoe(
            "Re: Zircon pour Ana",
            "Je réponds à la place d'Ana, zircon-mot-unique.",
            "<z4@example.org>",
            f"In-Reply-To: {ack_id}",
        ),
        at("2025-11-03T11:02"),
    )


def purposes_of_rows(app: App) -> list[tuple[str, str, int]]:
    with app.engine.connect() as connection:
        found = connection.execute(
            sa.text("SELECT purpose, state, length(raw) FROM outbox ORDER BY id")
        )
        return [(str(p), str(s), int(n)) for p, s, n in found]


def test_erasure_takes_the_held_message_notices_and_a_rebuild_does_not_bring_them_back(
    make_app: AppFactory,
    chosen: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    three_requests(make_app, memory, chosen)
    held_mail_from_zoe(memory, relay)
    app = make_app("2025-11-03T11:05:00-05:00", chosen)
    assert run_pass(app).ok
    notices = [sent.raw for sent in relay.sent if b"X-Mailbot-Purpose: held_notice" in sent.raw]
    assert len(notices) == 2 and all(b"Zircon" in raw for raw in notices)
    assert b"Zircon encore" in store_bytes(memory)  # the notice's copy in Sent
    everything = (ZOE, *ZOE_WORDS, "Zircon encore", "Zircon pour Ana")
    assert traces(app.engine, everything)  # the search finds her

    erase_requester(make_app("2025-11-04T10:00:00-05:00", chosen), ZOE, "d 90", "resp")

    assert traces(app.engine, everything) == {}
    assert traces(app.engine, (CONTROL, ANA)) != {}
    left = store_bytes(memory).lower()
    assert [w for w in everything if w.lower().encode() in left] == []
    assert CONTROL.encode() in left
    with lost_and_new(tmp_path) as url:
        new = make_app("2025-11-04T11:00:00-05:00", on(chosen, url))
        rebuilt = reconcile(new)
        assert rebuilt.ok, rebuilt.summary()
        assert traces(new.engine, everything) == {}
        assert set(refs(new)) == {ANA, BOB}
        assert traces(new.engine, (CONTROL,)) != {}


def database_files(settings: Settings) -> bytes:
    database = backup.sqlite_path(settings.database_url)
    return b"".join(
        path.read_bytes().lower()
        for path in (
            database,
            *(database.with_name(database.name + s) for s in ("-wal", "-journal")),
        )
        if path.exists()
    )


def test_a_backup_older_than_an_erasure_is_restored_without_the_person(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    three_requests(make_app, memory, fast_settings)
    held_mail_from_zoe(memory, relay)
    app = make_app("2025-11-03T11:05:00-05:00")
    run_pass(app)
    night = tmp_path / "night.db"
    backup.take_backup(fast_settings.database_url, night, app.clock.now())
    erase_requester(make_app("2025-11-04T10:00:00-05:00"), ZOE, "demande 2025-090", "resp")
    everything = (ZOE, *ZOE_WORDS, "Zircon encore", "Zircon pour Ana")
    app.engine.dispose()

    done = restore_here(
        fast_settings, memory, relay, night, "2025-11-04T12:00:00-05:00", force=True
    )
    said = "\n".join(done.lines())
    after = make_app("2025-11-04T12:05:00-05:00")
    assert run_pass(after).ok  # the first pass reconciles
    after.engine.dispose()

    assert "ledger: 1 erasure(s) re-applied (of 1 on record)" in said, said
    files = database_files(fast_settings)
    assert CONTROL.encode() in files  # the search finds what is there
    assert [word for word in everything if word.lower().encode() in files] == []
    history = make_app("2025-11-04T12:10:00-05:00")
    with history.engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT trigger, refs FROM retention_run")).all()
    assert ("erase", "anonymised:MRI-2025-00003") in [tuple(run) for run in runs]


def test_anonymisation_by_the_schedule_stays_done_after_a_restore_and_in_the_history(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    short = fast_settings.model_copy(
        update={"retention": RetentionSettings(raw_days=10, anonymise_days=10, unlinked_days=10)}
    )
    three_requests(make_app, memory, short)
    app = make_app("2025-11-03T12:00:00-05:00", short)
    with app.engine.begin() as connection:  # every ticket closed that day
        connection.execute(
            sa.text("UPDATE ticket SET status = 'closed', closed_at = :at"),
            {"at": datetime(2025, 11, 3, 17, tzinfo=UTC)},
        )
    night = tmp_path / "night.db"
    backup.take_backup(short.database_url, night, app.clock.now())
    report = run_retention(make_app("2025-11-20T10:00:00-05:00", short), trigger="cli", actor="a")
    assert len(report.anonymised) == 3
    entries = read_ledger(make_app("2025-11-20T10:01:00-05:00", short))
    assert "anonymise" in [e.kind for e in entries.verified]
    app.engine.dispose()

    done = restore_here(short, memory, relay, night, "2025-11-20T11:00:00-05:00", force=True)

    assert done.prepared.ledger is not None and done.prepared.ledger.tickets == 3
    after = make_app("2025-11-20T11:05:00-05:00", short)
    assert set(refs(after)) == {"anonymised"}
    assert traces(after.engine, (CONTROL, ZOE)) == {}
    with after.engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT trigger, anonymised FROM retention_run")).all()
    assert ("cli", 3) in [tuple(run) for run in runs]


def test_a_new_database_whose_ledger_cannot_be_read_takes_no_mail_and_says_which_mailbox(
    make_app: AppFactory,
    chosen: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mailbot.errors import ImapError
    from tests.fakes import MemoryMailbox

    reads = MemoryMailbox.read_folder

    def ledger_unreadable(box: MemoryMailbox, folder: str, max_bytes: int) -> list[Any]:
        if folder == "Registre-mailbot" and box is memory["plaintes"]:
            raise ImapError("IMAP: connection reset")
        return reads(box, folder, max_bytes)

    monkeypatch.setattr(MemoryMailbox, "read_folder", ledger_unreadable)
    memory["renseignements"].deliver(request("<a@example.org>", sender=ANA), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:05:00-05:00", chosen)

    report = run_pass(app)

    assert not report.ok and report.errors == ["imap:plaintes"]
    assert refs(app) == {} and relay.sent == []
    assert (
        "mailbox plaintes: the erasure ledger (Registre-mailbot) could not be read" in caplog.text
    )
    monkeypatch.setattr(MemoryMailbox, "read_folder", reads)
    assert run_pass(make_app("2025-11-03T10:10:00-05:00", chosen)).ok
    assert refs(app) == {ANA: "MRI-2025-00001"}
