"""Erasure and access requests reach everywhere mailbot put a person's mail, against the real
servers: their tickets, the rows of no ticket (automatic replies, list mail), and the copies
in the processed and quarantine folders of the mailboxes mailbot manages."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mailbot.app import App
from mailbot.ops.passes import run_pass
from mailbot.privacy.erasure import erase_requester
from mailbot.privacy.export import export_requester, write_messages_zip
from mailbot.privacy.retention import run_retention
from mailbot.sandbox.servers import Sandbox, maildir_for
from mailbot.settings import Settings
from tests.conftest import AppFactory
from tests.intake.test_spine import COMPLAINTS, INFO, office
from tests.privacy.test_retention import traces

AGENT = "agent.info@mri.gouv.qc.ca"
ZOE = "Zoe.Pelletier@Example.ORG"  # written as she writes it; mailbot stores it lower-cased
ZOE_STORED = "zoe.pelletier@example.org"
ZOE_WORDS = (
    "Pelletier",
    "zircon-mot-unique",
    "Ma demande Zircon",
    "absente-zircon",
    "liste-zircon",
)
CONTROL = "yann.lemieux@example.org"
CONTROL_WORDS = ("Lemieux", "quartz-mot-unique")


def message(sender: str, name: str, subject: str, body: str, message_id: str, *extra: str) -> bytes:
    return (
        f"From: {name} <{sender}>\r\nTo: {INFO}\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nDate: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
        + "".join(f"{header}\r\n" for header in extra)
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def deliver_everything(sandbox: Sandbox, make_app: AppFactory) -> App:
    at = office("2025-11-03T10:00")
    sandbox.deliver(
        INFO,
        message(ZOE, "Zoé Pelletier", "Ma demande Zircon", "Bonjour zircon-mot-unique.", "<z1@x>"),
        received_at=at,
    )
    # An automatic reply and list mail from her: no ticket.
    sandbox.deliver(
        INFO,
        message(
            ZOE,
            "Zoé Pelletier",
            "Absence",
            "Je suis absente-zircon jusqu'au 10.",
            "<z2@x>",
            "Auto-Submitted: auto-replied",
        ),
        received_at=at,
    )
    sandbox.deliver(
        INFO,
        message(
            ZOE,
            "Zoé Pelletier",
            "[liste] Nouvelles",
            "Message de la liste-zircon.",
            "<z3@x>",
            "List-Id: <nouvelles.example.org>",
            "Precedence: list",
        ),
        received_at=at,
    )
    sandbox.deliver(
        INFO,
        message(CONTROL, "Yann Lemieux", "Question", "Bonjour quartz-mot-unique.", "<y1@x>"),
        received_at=at,
    )
    app = make_app("2025-11-03T10:01:00-05:00")
    report = run_pass(app)
    assert report.ok, report.summary()
    return app


def mailstore_bytes(sandbox: Sandbox) -> bytes:
    """Every file of the mailboxes mailbot manages (messages, Dovecot's indexes and caches)."""
    found = []
    for address in (INFO, COMPLAINTS):
        root = maildir_for(sandbox.root, address).parent
        found += [path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()]
    return b"\n".join(found).lower()


def database_bytes(settings: Settings) -> bytes:
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    paths = [database, *(database.with_name(database.name + end) for end in ("-wal", "-journal"))]
    return b"".join(path.read_bytes() for path in paths if path.exists()).lower()


def test_erase_leaves_no_byte_of_the_person_in_the_database_or_the_mail_store(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    app = deliver_everything(sandbox, make_app)
    everything = (ZOE_STORED, *ZOE_WORDS)
    before = mailstore_bytes(sandbox)
    assert all(word.lower().encode() in before for word in everything)  # the search finds them

    # Her access request first: the messages of no ticket are in it.
    export = export_requester(app.engine, ZOE)
    assert export["requester"] == ZOE_STORED
    assert len(export["tickets"]) == 1
    texts = " ".join(m["text"] for m in export["messages_without_ticket"])
    assert "absente-zircon" in texts and "liste-zircon" in texts
    assert "quartz" not in texts
    archive = tmp_path / "zoe.zip"
    write_messages_zip(app.engine, ZOE, export, archive)
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        assert {m["file"] for m in export["messages_without_ticket"]} <= names
        assert b"absente-zircon" in opened.read("sans-dossier/received-001.eml")

    later = make_app("2025-11-04T10:00:00-05:00")
    report = erase_requester(later, ZOE, "demande 2025-090", "responsable-acces")

    # three fetched copies (processed, quarantine) and two Sent copies mailbot appended
    assert report.copies_deleted == 5 and report.unlinked == 2
    leftover = traces(later.engine, everything)
    assert leftover == {}, leftover
    after = mailstore_bytes(sandbox)
    assert [word for word in everything if word.lower().encode() in after] == []
    assert all(word.lower().encode() in after for word in (CONTROL, *CONTROL_WORDS))
    assert traces(later.engine, (CONTROL, *CONTROL_WORDS)) != {}
    if later.engine.dialect.name == "sqlite":
        later.engine.dispose()
        app.engine.dispose()
        contents = database_bytes(settings)
        assert [word for word in everything if word.lower().encode() in contents] == []
        assert CONTROL.encode() in contents  # the same search finds what is there
    # Staff notices sit in staff mailboxes, which mailbot does not manage (the README says so).
    assert any(b"zircon-mot-unique" in raw for raw in sandbox.fetch_all(AGENT))


def test_the_schedule_deletes_the_folder_copies_of_what_it_empties(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    deliver_everything(sandbox, make_app)
    a_year_later = make_app("2026-11-05T10:00:00-05:00")  # past unlinked_days (365)

    report = run_retention(a_year_later, trigger="manual", actor="archiviste")

    # Her two messages of no ticket in the processed folder, and the copy in Sent of that
    # morning's digest (mail of no ticket too, emptied with them).
    assert report.unlinked >= 3 and report.copies_deleted == 3
    sent = sandbox.fetch_all(INFO, "Sent")
    assert sent and not [raw for raw in sent if b"X-Mailbot-Purpose: digest" in raw]
    after = mailstore_bytes(sandbox)
    assert b"absente-zircon" not in after and b"liste-zircon" not in after
    assert b"zircon-mot-unique" in after  # her open ticket's request is kept
