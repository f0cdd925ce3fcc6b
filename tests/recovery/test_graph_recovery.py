"""Nothing lost even when the database is, over Microsoft Graph (tests/graph_server.py): the
processed folder and Sent Items, where Graph keeps the copy of every draft it sends, are the
journal. With the database gone, `mailbot run --once` refuses and names `mailbot reconcile`,
which brings back every ticket under the reference its citizen was told, without sending
anything again; the next request gets a reference never given. SQLite, or PostgreSQL with
MAILBOT_TEST_POSTGRES_URL set."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.cli import EXIT_BEHIND
from mailbot.ops.passes import run_pass
from mailbot.privacy.erasure import erase_requester
from mailbot.recovery.reconcile import reconcile, store_ahead
from mailbot.settings import DatabaseSettings, Settings, journal_over_graph, parse_settings
from mailbot.transport.graph_mailbox import GraphMailbox
from tests.conftest import REPO, AppFactory, fresh_database
from tests.graph_server import GraphServer
from tests.intake.test_spine import INFO, citizen_request, office, parsed
from tests.staff.test_staff_server import AGENT, staff_reply
from tests.transport.test_graph import graph_settings
from tests.transport.test_graph_process import mailbot, write_graph_config

ANA, BOB, CARL, DORA = (f"{name}@example.org" for name in ("ana", "bob", "carl", "dora"))
SUPERVISOR = "superviseur@mri.gouv.qc.ca"


@pytest.fixture
def settings_graph(
    base_settings: Settings, graph: GraphServer, tmp_path: Path, database_url: str
) -> Settings:
    for mailbox in base_settings.mailboxes:
        graph.register(mailbox.address)
    return base_settings.model_copy(
        update={
            "graph": graph_settings(graph, page_size=2),  # listings in several pages
            "mailboxes": journal_over_graph(base_settings.mailboxes),
            "data_dir": tmp_path / "data",
            "database": DatabaseSettings(url=database_url),
        }
    )


def refs(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        found = connection.execute(sa.text("SELECT requester, ref FROM ticket"))
        return {requester: ref for requester, ref in found}


def status_of(app: App, ref: str) -> str:
    with app.engine.connect() as connection:
        return str(
            connection.execute(
                sa.text("SELECT status FROM ticket WHERE ref = :ref"), {"ref": ref}
            ).scalar_one()
        )


def mail_received(graph: GraphServer) -> dict[str, int]:
    return {who: len(graph.to(who)) for who in (ANA, BOB, CARL, AGENT, SUPERVISOR)}


def acknowledged(graph: GraphServer, who: str) -> list[str]:
    """The references `who` was given in acknowledgements."""
    return [
        str(parsed(raw)["Subject"])
        for raw in graph.to(who)
        if parsed(raw)["Auto-Submitted"] == "auto-replied"
    ]


def handle_and_answer(graph: GraphServer, graph_app: AppFactory) -> dict[str, str]:
    """Three requests (the third arrived before the second pass's: a slow relay), each
    acknowledged, and a staff answer to the first, relayed: the references each was told."""
    for n, citizen in enumerate((ANA, BOB)):
        graph.deliver(
            INFO,
            citizen_request(f"<req-{n}@example.org>", sender=citizen),
            at=office(f"2025-11-03T10:0{n}"),
        )
    run_pass(graph_app("2025-11-03T10:05:00-05:00"))
    graph.deliver(
        INFO, citizen_request("<req-2@example.org>", sender=CARL), at=office("2025-11-03T09:30")
    )
    app = graph_app("2025-11-03T11:00:00-05:00")
    assert run_pass(app).ok
    told = refs(app)
    [notice] = [
        raw
        for raw in graph.to(AGENT)
        if str(parsed(raw)["Subject"]).startswith(f"[{told[ANA]}] Nouvelle")
    ]
    answer = staff_reply(notice, "Bonjour,\r\n\r\nVoici la réponse.", message_id="<answer-1@x>")
    graph.deliver(INFO, answer, at=office("2025-11-03T11:01"))
    app = graph_app("2025-11-03T11:05:00-05:00")
    assert run_pass(app).ok
    assert status_of(app, told[ANA]) == "answered"
    return told


def test_sent_items_keeps_every_message_sent_and_reads_back_in_pages(
    graph: GraphServer, graph_app: AppFactory, settings_graph: Settings
) -> None:
    handle_and_answer(graph, graph_app)
    app = graph_app("2025-11-03T12:00:00-05:00")
    info = settings_graph.mailboxes[0]
    assert info.sent_copy == "server" and info.sent_folder == "Sent Items"
    sent = graph.folder(INFO, "Sent Items")
    with app.open_mailbox(info, app.clock.now()) as box:
        assert isinstance(box, GraphMailbox)
        read = box.read_folder("Sent Items", 1 << 20)
        heads = box.recent_heads("sentitems", 2)
        since = box.message_ids_in("Sent Items", office("2025-11-03T11:00"))
        processed = box.read_folder(info.processed_folder, 1 << 20)
        assert box.read_folder("Nowhere", 1 << 20) == []
    # 3 acknowledgements, 3 notices, the supervisor's digest, the answer: in pages of 2.
    purposes = sorted(str(parsed(m.raw)["X-Mailbot-Purpose"]) for m in read)
    assert purposes == ["acknowledgement"] * 3 + ["digest"] + ["notice"] * 3 + ["reply"]
    assert len(read) == len(sent) == 8
    assert sorted(m.raw for m in read) == sorted(sent)
    assert [m.internal_date for m in read] == sorted(m.internal_date for m in read)
    assert len({m.uid for m in read}) == 8
    newest_two = sorted((m.internal_date for m in read), reverse=True)[:2]
    assert [when for when, _head in heads] == newest_two
    assert all(b"X-Mailbot-Purpose" in head and head[-4:] == b"\r\n\r\n" for _w, head in heads)
    newest = {
        str(parsed(m.raw)["Message-ID"]).strip()
        for m in read
        if m.internal_date >= office("2025-11-03T11:00")
    }
    assert since == newest and since
    assert {str(parsed(m.raw)["Message-ID"]).strip() for m in processed} >= {
        f"<req-{n}@example.org>" for n in range(3)
    }
    assert graph.count("GET", r"/mailFolders/[^/]+/messages$") >= 4  # paged


@pytest.mark.server  # runs mailbot as a separate process
@pytest.mark.parametrize("rewrite", [False, True], ids=["our-ids", "exchange-rewrites-ids"])
def test_with_the_database_lost_reconcile_rebuilds_it_from_graph(
    graph: GraphServer,
    graph_app: AppFactory,
    settings_graph: Settings,
    tmp_path: Path,
    rewrite: bool,
) -> None:
    graph.rewrite_message_ids = rewrite
    told = handle_and_answer(graph, graph_app)
    before = mail_received(graph)
    assert before[ANA] == 2 and before[BOB] == before[CARL] == 1  # acks, and ANA's answer
    with fresh_database(tmp_path / "new" / "mailbot.db") as url:
        empty = settings_graph.model_copy(update={"database": DatabaseSettings(url=url)})
        config = write_graph_config(
            tmp_path / "mailbot.toml", graph, tmp_path / "new", database={"url": url}
        )
        at = ["--now", "2025-11-03T12:00:00-05:00"]

        refused = mailbot(config, graph, *at, "run", "--once")
        done = mailbot(config, graph, *at, "reconcile")

        assert refused.returncode == EXIT_BEHIND, refused.stderr
        assert "mailbot reconcile" in refused.stderr
        assert done.returncode == 0, done.stderr
        assert "4 message(s) brought back" in done.stdout, done.stdout
        assert "0 still to send" in done.stdout
        app = graph_app("2025-11-03T12:00:00-05:00", empty)
        assert store_ahead(app) == []
        assert run_pass(app).ok
        assert refs(app) == told
        assert status_of(app, told[ANA]) == "answered"
        assert mail_received(graph) == before  # nothing sent again, no second notice
        for citizen in (ANA, BOB, CARL):
            [subject] = acknowledged(graph, citizen)
            assert told[citizen] in subject
        graph.deliver(
            INFO, citizen_request("<req-9@example.org>", sender=DORA), at=office("2025-11-03T12:01")
        )
        assert run_pass(graph_app("2025-11-03T12:05:00-05:00", empty)).ok
        assert refs(app)[DORA] == "MRI-2025-00004"
        assert len(graph.to(DORA)) == 1
        assert reconcile(app).replayed == 0  # again: nothing to bring back
        app.engine.dispose()


def test_graph_makes_the_journal_the_servers(tmp_path: Path) -> None:
    """Under [graph] nothing is appended: Graph keeps the copy in Sent Items itself, so
    "append" means "server" there, in Sent Items; "none" stays none."""
    with GraphServer() as server:
        config = write_graph_config(tmp_path / "mailbot.toml", server, tmp_path / "data")
    document = tomllib.loads(config.read_text())
    document["mailboxes"][1]["sent_copy"] = "none"
    assert document["mailboxes"][0]["sent_copy"] == "append"
    settings = parse_settings(document, base_dir=REPO, environ={})
    assert [(m.sent_copy, m.sent_folder) for m in settings.mailboxes] == [
        ("server", "Sent Items"),
        ("none", "Sent"),
    ]


def test_a_database_that_knows_everything_is_not_behind_when_exchange_rewrites_message_ids(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    """Sent Items holds our mail under the Message-IDs Exchange gave it: the database knows
    them (as aliases of ours), so the start-up check finds nothing ahead."""
    graph.rewrite_message_ids = True
    handle_and_answer(graph, graph_app)
    sent = [str(parsed(raw)["Message-ID"]) for raw in graph.folder(INFO, "Sent Items")]
    assert sent and all("OUTLOOK.COM" in message_id for message_id in sent)
    assert store_ahead(graph_app("2025-11-03T12:00:00-05:00")) == []


@pytest.mark.server  # runs mailbot as a separate process
@pytest.mark.parametrize("rewrite", [False, True], ids=["our-ids", "exchange-rewrites-ids"])
def test_over_graph_an_erasure_stays_erased_and_its_reference_is_never_given_again(
    graph: GraphServer,
    graph_app: AppFactory,
    settings_graph: Settings,
    tmp_path: Path,
    rewrite: bool,
) -> None:
    """The erasure's ledger entry is kept as an item of a folder of each mailbox over Graph;
    with the database lost, `mailbot reconcile` reads it: Carl's ticket, whose copies in Sent
    Items Graph keeps out of mailbot's reach, is not brought back, and his reference is
    never given again."""
    graph.rewrite_message_ids = rewrite
    told = handle_and_answer(graph, graph_app)
    assert told[CARL] == "MRI-2025-00003"
    erase_requester(graph_app("2025-11-03T11:30:00-05:00"), CARL, "demande 7", "responsable")
    [entry] = graph.folder(INFO, "Registre-mailbot")
    assert b"mailbot-ledger: 1" in entry and CARL.encode() not in entry.lower()
    assert any(CARL.encode() in raw for raw in graph.folder(INFO, "Sent Items"))  # kept there
    with fresh_database(tmp_path / "new" / "mailbot.db") as url:
        empty = settings_graph.model_copy(update={"database": DatabaseSettings(url=url)})
        config = write_graph_config(
            tmp_path / "mailbot.toml", graph, tmp_path / "new", database={"url": url}
        )

        done = mailbot(config, graph, "--now", "2025-11-03T12:00:00-05:00", "reconcile")

        assert done.returncode == 0, done.stderr
        assert "ledger: 0 erasure(s) re-applied (of 1 on record)" in done.stdout, done.stdout
        assert "references continue after MRI-2025-00003" in done.stdout
        app = graph_app("2025-11-03T12:00:00-05:00", empty)
        assert refs(app) == {ANA: told[ANA], BOB: told[BOB]}
        with app.engine.connect() as connection:
            outbox = connection.execute(sa.text("SELECT raw, recipient FROM outbox")).all()
        assert all(
            CARL.encode() not in bytes(raw) and recipient != CARL for raw, recipient in outbox
        )
        graph.deliver(
            INFO, citizen_request("<req-9@example.org>", sender=DORA), at=office("2025-11-03T12:01")
        )
        assert run_pass(graph_app("2025-11-03T12:05:00-05:00", empty)).ok
        assert refs(app)[DORA] == "MRI-2025-00004"
        app.engine.dispose()
