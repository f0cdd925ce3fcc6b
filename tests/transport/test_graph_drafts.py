"""No draft left behind over Microsoft Graph (mailbot/transport/graph_drafts.py), against the
local Graph: a lost answer to a draft's creation, to its key or to its send, and a draft an
earlier process left, end with the message sent once and Drafts empty."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.db.models import OUTBOX
from mailbot.ops.passes import run_pass
from mailbot.settings import DatabaseSettings, Settings, journal_over_graph
from mailbot.transport import graph_drafts
from mailbot.transport.graph import GraphClient
from mailbot.transport.graph_sender import GraphSender
from tests.conftest import AppFactory
from tests.graph_server import GraphServer
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office
from tests.transport.test_graph import _Tokens, acknowledgements, graph_settings

LEASE = timedelta(minutes=10)


@pytest.fixture
def settings_graph(
    base_settings: Settings, graph: GraphServer, tmp_path: Path, database_url: str
) -> Settings:
    for mailbox in base_settings.mailboxes:
        graph.register(mailbox.address)
    return base_settings.model_copy(
        update={
            "graph": graph_settings(graph),
            "mailboxes": journal_over_graph(base_settings.mailboxes),
            "data_dir": tmp_path / "data",
            "database": DatabaseSettings(url=database_url),
        }
    )


def client_for(graph: GraphServer, **options: object) -> GraphClient:
    if INFO.lower() not in graph.mailboxes:
        graph.register(INFO)
    return GraphClient(graph_settings(graph, **options), _Tokens(graph), lambda: datetime.now(UTC))


def answer(size: int = 0, message_id: str = "<answer-1@mri.gouv.qc.ca>") -> bytes:
    message = EmailMessage()
    message["From"] = INFO
    message["To"] = CITIZEN
    message["Subject"] = "[MRI-2025-00001] Votre demande"
    message["Message-ID"] = message_id
    message["X-Mailbot-Purpose"] = "relay"
    message.set_content("Bonjour,\n\nVoici la réponse.\n")
    if size:
        message.add_attachment(
            b"\x01" * size, maintype="application", subtype="pdf", filename="d.pdf"
        )
    return message.as_bytes()


# A MIME draft with everything (the message fits one request), and a MIME draft without the
# attachment, which follows through an upload session.
SHAPES = pytest.mark.parametrize("size", [0, 3_500_000], ids=["whole", "attachment-after"])


@SHAPES
@pytest.mark.parametrize("rewrite", [False, True], ids=["our-ids", "exchange-ids"])
def test_a_lost_answer_to_a_drafts_creation_leaves_no_draft_and_sends_once(
    graph: GraphServer, size: int, rewrite: bool
) -> None:
    graph.rewrite_message_ids = rewrite
    sender = GraphSender(client_for(graph), frozenset({INFO}))
    graph.fail("POST", r"/users/[^/]+/messages$", "answer_lost")
    first = sender.send_now(CITIZEN, answer(size))
    assert first.outcome == "retry"
    assert graph.faults_hit == 1
    # Found and deleted at once: by our Message-ID, or, where Exchange gave the draft its
    # own, by the key its MIME carries (the PATCH with the key never came).
    assert graph.drafts(INFO) == []
    second = sender.send_now(CITIZEN, answer(size))
    assert second.outcome == "sent", second.error
    assert len(graph.to(CITIZEN)) == 1
    assert graph.drafts(INFO) == []


@SHAPES
def test_a_draft_an_earlier_attempt_left_is_deleted_before_a_new_one(
    graph: GraphServer, size: int
) -> None:
    """The process died after the draft (and its key) and before `send`: here the draft
    is made as mailbot makes it, and left."""
    sender = GraphSender(client_for(graph), frozenset({INFO}))
    client = client_for(graph)
    left = client.call(
        INFO,
        "POST",
        "messages",
        json_body={
            "subject": "[MRI-2025-00001] Votre demande",
            "internetMessageId": "<answer-1@mri.gouv.qc.ca>",
            "singleValueExtendedProperties": graph_drafts.key_property("<answer-1@mri.gouv.qc.ca>"),
        },
    ).json()
    result = sender.send_now(CITIZEN, answer(size))
    assert result.outcome == "sent", result.error
    assert left["id"] not in {m.id for m in graph.drafts(INFO)}
    assert graph.drafts(INFO) == []
    assert len(graph.to(CITIZEN)) == 1


def test_a_lost_answer_to_send_that_did_not_send_deletes_the_draft(graph: GraphServer) -> None:
    graph.fail("POST", r"/send$", "hang")
    graph.hang_seconds = 0.1
    client = client_for(graph, timeout_seconds=2)
    result = GraphSender(client, frozenset({INFO})).send_now(CITIZEN, answer())
    assert result.outcome == "retry"
    assert graph.drafts(INFO) == []
    assert graph.to(CITIZEN) == []
    again = GraphSender(client, frozenset({INFO})).send_now(CITIZEN, answer())
    assert again.outcome == "sent"
    assert len(graph.to(CITIZEN)) == 1


def test_sent_under_a_message_id_exchange_gave_is_found_by_its_key(graph: GraphServer) -> None:
    """Killed between Graph's send and the outbox's record, with a tenant that rewrites
    Message-IDs: Sent Items holds it under Exchange's id; the key says it is this row."""
    graph.rewrite_message_ids = True
    sender = GraphSender(client_for(graph), frozenset({INFO}))
    assert sender.send_now(CITIZEN, answer()).outcome == "sent"
    assert sender.send_now(CITIZEN, answer()).outcome == "sent"
    assert len(graph.to(CITIZEN)) == 1


def test_the_sweep_deletes_only_mailbots_own_drafts_older_than_the_lease(
    graph: GraphServer,
) -> None:
    client = client_for(graph)
    then = datetime(2025, 11, 3, 15, 0, tzinfo=UTC)
    graph.now = lambda: then
    # mailbot's: a JSON draft with its key; a MIME draft whose key never came (its PATCH).
    keyed = client.call(
        INFO,
        "POST",
        "messages",
        json_body={
            "subject": "[MRI-2025-00001] Votre demande",
            "singleValueExtendedProperties": graph_drafts.key_property("<a@mri.gouv.qc.ca>"),
        },
    ).json()
    unkeyed = answer(message_id="<b@mri.gouv.qc.ca>")
    client.call(INFO, "POST", "messages", data=base64.b64encode(unkeyed), content_type="text/plain")
    # A staff member's own draft in the shared mailbox.
    staff = EmailMessage()
    staff["From"] = INFO
    staff["To"] = "quelqu.un@example.org"
    staff["Subject"] = "Brouillon"
    staff.set_content("À finir.")
    client.call(
        INFO, "POST", "messages", data=base64.b64encode(staff.as_bytes()), content_type="text/plain"
    )
    # mailbot's, made just now by a worker that holds its row.
    graph.now = lambda: then + LEASE * 2
    young = answer(message_id="<c@mri.gouv.qc.ca>")
    client.call(INFO, "POST", "messages", data=base64.b64encode(young), content_type="text/plain")
    assert len(graph.drafts(INFO)) == 4
    assert graph_drafts.sweep(client, INFO, then + LEASE / 2, LEASE) == 0
    assert graph_drafts.sweep(client, INFO, then + LEASE * 2, LEASE) == 2
    left = graph.drafts(INFO)
    assert keyed["id"] not in {m.id for m in left}
    assert sorted(m.internet_message_id == "<c@mri.gouv.qc.ca>" for m in left) == [False, True]
    assert [b"Brouillon" in m.raw for m in left].count(True) == 1


def test_a_lost_answer_to_the_drafts_creation_in_a_pass_acknowledges_once(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    graph.fail("POST", r"/users/[^/]+/messages$", "answer_lost")
    app = graph_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    assert graph.faults_hit == 1
    assert graph.drafts(INFO) == []
    # The row whose draft's answer was lost waits its backoff, then goes.
    later = graph_app("2025-11-03T10:30:00-05:00")
    assert run_pass(later).ok
    assert len(acknowledgements(graph)) == 1
    assert graph.drafts(INFO) == []
    with later.engine.connect() as connection:
        states = connection.execute(sa.select(OUTBOX.c.state)).scalars().all()
    assert set(states) == {"sent"}
