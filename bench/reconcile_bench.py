"""Benchmark of `mailbot reconcile`: the time to rebuild an empty database from the mail store.

It starts a real Dovecot (the sandbox's) and an SMTP sink that accepts everything, fills the
inbox with N citizen requests (each from its own address), and lets one mailbot pass handle
them: N tickets, N acknowledgements and N staff notices sent, so the processed folder holds N
messages and the Sent folder 2N copies. Then, for each run, a fresh empty SQLite database and
one `reconcile` (IMAP reads of the processed, quarantine and Sent folders included), timed.
It checks that every ticket came back and prints each run and the median.

    .venv/bin/python bench/reconcile_bench.py                      # 1000 messages, 3 runs
    .venv/bin/python bench/reconcile_bench.py --count 10000 --runs 1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.sandbox.servers import Sandbox, free_port, make_sandbox_dir  # noqa: E402

INFO = "renseignements@mri.gouv.qc.ca"
NOW = "2025-11-03T08:10:00-05:00"


def request(n: int) -> bytes:
    return (
        f"From: Citoyen {n} <citoyen{n}@example.org>\r\nTo: {INFO}\r\n"
        f"Subject: Demande {n}\r\nMessage-ID: <bench-{n}@example.org>\r\n"
        "Date: Mon, 3 Nov 2025 07:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Bonjour,\r\n\r\nJe voudrais savoir comment obtenir une bourse de mobilité.\r\n"
    ).encode()


def start_sink(port: int) -> Any:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 Accepted"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="handled messages (1000)")
    parser.add_argument("--runs", type=int, default=3, help="timed rebuilds (3)")
    options = parser.parse_args()

    import sqlalchemy as sa

    from mailbot.app import build_app
    from mailbot.clock import FixedClock, parse_instant
    from mailbot.ops.passes import run_pass
    from mailbot.recovery.reconcile import reconcile
    from mailbot.sandbox.cli import sandbox_environ, sandbox_settings
    from mailbot.settings import ClassificationSettings, DatabaseSettings, load_settings

    root = make_sandbox_dir("mailbot-reconcile-bench-")
    box = Sandbox(root=root / "mail")
    sink_port = free_port()
    sink = start_sink(sink_port)
    box.start_imap()
    try:
        base = load_settings(REPO / "config" / "mailbot.toml", environ={})
        settings = sandbox_settings(base, box, root / "data")
        settings = settings.model_copy(
            update={
                "classification": ClassificationSettings(burst_limit=1_000_000),
                "smtp": settings.smtp.model_copy(update={"port": sink_port}),
            }
        )
        environ = sandbox_environ(settings, {"MAILBOT_SIGNING_KEY": "bench-key-0123456789"})
        clock = FixedClock(parse_instant(NOW))
        for n in range(options.count):
            box.deliver(INFO, request(n), received_at=parse_instant(NOW))
        started = time.perf_counter()
        handled = build_app(settings, clock, environ)
        report = run_pass(handled)
        handled.parse_ahead.close()
        if report.fetched != options.count or report.outbox.sent != 2 * options.count:
            raise SystemExit(f"the first pass was incomplete: {report.summary()}")
        print(f"handled {options.count} requests in {time.perf_counter() - started:.1f} s")
        seconds: list[float] = []
        for run in range(options.runs):
            url = f"sqlite:///{root / f'rebuilt-{run}' / 'mailbot.db'}"
            empty = settings.model_copy(update={"database": DatabaseSettings(url=url)})
            app = build_app(empty, clock, environ)
            started = time.perf_counter()
            rebuilt = reconcile(app)
            elapsed = time.perf_counter() - started
            with app.engine.connect() as connection:
                tickets = connection.execute(sa.text("SELECT count(*) FROM ticket")).scalar()
                pending = connection.execute(
                    sa.text("SELECT count(*) FROM outbox WHERE state = 'pending'")
                ).scalar()
            app.parse_ahead.close()
            app.engine.dispose()
            if not rebuilt.ok or tickets != options.count or pending:
                raise SystemExit(f"rebuild incomplete: {rebuilt.summary()}, {pending} pending")
            seconds.append(elapsed)
            print(
                f"run {run + 1}: {elapsed:.1f} s, {options.count / elapsed:.0f} messages/s "
                f"({rebuilt.recorded_sent} sent messages recorded)"
            )
        median = statistics.median(seconds)
        print(
            f"median rebuild of {options.count} handled messages: {median:.1f} s "
            f"({options.count / median:.0f} messages/s) over {len(seconds)} run(s)"
        )
    finally:
        box.stop()
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
