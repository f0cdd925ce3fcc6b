"""Parsing ahead in a worker process: the same parse as inline, for every message of the
corpus; a batch of one chunk never starts the worker; a worker that dies mid-batch leaves the
rest to be parsed inline, and a pass over a backlog still stores every message once."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import mailbot
from mailbot.mail.parse import parse_message
from mailbot.ops.metrics import Metrics
from mailbot.ops.passes import run_pass
from mailbot.settings import Settings
from mailbot.transport.base import FetchedMessage
from mailbot.transport.parse_ahead import ParseAhead, worker_environment
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes
from tests.intake.test_pipeline import at, request, rows

CORPUS = sorted((Path(__file__).resolve().parents[1] / "corpus").glob("*.eml"))
AT = datetime(2025, 11, 3, 15, 0, tzinfo=UTC)


def fetched(raws: list[bytes]) -> list[FetchedMessage]:
    return [FetchedMessage(uid, AT, len(raw), raw, False) for uid, raw in enumerate(raws, 1)]


@pytest.fixture
def ahead() -> Iterator[ParseAhead]:
    worker = ParseAhead()
    yield worker
    worker.close()


def started(worker: ParseAhead) -> ParseAhead:
    """`worker` with its process up and answering."""
    [_, [(_, second)]] = list(worker.chunks(fetched([request()] * 2), 1))
    assert second is not None
    return worker


def test_the_worker_parses_each_message_as_inline_parsing_does(ahead: ParseAhead) -> None:
    messages = fetched([path.read_bytes() for path in CORPUS])

    chunks = list(started(ahead).chunks(messages, 5))

    pairs = [pair for chunk in chunks for pair in chunk]
    assert [message for message, _ in pairs] == messages
    assert all(mail is None for _, mail in chunks[0])  # the first chunk: parsed inline
    for message, mail in (pair for chunk in chunks[1:] for pair in chunk):
        assert mail is not None and mail == parse_message(message.raw)


def test_a_batch_of_one_chunk_never_starts_the_worker() -> None:
    worker = ParseAhead()

    [chunk] = list(worker.chunks(fetched([request()] * 3), 20))

    assert [mail for _, mail in chunk] == [None, None, None]
    assert worker._worker is None


def test_switched_off_everything_is_parsed_inline() -> None:
    worker = ParseAhead(enabled=False)

    chunks = list(worker.chunks(fetched([request()] * 50), 10))

    assert all(mail is None for chunk in chunks for _, mail in chunk)
    assert worker._worker is None


def test_a_worker_killed_mid_batch_leaves_the_rest_to_inline_parsing(
    ahead: ParseAhead, caplog: pytest.LogCaptureFixture
) -> None:
    messages = fetched([request(f"<r{n}@example.org>") for n in range(40)])
    chunks = started(ahead).chunks(messages, 5)
    first = next(chunks)
    assert ahead._worker is not None
    os.kill(ahead._worker.pid, signal.SIGKILL)

    with caplog.at_level(logging.WARNING):
        rest = list(chunks)

    assert len(first) + sum(len(chunk) for chunk in rest) == 40
    assert all(mail is None for _, mail in rest[-1])  # parsed inline by the pass
    assert "the parsing worker failed" in caplog.text
    assert ahead.failures == 1


def test_the_workers_failures_are_counted_once_each(base_settings: Settings) -> None:
    metrics = Metrics(base_settings)

    for failures_so_far in (0, 1, 1, 3):
        metrics.count_parse_worker(failures_so_far)

    assert b"mailbot_parse_worker_failures_total 3.0" in metrics.exposition()


def test_a_backlog_is_stored_once_whether_parsed_ahead_or_inline(
    make_app: AppFactory, memory: MemoryMailboxes
) -> None:
    for n in range(70):
        memory["renseignements"].deliver(
            request(f"<req-{n}@example.org>", sender=f"personne{n}@example.org"),
            at("2025-11-03T10:00"),
        )
    app = make_app("2025-11-03T10:01:00-05:00")
    started(app.parse_ahead)

    report = run_pass(app)

    assert report.fetched == 70 and report.ok
    assert rows(app, "SELECT count(*), count(DISTINCT ticket_id) FROM inbound_message") == [
        (70, 70)
    ]
    assert rows(app, "SELECT count(*) FROM outbox WHERE purpose = 'acknowledgement'") == [(70,)]


def test_a_pass_that_stops_early_leaves_the_worker_in_step(ahead: ParseAhead) -> None:
    first = fetched([request(f"<a{n}@example.org>") for n in range(10)])
    second = fetched([request(f"<b{n}@example.org>", subject=f"B {n}") for n in range(10)])
    stopped = started(ahead).chunks(first, 5)
    next(stopped)  # the worker is parsing the second chunk when the pass stops
    stopped.close()

    [_, later] = list(ahead.chunks(second, 5))

    assert [mail.subject for _, mail in later if mail is not None] == [
        f"B {n}" for n in range(5, 10)
    ]


def test_the_worker_sees_none_of_the_daemons_secrets() -> None:
    environ = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "MAILBOT_SIGNING_KEY": "secret-key-0123456789",
        "MAILBOT_IMAP_PASSWORD": "hunter2",
        "MAILBOT_DATABASE_URL": "postgresql+psycopg://mailbot:pw@db/mailbot",
        "PYTHONPATH": "/opt/extra",
    }

    seen = worker_environment(environ)

    assert seen["PATH"] == "/usr/bin" and seen["LANG"] == "C.UTF-8"
    assert seen["PYTHONPATH"].split(":")[0] == str(Path(mailbot.__file__).parent.parent)
    assert not any(
        "secret" in value or "pw@" in value or "hunter2" in value for value in seen.values()
    )
    assert set(seen) == {"PATH", "LANG", "PYTHONPATH"}
    assert seen["PYTHONPATH"].endswith(":/opt/extra")
