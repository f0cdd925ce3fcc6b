"""Attachments of every size over Microsoft Graph, against the local Graph (tests/graph_server.py),
which enforces what Microsoft documents: a POSTed attachment under 3 MB, an upload session
from 3 MB to 150 MB, every request under 4 MB. Each file reaches the citizen whole, whether
Microsoft's MB is 10^6 or 2^20 bytes, and no draft is left behind."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.app import App
from mailbot.ops.passes import run_pass
from mailbot.settings import DatabaseSettings, Settings, journal_over_graph
from mailbot.transport.base import SendResult
from mailbot.transport.graph import GraphClient
from mailbot.transport.graph_limits import REQUEST_LIMIT, byte_ranges
from mailbot.transport.graph_sender import GraphSender
from tests.conftest import AppFactory
from tests.graph_server import TENANT, GraphServer
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed
from tests.staff.test_exchange_staff import INSIDE
from tests.staff.test_staff_server import AGENT, staff_reply
from tests.transport.test_graph import _Tokens, graph_settings

MB, MIB = 1_000_000, 1024 * 1024


def contents(size: int, seed: int = 0) -> bytes:
    """`size` bytes that compress badly, the same for the same seed."""
    return random.Random(size * 31 + seed).randbytes(size)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def answer_with(
    files: list[tuple[str, bytes]],
    message_id: str = "<answer-1@mri.gouv.qc.ca>",
    answering: str = "",
) -> bytes:
    message = EmailMessage()
    message["From"] = INFO
    message["To"] = CITIZEN
    message["Subject"] = "[MRI-2025-00001] Votre demande"
    message["Message-ID"] = message_id
    if answering:
        message["In-Reply-To"] = answering
        message["References"] = answering
    message["X-Mailbot-Purpose"] = "relay"
    message.set_content("Bonjour,\n\nVoici les documents demandés.\n")
    for name, data in files:
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return message.as_bytes()


def files_received(raw: bytes) -> dict[str, str]:
    return {
        str(part.get_filename()): digest(bytes(part.get_payload(decode=True)))
        for part in parsed(raw).iter_attachments()
    }


def sender_for(graph: GraphServer, **options: object) -> GraphSender:
    graph.register(INFO)
    client = GraphClient(
        graph_settings(graph, **options), _Tokens(graph), lambda: datetime.now(UTC)
    )
    return GraphSender(client, frozenset({INFO}))


@pytest.fixture(params=[MB, MIB], ids=["MB-is-10^6", "MB-is-2^20"])
def megabyte(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def assert_within_graphs_limits(graph: GraphServer) -> None:
    assert max(size for _method, _path, size in graph.sizes) <= REQUEST_LIMIT
    assert graph.drafts(INFO) == []


@pytest.mark.parametrize(
    "size",
    [1 * MB, 2_500_000, 2_900_000, 2_999_999, 3 * MB, 3_100_000, 3_145_500, 3 * MIB, 10 * MB],
)
def test_an_attachment_of_any_size_reaches_the_citizen_whole(
    graph: GraphServer, megabyte: int, size: int
) -> None:
    graph.megabyte = megabyte
    document = contents(size)
    result = sender_for(graph).send_now(CITIZEN, answer_with([("piece.pdf", document)]))
    assert result == SendResult("sent"), result.error
    [raw] = graph.to(CITIZEN)
    assert files_received(raw) == {"piece.pdf": digest(document)}
    assert_within_graphs_limits(graph)
    # Each file the way Microsoft documents for its size: never an upload session under
    # Graph's 3 MB, never a POST of 3 MB or more.
    uploads = graph.count("POST", r"/createUploadSession$")
    posts = graph.count("POST", r"/attachments$")
    if size < 3 * megabyte and posts:
        assert graph.count("PUT", r"/upload/") == 0
    if size >= 3 * megabyte:
        assert uploads == 1 and posts == 0


@pytest.mark.parametrize("size", [100_000, 3_500_000, 10 * MB], ids=["whole", "3.5MB", "10MB"])
def test_an_answer_threads_as_a_reply_whatever_the_size_of_its_attachments(
    graph: GraphServer, size: int
) -> None:
    """A message too large for one request goes as a MIME draft without its attachments,
    which follow one by one: it keeps its Message-ID, In-Reply-To and References, so the
    citizen's client shows it in the conversation, like a small one."""
    request_id = "<demande-1@example.org>"
    document = contents(size)
    raw_answer = answer_with([("piece.pdf", document)], answering=request_id)
    result = sender_for(graph).send_now(CITIZEN, raw_answer)
    assert result == SendResult("sent"), result.error
    [raw] = graph.to(CITIZEN)
    received = parsed(raw)
    assert str(received["Message-ID"]) == "<answer-1@mri.gouv.qc.ca>"
    assert str(received["In-Reply-To"]) == request_id
    assert str(received["References"]) == request_id
    body = received.get_body(("plain",))
    assert body is not None and "Voici les documents demandés." in body.get_content()
    assert files_received(raw) == {"piece.pdf": digest(document)}
    assert_within_graphs_limits(graph)


def test_a_throttled_upload_chunk_is_sent_again_after_the_wait(graph: GraphServer) -> None:
    graph.throttle_uploads(1, 503, "0")
    graph.throttle_uploads(1, 429, "0")
    client = GraphClient(graph_settings(graph), _Tokens(graph), lambda: datetime.now(UTC))
    document = contents(10 * MB)
    graph.register(INFO)
    sender = GraphSender(client, frozenset({INFO}))
    assert sender.send_now(CITIZEN, answer_with([("piece.pdf", document)])) == SendResult("sent")
    [raw] = graph.to(CITIZEN)
    assert files_received(raw) == {"piece.pdf": digest(document)}
    assert graph.throttled_answers == 2
    assert client.counters.throttled == 2
    puts = [path for method, path, _size in graph.sizes if method == "PUT"]
    assert len(puts) == len(byte_ranges(10 * MB)) + 2  # each chunk once, two of them twice


def test_many_small_files_adding_up_to_more_than_4_mb_each_go_whole(
    graph: GraphServer, megabyte: int
) -> None:
    graph.megabyte = megabyte
    documents = {f"annexe-{n:02d}.pdf": contents(400_000, seed=n) for n in range(12)}
    result = sender_for(graph).send_now(CITIZEN, answer_with(list(documents.items())))
    assert result == SendResult("sent"), result.error
    [raw] = graph.to(CITIZEN)
    assert files_received(raw) == {name: digest(data) for name, data in documents.items()}
    assert_within_graphs_limits(graph)
    assert graph.count("POST", r"/attachments$") == 12
    assert graph.count("POST", r"/createUploadSession$") == 0


def test_without_upload_sessions_a_file_of_3_mb_or_more_fails_plainly(
    graph: GraphServer,
) -> None:
    """US Government L4 and L5 offer no upload sessions: such a message fails before any
    draft is made, saying why; a smaller file still goes by POST."""
    graph.offers_upload_sessions = False
    graph.offers_permanent_delete = False
    sender = sender_for(graph, cloud="us_gov_l4")
    big = answer_with([("grand.pdf", contents(3 * MIB))], "<big@mri.gouv.qc.ca>")
    result = sender.send_now(CITIZEN, big)
    assert result.outcome == "failed"
    assert "no upload sessions" in result.error and "US Government L4" in result.error
    assert graph.count("POST", r"/messages$") == 0
    small = contents(3_100_000)
    sent = sender.send_now(CITIZEN, answer_with([("petit.pdf", small)], "<small@mri.gouv.qc.ca>"))
    assert sent.outcome == "sent", sent.error
    [raw] = graph.to(CITIZEN)
    assert files_received(raw) == {"petit.pdf": digest(small)}
    assert_within_graphs_limits(graph)


# --- a staff answer relayed, through the whole pass -----------------------------------------


@pytest.fixture
def settings_graph(
    base_settings: Settings, graph: GraphServer, tmp_path: Path, database_url: str
) -> Settings:
    for mailbox in base_settings.mailboxes:
        graph.register(mailbox.address)
    organisation = base_settings.organisation.model_copy(
        update={"staff_authentication": "exchange_online", "tenant_id": TENANT}
    )
    return base_settings.model_copy(
        update={
            "graph": graph_settings(graph),
            "organisation": organisation,
            "mailboxes": journal_over_graph(base_settings.mailboxes),
            "data_dir": tmp_path / "data",
            "database": DatabaseSettings(url=database_url),
        }
    )


def staff_answer_with(notice: bytes, files: dict[str, bytes]) -> bytes:
    reply = parsed(staff_reply(notice, "Bonjour Madame,\r\n\r\nVoici les documents.", auth=INSIDE))
    for name, data in files.items():
        reply.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return reply.as_bytes()


def relayed_files(graph: GraphServer) -> list[dict[str, str]]:
    answers = [raw for raw in graph.to(CITIZEN) if parsed(raw)["Auto-Submitted"] != "auto-replied"]
    return [files_received(raw) for raw in answers]


@pytest.mark.parametrize(
    "sizes",
    [[1 * MB], [2_500_000], [2_900_000], [3 * MB], [3_100_000], [10 * MB], [400_000] * 12],
    ids=["1MB", "2.5MB", "2.9MB", "3.0MB", "3.1MB", "10MB", "12x400kB"],
)
def test_a_staff_answer_with_attachments_reaches_the_citizen_whole(
    graph: GraphServer, graph_app: AppFactory, sizes: list[int]
) -> None:
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    assert run_pass(graph_app("2025-11-03T10:01:00-05:00")).ok
    [notice] = graph.to(AGENT)
    files = {f"document-{n}.pdf": contents(size, seed=n) for n, size in enumerate(sizes)}
    graph.deliver(INFO, staff_answer_with(notice, files), at=office("2025-11-04T09:00"))
    app: App = graph_app("2025-11-04T09:05:00-05:00")
    assert run_pass(app).ok
    assert relayed_files(graph) == [{name: digest(data) for name, data in files.items()}]
    assert_within_graphs_limits(graph)
