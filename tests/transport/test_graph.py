"""Microsoft Graph instead of IMAP and SMTP, against a local Graph (tests/graph_server.py):
the same passes, the same outcomes, whatever Graph throttles, forgets or leaves unsure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
import stamina
from stamina.instrumentation import RetryDetails

from mailbot.app import App, build_app
from mailbot.clock import FixedClock, parse_instant
from mailbot.db.models import GRAPH_FOLDER, OUTBOX, TICKET
from mailbot.errors import ConfigError, GraphError
from mailbot.intake.quarantine import list_quarantine, retry_quarantined
from mailbot.ops.passes import run_pass
from mailbot.settings import (
    AuthSettings,
    DatabaseSettings,
    GraphSettings,
    Settings,
    journal_over_graph,
    parse_settings,
)
from mailbot.transport.graph import GraphClient, wait_seconds
from mailbot.transport.graph_sender import GraphSender
from mailbot.transport.oauth import AccessToken
from tests.cli.test_commands import a_parser_bug_on
from tests.conftest import GRAPH_SECRET_ENV, TEST_SIGNING_KEY, AppFactory
from tests.graph_server import TENANT, GraphServer
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed
from tests.staff.test_exchange_staff import FROM_INTERNET, INSIDE
from tests.staff.test_notes_server import LIKE_AN_ANSWER, note_from_link
from tests.staff.test_staff_server import AGENT, staff_reply

SECRET_ENV = GRAPH_SECRET_ENV


def graph_settings(server: GraphServer, **options: object) -> GraphSettings:
    auth = AuthSettings(
        method="oauth2",
        provider="generic",
        token_endpoint=server.token_endpoint,
        client_id=server.client_id,
        client_secret_env=SECRET_ENV,
    )
    return GraphSettings(auth=auth, base_url=server.base_url, **options)


@pytest.fixture
def settings_graph(
    base_settings: Settings, graph: GraphServer, tmp_path: Path, database_url: str
) -> Settings:
    """The example configuration over the local Graph; SQLite, or PostgreSQL with
    MAILBOT_TEST_POSTGRES_URL set (tests/conftest.py)."""
    for mailbox in base_settings.mailboxes:
        graph.register(mailbox.address)
    return base_settings.model_copy(
        update={
            "graph": graph_settings(graph),
            "mailboxes": journal_over_graph(base_settings.mailboxes),  # as validation does
            "data_dir": tmp_path / "data",
            "database": DatabaseSettings(url=database_url),
        }
    )


def acknowledgements(graph: GraphServer, to: str = CITIZEN) -> list[bytes]:
    return [raw for raw in graph.to(to) if parsed(raw)["Auto-Submitted"] == "auto-replied"]


def count(app: App, table: sa.Table) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_request_is_ticketed_acknowledged_once_and_moved(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    app = graph_app("2025-11-03T10:01:00-05:00")
    report = run_pass(app)
    assert report.ok, report.summary()
    assert count(app, TICKET) == 1
    [ack] = acknowledgements(graph)
    assert "MRI-2025-00001" in str(parsed(ack)["Subject"])
    # The request left the inbox for the processed folder; the ack is in Sent Items.
    assert graph.folder(INFO, "Inbox") == []
    assert len(graph.folder(INFO, "Traites")) == 1
    sent_items = [parsed(raw)["Message-ID"] for raw in graph.folder(INFO, "Sent Items")]
    assert parsed(ack)["Message-ID"] in sent_items
    # Nothing arrives twice: the next pass only asks the delta link, and finds nothing.
    assert run_pass(graph_app("2025-11-03T10:02:00-05:00")).ok
    assert len(acknowledgements(graph)) == 1
    assert count(app, TICKET) == 1


def test_the_received_time_is_exchanges_not_the_senders(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T17:05"))
    app = graph_app("2025-11-03T17:06:00-05:00")
    run_pass(app)
    with app.engine.connect() as connection:
        received = connection.execute(sa.select(TICKET.c.received_at)).scalar_one()
    assert received == office("2025-11-03T17:05").astimezone(UTC)


@pytest.fixture
def exchange_settings(settings_graph: Settings) -> Settings:
    organisation = settings_graph.organisation.model_copy(
        update={"staff_authentication": "exchange_online", "tenant_id": TENANT}
    )
    return settings_graph.model_copy(update={"organisation": organisation})


def open_ticket(graph: GraphServer, graph_app: AppFactory, settings: Settings) -> bytes:
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    run_pass(graph_app("2025-11-03T10:01:00-05:00", settings))
    [notice] = graph.to(AGENT)
    return notice


def citizen_replies(graph: GraphServer) -> list[bytes]:
    return [raw for raw in graph.to(CITIZEN) if parsed(raw)["Auto-Submitted"] != "auto-replied"]


@pytest.mark.parametrize(
    ("stamps", "relayed"), [(INSIDE, True), (FROM_INTERNET, False), ("", False)]
)
def test_a_staff_reply_is_relayed_only_with_exchanges_organisation_stamps(
    graph: GraphServer,
    graph_app: AppFactory,
    exchange_settings: Settings,
    stamps: str,
    relayed: bool,
) -> None:
    notice = open_ticket(graph, graph_app, exchange_settings)
    reply = staff_reply(notice, "Bonjour Madame,\r\n\r\nVoici la réponse.", auth=stamps)
    graph.deliver(INFO, reply, at=office("2025-11-04T09:00"))
    app = graph_app("2025-11-04T09:05:00-05:00", exchange_settings)
    assert run_pass(app).ok
    replies = citizen_replies(graph)
    if relayed:
        [answer] = replies
        assert b"Voici la r" in answer
    else:
        assert replies == []
        with app.engine.connect() as connection:
            kinds = connection.execute(sa.text("select kind from ticket_event")).scalars().all()
        assert "message_held" in kinds


def test_a_note_to_the_notes_address_lands_in_the_same_mailbox_and_stays_a_note(
    graph: GraphServer, graph_app: AppFactory, exchange_settings: Settings
) -> None:
    notice = open_ticket(graph, graph_app, exchange_settings)
    # Exchange delivers renseignements+note@ into the renseignements mailbox, To unchanged.
    _address, note = note_from_link(notice, LIKE_AN_ANSWER, auth=INSIDE)
    graph.deliver(INFO, note, at=office("2025-11-04T09:00"))
    app = graph_app("2025-11-04T09:05:00-05:00", exchange_settings)

    assert run_pass(app).ok

    assert citizen_replies(graph) == []
    with app.engine.connect() as connection:
        kinds = connection.execute(sa.text("select kind from ticket_event")).scalars().all()
        answered = connection.execute(sa.text("select answered_at from ticket")).scalar_one()
    assert "note" in kinds and answered is None


def test_a_429_storm_loses_and_doubles_nothing(graph: GraphServer, graph_app: AppFactory) -> None:
    for n in range(5):
        graph.deliver(
            INFO,
            citizen_request(message_id=f"<req-{n}@example.org>", sender=f"c{n}@example.org"),
            at=office("2025-11-03T10:00"),
        )
    # More refusals than one request's retries: some passes fail part-way, and go on later.
    graph.throttle(40, 429, "0")
    start = datetime(2025, 11, 3, 15, 1, tzinfo=UTC)
    for minute in range(0, 24 * 60, 90):
        run_pass(graph_app((start + timedelta(minutes=minute)).isoformat()))
    assert graph.throttled_answers == 40
    app = graph_app((start + timedelta(days=1)).isoformat())
    assert run_pass(app).ok
    assert count(app, TICKET) == 5
    for n in range(5):
        assert len(acknowledgements(graph, f"c{n}@example.org")) == 1
    assert graph.folder(INFO, "Inbox") == []
    assert len(graph.folder(INFO, "Traites")) == 5


def test_a_delta_reset_lists_the_folder_again_and_creates_no_duplicate(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    for n in range(3):
        graph.deliver(
            INFO,
            citizen_request(message_id=f"<req-{n}@example.org>", sender=f"c{n}@example.org"),
            at=office("2025-11-03T10:00"),
        )
    app = graph_app("2025-11-03T10:01:00-05:00")
    assert run_pass(app).ok
    # Someone drags a processed request back into the inbox, a new one arrives, and Graph
    # forgets every delta link.
    box = graph.mailboxes[INFO]
    inbox = box.folder_named("Inbox")
    moved_back = next(m for m in box.messages.values() if m.folder == box.folder_named("Traites"))
    with graph._lock:
        graph._move(box, moved_back, str(inbox))
    graph.deliver(
        INFO,
        citizen_request(message_id="<req-new@example.org>", sender="new@example.org"),
        at=office("2025-11-03T10:02"),
    )
    graph.expire_delta_links()
    app = graph_app("2025-11-03T10:03:00-05:00")
    assert run_pass(app).ok
    assert count(app, TICKET) == 4
    assert len(acknowledgements(graph, "new@example.org")) == 1
    for n in range(3):
        assert len(acknowledgements(graph, f"c{n}@example.org")) == 1
    assert graph.folder(INFO, "Inbox") == []
    with app.engine.connect() as connection:
        resyncs = connection.execute(
            sa.select(GRAPH_FOLDER.c.resyncs).where(GRAPH_FOLDER.c.mailbox == "renseignements")
        ).scalar_one()
    assert resyncs == 1


def test_a_lost_answer_to_send_is_settled_by_the_draft_and_nothing_goes_twice(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    graph.fail_after_send = 1  # Graph sends the ack, then answers 504
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    app = graph_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    assert graph.fail_after_send == 0
    assert len(acknowledgements(graph)) == 1
    with app.engine.connect() as connection:
        states = connection.execute(sa.select(OUTBOX.c.state)).scalars().all()
    assert set(states) == {"sent"}  # the draft had left Drafts: it was sent
    assert graph.folder(INFO, "Drafts") == []


def test_a_message_already_in_sent_items_is_not_sent_again(graph: GraphServer) -> None:
    # The process was killed between Graph's answer and the outbox's record: the row is
    # tried again, and Sent Items says it went.
    graph.register(INFO)
    client = GraphClient(graph_settings(graph), _Tokens(graph), lambda: datetime.now(UTC))
    sender = GraphSender(client, frozenset({INFO}))
    message = EmailMessage()
    message["From"] = INFO
    message["To"] = CITIZEN
    message["Message-ID"] = "<once@mri.gouv.qc.ca>"
    message.set_content("Bonjour")
    assert sender.send_now(CITIZEN, message.as_bytes()).outcome == "sent"
    assert sender.send_now(CITIZEN, message.as_bytes()).outcome == "sent"
    assert len(graph.to(CITIZEN)) == 1


def test_a_staff_reply_citing_the_message_id_exchange_gave_is_threaded_to_ours(
    graph: GraphServer, graph_app: AppFactory, exchange_settings: Settings
) -> None:
    graph.rewrite_message_ids = True
    notice = open_ticket(graph, graph_app, exchange_settings)
    assert "OUTLOOK.COM" in str(parsed(notice)["Message-ID"])  # not ours: no signed token
    reply = staff_reply(notice, "Bonjour Madame,\r\n\r\nVoici la réponse.", auth=INSIDE)
    graph.deliver(INFO, reply, at=office("2025-11-04T09:00"))
    app = graph_app("2025-11-04T09:05:00-05:00", exchange_settings)
    assert run_pass(app).ok
    [answer] = citizen_replies(graph)
    assert b"Voici la r" in answer


def test_headers_exchange_drops_do_not_break_loop_safety(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    # Reported: Exchange removes Auto-Submitted on this path. The ack still carries our X-
    # marker and X-Auto-Response-Suppress; mailbot's own mail coming back is not answered.
    graph.drop_headers = frozenset({"Auto-Submitted"})
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    app = graph_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    [ack] = graph.to(CITIZEN)
    assert parsed(ack)["Auto-Submitted"] is None
    assert parsed(ack)["X-Auto-Response-Suppress"] == "All"
    # The citizen's address bounces the ack back to the mailbox as it is.
    graph.deliver(INFO, ack, at=office("2025-11-03T10:05"))
    run_pass(graph_app("2025-11-03T10:06:00-05:00"))
    assert len(graph.to(CITIZEN)) == 1


class _Tokens:
    description = "test"

    def __init__(self, server: GraphServer) -> None:
        self._server = server

    def token(self, now: datetime) -> AccessToken:
        _status, _headers, body = self._server.token(
            {"client_id": self._server.client_id, "client_secret": self._server.client_secret}, ""
        )
        import json

        return AccessToken(json.loads(body)["access_token"], now + timedelta(hours=1))

    def invalidate(self) -> None:
        pass


def test_retry_after_is_honoured_and_requests_per_mailbox_are_capped(
    graph: GraphServer, caplog: pytest.LogCaptureFixture
) -> None:
    graph.register(INFO)
    client = GraphClient(
        graph_settings(graph, concurrency=2),
        _Tokens(graph),
        lambda: datetime.now(UTC),
        jitter=lambda: 0.0,
    )
    graph.throttle(2, 429, "7")
    graph.throttle(1, 503, "Wed, 21 Oct 2099 07:28:00 GMT")
    # stamina's test mode: the waits are decided and logged, not slept.
    with stamina.set_testing(True, attempts=100, cap=True), caplog.at_level(logging.INFO):
        assert client.call(INFO, "GET", "mailFolders/inbox").ok
    waits = [m.rsplit("retrying in ", 1)[1] for m in caplog.messages if "retrying in" in m]
    assert waits == ["7.0 s", "7.0 s", "120.0 s"]  # a far date is capped at max_wait_seconds
    # stamina's own report of each retry (a warning carrying the error's repr) is off.
    assert [r for r in caplog.records if r.name.startswith("stamina")] == []
    assert client.counters.throttled == 3
    graph.slow_seconds = 0.05
    threads = [
        threading.Thread(target=client.call, args=(INFO, "GET", "mailFolders/inbox"))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert graph.in_flight_peak[INFO] <= 2


@contextmanager
def retries_scheduled() -> Iterator[list[RetryDetails]]:
    """What stamina schedules (its own record of each wait, before it sleeps it), for the
    clients built before entering: building a client switches stamina's hooks off."""
    seen: list[RetryDetails] = []

    def record(details: RetryDetails) -> None:
        seen.append(details)

    stamina.instrumentation.set_on_retry_hooks([record])
    try:
        yield seen
    finally:
        stamina.instrumentation.set_on_retry_hooks(())


def test_the_wait_is_what_graph_asked_capped_and_really_waited(graph: GraphServer) -> None:
    graph.register(INFO)
    settings = graph_settings(graph, max_wait_seconds=1.5)
    client = GraphClient(settings, _Tokens(graph), lambda: datetime.now(UTC), jitter=lambda: 0.0)
    # Each unlike the growing delay (1, 2, 4 s) used when Graph names no wait.
    graph.throttle(1, 503, "0")
    graph.throttle(1, 429, "1")
    graph.throttle(1, 429, "Wed, 21 Oct 2099 07:28:00 GMT")
    started = time.monotonic()
    with retries_scheduled() as scheduled:
        assert client.call(INFO, "GET", "mailFolders/inbox").ok
    assert [retry.wait_for for retry in scheduled] == [0.0, 1.0, 1.5]
    assert time.monotonic() - started >= 2.5  # slept, not only scheduled
    assert graph.count("GET", r"/mailFolders/inbox$") == 4
    assert client.counters.throttled == 3


def test_a_mailbox_waiting_out_a_throttle_leaves_its_request_slot_free(
    graph: GraphServer,
) -> None:
    graph.register(INFO)
    client = GraphClient(
        graph_settings(graph, concurrency=1), _Tokens(graph), lambda: datetime.now(UTC)
    )
    graph.throttle(1, 429, "0")
    meanwhile: list[bool] = []

    def another_request_while_waiting(details: RetryDetails) -> None:
        # stamina calls this once the wait is decided, just before sleeping it: the mailbox's
        # one request slot is then as it is during the wait. Held, this request would block.
        other = threading.Thread(
            target=lambda: meanwhile.append(client.call(INFO, "GET", "mailFolders/drafts").ok)
        )
        other.start()
        other.join(timeout=30)

    stamina.instrumentation.set_on_retry_hooks([another_request_while_waiting])
    try:
        assert client.call(INFO, "GET", "mailFolders/inbox").ok
    finally:
        stamina.instrumentation.set_on_retry_hooks(())
    assert meanwhile == [True]
    assert graph.requests[-3:] == [
        ("GET", f"/v1.0/users/{INFO}/mailFolders/inbox"),
        ("GET", f"/v1.0/users/{INFO}/mailFolders/drafts"),
        ("GET", f"/v1.0/users/{INFO}/mailFolders/inbox"),
    ]


class _RevokedFirst(_Tokens):
    """Hands out a token Graph refuses until told to forget it (`always`: every time)."""

    def __init__(self, server: GraphServer, *, always: bool = False) -> None:
        super().__init__(server)
        self.always = always
        self.invalidated = 0

    def token(self, now: datetime) -> AccessToken:
        if self.always or not self.invalidated:
            return AccessToken("revoked", now + timedelta(hours=1))
        return super().token(now)

    def invalidate(self) -> None:
        self.invalidated += 1


def test_a_refused_token_is_renewed_once_and_tried_again_at_once(graph: GraphServer) -> None:
    graph.register(INFO)
    tokens = _RevokedFirst(graph)
    client = GraphClient(graph_settings(graph), tokens, lambda: datetime.now(UTC))
    with retries_scheduled() as scheduled:
        assert client.call(INFO, "GET", "mailFolders/inbox").ok
    assert tokens.invalidated == 1
    assert [retry.wait_for for retry in scheduled] == [0.0]
    assert graph.count("GET", r"/mailFolders/inbox$") == 2
    # Refused again with a fresh token: no second renewal, the request fails.
    always = _RevokedFirst(graph, always=True)
    client = GraphClient(graph_settings(graph), always, lambda: datetime.now(UTC))
    with pytest.raises(GraphError) as refused:
        client.call(INFO, "GET", "mailFolders/inbox")
    assert refused.value.status == 401
    assert always.invalidated == 1
    assert graph.count("GET", r"/mailFolders/inbox$") == 4
    assert client.counters.failures == 1


@pytest.mark.parametrize(
    ("retry_after", "attempt", "jitter", "expected"),
    [
        ("5", 1, 0.0, 5.0),
        ("5", 3, 1.0, 6.0),
        (None, 1, 0.0, 1.0),
        (None, 4, 0.0, 8.0),
        ("junk", 2, 0.0, 2.0),
        ("Mon, 03 Nov 2025 15:00:30 GMT", 1, 0.0, 30.0),
        ("100000", 1, 0.0, 120.0),
    ],
)
def test_wait_seconds(
    retry_after: str | None, attempt: int, jitter: float, expected: float
) -> None:
    now = datetime(2025, 11, 3, 15, 0, tzinfo=UTC)
    assert wait_seconds(retry_after, attempt, now, 120.0, jitter) == pytest.approx(expected)


def test_a_large_message_goes_as_a_draft_with_an_upload_session(graph: GraphServer) -> None:
    graph.register(INFO)
    client = GraphClient(
        graph_settings(graph, sendmail_max_bytes=1024), _Tokens(graph), lambda: datetime.now(UTC)
    )
    message = EmailMessage()
    message["From"] = INFO
    message["To"] = CITIZEN
    message["Subject"] = "[MRI-2025-00001] Votre demande"
    message["Message-ID"] = "<big-1@mri.gouv.qc.ca>"
    message["X-Mailbot"] = "1"
    message.set_content("Bonjour,\n\nVoici le document.\n")
    document = bytes(range(256)) * 5000  # 1.28 MB: several upload chunks
    message.add_attachment(document, maintype="application", subtype="pdf", filename="d.pdf")
    result = GraphSender(client, frozenset({INFO})).send_now(CITIZEN, message.as_bytes())
    assert result.outcome == "sent", result.error
    [raw] = graph.to(CITIZEN)
    received = parsed(raw)
    [attachment] = list(received.iter_attachments())
    assert attachment.get_payload(decode=True) == document
    assert received["X-Mailbot"] == "1"
    assert graph.count("POST", r"/sendMail$") == 0
    assert graph.folder(INFO, "Drafts") == []


def test_a_message_to_other_recipients_or_from_elsewhere_is_not_sent(graph: GraphServer) -> None:
    graph.register(INFO)
    client = GraphClient(graph_settings(graph), _Tokens(graph), lambda: datetime.now(UTC))
    sender = GraphSender(client, frozenset({INFO}))
    message = EmailMessage()
    message["From"] = INFO
    message["To"] = f"{CITIZEN}, someone@example.org"
    message.set_content("x")
    assert sender.send_now(CITIZEN, message.as_bytes()).outcome == "held"
    del message["To"]
    message["To"] = CITIZEN
    del message["From"]
    message["From"] = "other@mri.gouv.qc.ca"
    assert sender.send_now(CITIZEN, message.as_bytes()).outcome == "failed"
    assert graph.outgoing == []


def test_graph_needs_no_imap_or_smtp_section(base_settings: Settings, tmp_path: Path) -> None:
    document = {
        "organisation": base_settings.organisation.model_dump(mode="json"),
        "mailboxes": [m.model_dump(mode="json") for m in base_settings.mailboxes],
        "graph": {
            "auth": {
                "method": "oauth2",
                "provider": "microsoft",
                "tenant_id": TENANT,
                "client_id": "c",
                "client_secret_env": "S",
            }
        },
    }
    settings = parse_settings(document, base_dir=tmp_path, environ={})
    assert settings.graph is not None
    assert settings.graph.scopes == ("https://graph.microsoft.com/.default",)
    del document["graph"]
    with pytest.raises(ConfigError, match="imap"):
        parse_settings(document, base_dir=tmp_path, environ={})


def test_a_poison_message_is_quarantined_in_its_folder_and_retried_from_its_bytes(
    graph: GraphServer, graph_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    graph.deliver(INFO, citizen_request("<req-2@example.org>"), at=office("2025-11-03T10:00"))
    app = graph_app("2025-11-03T10:01:00-05:00")
    a_parser_bug_on(monkeypatch, b"<req-1@example.org>")
    report = run_pass(app)
    monkeypatch.undo()
    assert (report.outcomes["quarantined"], report.outcomes["new_request"]) == (1, 1)
    assert len(graph.folder(INFO, "Quarantaine")) == 1
    assert len(graph.folder(INFO, "Traites")) == 1
    [row] = list_quarantine(app)
    later = graph_app("2025-11-03T10:30:00-05:00")
    assert retry_quarantined(later, row.id) == "processed"
    run_pass(later)
    assert len(acknowledgements(graph)) == 2


def test_an_oversized_message_is_read_no_further_than_its_headers(
    graph: GraphServer, graph_app: AppFactory, settings_graph: Settings
) -> None:
    small = settings_graph.model_copy(
        update={"daemon": settings_graph.daemon.model_copy(update={"max_message_bytes": 4096})}
    )
    big = citizen_request(body="Bonjour. " + "x" * 200_000)
    graph.deliver(INFO, big, at=office("2025-11-03T10:00"))
    app = graph_app("2025-11-03T10:01:00-05:00", small)
    assert run_pass(app).ok
    with app.engine.connect() as connection:
        [stored] = connection.execute(sa.text("select raw from inbound_message")).scalars()
    assert len(stored) < 4096  # the headers, not the 200 kB body
    assert b"Subject: Demande de renseignements" in stored
    assert len(graph.folder(INFO, "Inbox")) == 0


def test_health_and_metrics_name_graph_and_count_throttling(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    from mailbot.ops.observe import Monitor

    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    app = graph_app("2025-11-03T10:01:00-05:00")
    monitor = Monitor(app)
    graph.throttle(2, 429, "0")
    monitor.after_pass(run_pass(app), 0.1, full=True)
    health = monitor.health()
    assert health.parts["graph:renseignements"] == "ok"
    assert health.parts["graph:send"] == "ok"
    text = monitor.metrics_text().decode()
    assert "mailbot_graph_throttled_total 2.0" in text
    assert "mailbot_graph_requests_total" in text
    graph.granted = set()  # the scope was withdrawn: every request refused
    monitor.after_pass(run_pass(graph_app("2025-11-03T10:02:00-05:00")), 0.1, full=True)
    seen = monitor.observed.observation().servers["graph:renseignements"]
    assert seen.failing_since is not None


def test_the_microsoft_login_asks_graphs_scope_with_msal(base_settings: Settings) -> None:
    from mailbot.transport.logins import Logins
    from tests.transport.test_oauth import CLIENT, FakeTransport, microsoft_route, session_with

    route, posts = microsoft_route()
    auth = AuthSettings(
        method="oauth2",
        provider="microsoft",
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret_env="S",
    )
    settings = base_settings.model_copy(update={"graph": GraphSettings(auth=auth)})
    logins = Logins(settings, {"S": "good~secret~value"}, session_with(FakeTransport(route)))
    token = logins.graph().token(datetime(2025, 11, 3, 15, tzinfo=UTC))
    assert token.value == "eyJ0.ms"
    [post] = posts
    assert post["scope"] == "https://graph.microsoft.com/.default"


@pytest.mark.parametrize("missing", ["requests", "stamina"])
def test_without_the_microsoft_extra_graph_names_it(
    settings_graph: Settings, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    import sys

    from mailbot.errors import MissingDependency

    for name in (
        "mailbot.transport.graph",
        "mailbot.transport.graph_mailbox",
        "mailbot.transport.graph_sender",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(MissingDependency, match=r'"microsoft" extra'):
        build_app(
            settings_graph,
            FixedClock(parse_instant("2025-11-03T10:00:00-05:00")),
            {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY, SECRET_ENV: "x"},
        )


def test_two_instances_at_once_ticket_and_acknowledge_each_request_once(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    for n in range(12):
        graph.deliver(
            INFO,
            citizen_request(message_id=f"<req-{n}@example.org>", sender=f"c{n}@example.org"),
            at=office("2025-11-03T10:00"),
        )
    apps = [graph_app("2025-11-03T10:01:00-05:00") for _ in range(2)]
    failures: list[BaseException] = []

    def work(app: App) -> None:
        try:
            run_pass(app)
        except BaseException as exc:  # the assertion below names it
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    later = graph_app("2025-11-03T11:01:00-05:00")
    run_pass(later)
    assert count(later, TICKET) == 12
    for n in range(12):
        assert len(acknowledgements(graph, f"c{n}@example.org")) == 1
    assert graph.folder(INFO, "Inbox") == []


def test_delta_pages_are_followed_to_the_delta_link(
    graph: GraphServer, graph_app: AppFactory, settings_graph: Settings
) -> None:
    assert settings_graph.graph is not None
    paged = settings_graph.model_copy(
        update={"graph": settings_graph.graph.model_copy(update={"page_size": 2})}
    )
    for n in range(7):
        graph.deliver(
            INFO,
            citizen_request(message_id=f"<req-{n}@example.org>", sender=f"c{n}@example.org"),
            at=office("2025-11-03T10:00"),
        )
    app = graph_app("2025-11-03T10:01:00-05:00", paged)
    assert run_pass(app).ok
    # 7 messages at 2 a page: 4 pages for one mailbox, 1 (empty) for the other.
    assert graph.count("GET", r"/messages/delta$") == 5
    for n in range(7, 12):
        graph.deliver(
            INFO,
            citizen_request(message_id=f"<req-{n}@example.org>", sender=f"c{n}@example.org"),
            at=office("2025-11-03T10:02"),
        )
    assert run_pass(graph_app("2025-11-03T10:03:00-05:00", paged)).ok
    assert count(app, TICKET) == 12
    for n in range(12):
        assert len(acknowledgements(graph, f"c{n}@example.org")) == 1


def test_erasure_deletes_the_copies_in_the_graph_folders_for_good(
    graph: GraphServer, graph_app: AppFactory
) -> None:
    """`erase` over Graph: the processed folder's copy of the person's request is deleted
    (permanentDelete, not Deleted Items); another person's stays. Sent Items is the server's
    (`sent_copy` "server" under [graph]): erasure does not look there."""
    from mailbot.privacy.erasure import erase_requester

    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    graph.deliver(
        INFO,
        citizen_request(
            message_id="<req-2@example.org>",
            sender="Autre Personne <autre.personne@example.org>",
        ),
        at=office("2025-11-03T10:00"),
    )
    assert run_pass(graph_app("2025-11-03T10:01:00-05:00")).ok
    assert len(graph.folder(INFO, "Traites")) == 2

    sent = graph.folder(INFO, "Sent Items")
    assert any(CITIZEN.encode() in raw for raw in sent)  # the acknowledgement
    sent_items = graph.mailboxes[INFO].folder_named("Sent Items")
    app = graph_app("2025-11-10T10:00:00-05:00")
    asked_before = len(graph.requests)
    report = erase_requester(app, CITIZEN, "demande d'effacement", "test")

    assert report.copies_deleted == 1
    assert graph.folder(INFO, "Sent Items") == sent
    asked = [path for _method, path in graph.requests[asked_before:]]
    assert asked and not [p for p in asked if f"/{sent_items}" in p or "/sentitems" in p]
    left = graph.folder(INFO, "Traites")
    assert len(left) == 1
    assert b"autre.personne@example.org" in left[0]
    assert not any(CITIZEN.encode() in raw for raw in graph.folder(INFO, "Deleted Items"))
