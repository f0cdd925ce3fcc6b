"""Benchmark of `mailbot retention run`: closed tickets with their messages in a fresh SQLite
database, then the run that destroys their raw messages and the one that anonymises them.

    .venv/bin/python bench/retention_bench.py [--tickets 10000] [--raw-kib 20] [--batch 100]

Each ticket gets one received message, an acknowledgement and a staff notice of `--raw-kib`
KiB each, and three events, by Core bulk inserts. It prints the seconds of each run, tickets a
second, and the database file's size before and after. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from mailbot.app import build_app
from mailbot.clock import FixedClock
from mailbot.db.models import EVENT, INBOUND, OUTBOX, TICKET
from mailbot.privacy.retention import run_retention
from mailbot.settings import DatabaseSettings, RetentionSettings, load_settings

REPO = Path(__file__).resolve().parent.parent
CLOSED = datetime(2020, 6, 1, 15, tzinfo=UTC)


def fill(engine: sa.Engine, tickets: int, raw_kib: int) -> None:
    raw = (b"X-Filler: " + b"z" * 70 + b"\r\n") * (raw_kib * 1024 // 82)
    with engine.begin() as connection:
        for start in range(0, tickets, 1000):
            ids = range(start + 1, min(start + 1000, tickets) + 1)
            connection.execute(
                sa.insert(TICKET),
                [
                    {
                        "id": n,
                        "ref": f"MRI-2020-{n:05d}",
                        "mailbox": "renseignements",
                        "category": "information",
                        "status": "closed",
                        "requester": f"citoyen{n}@example.org",
                        "requester_name": f"Citoyen {n}",
                        "language": "fr",
                        "subject": f"Demande {n}",
                        "received_at": CLOSED - timedelta(days=5),
                        "receipt_date": date(2020, 5, 27),
                        "closed_at": CLOSED,
                        "english_allowed": False,
                        "created_at": CLOSED,
                        "updated_at": CLOSED,
                    }
                    for n in ids
                ],
            )
            connection.execute(
                sa.insert(INBOUND),
                [
                    {
                        "mailbox": "renseignements",
                        "folder": "INBOX",
                        "uidvalidity": 1,
                        "uid": n,
                        "message_id": f"<m{n}@example.org>",
                        "sha256": f"{n:064d}",
                        "size": len(raw),
                        "raw": raw,
                        "internal_date": CLOSED,
                        "state": "processed",
                        "kind": "new_request",
                        "ticket_id": n,
                        "stored_at": CLOSED,
                    }
                    for n in ids
                ],
            )
            connection.execute(
                sa.insert(OUTBOX),
                [
                    {
                        "ticket_id": n,
                        "purpose": purpose,
                        "dedupe_key": f"{purpose}:{n}:citoyen{n}@example.org",
                        "message_id": f"<o{purpose}{n}@mri.gouv.qc.ca>",
                        "recipient": f"citoyen{n}@example.org"
                        if purpose == "acknowledgement"
                        else "agent.info@mri.gouv.qc.ca",
                        "raw": raw,
                        "state": "sent",
                        "next_attempt_at": CLOSED,
                        "created_at": CLOSED,
                        "sent_at": CLOSED,
                    }
                    for n in ids
                    for purpose in ("acknowledgement", "notice")
                ],
            )
            connection.execute(
                sa.insert(EVENT),
                [
                    {"ticket_id": n, "at": CLOSED, "kind": kind, "actor": "mailbot", "detail": kind}
                    for n in ids
                    for kind in ("opened", "acknowledgement_queued", "command_close")
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--raw-kib", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="retention-bench-"))
    try:
        base = load_settings(REPO / "config" / "mailbot.toml", environ={})
        settings = base.model_copy(
            update={
                "data_dir": folder,
                "database": DatabaseSettings(url=f"sqlite:///{folder / 'mailbot.db'}"),
                "retention": RetentionSettings(
                    raw_days=365, anonymise_days=730, batch_size=args.batch
                ),
            }
        )
        environ = {"MAILBOT_SIGNING_KEY": "bench-signing-key-0123456789"}
        first = build_app(settings, FixedClock(CLOSED + timedelta(days=400)), environ)
        fill(first.engine, args.tickets, args.raw_kib)
        size = (folder / "mailbot.db").stat().st_size
        mib = size / 2**20
        print(f"{args.tickets} tickets, 3 messages of {args.raw_kib} KiB each: {mib:.0f} MiB")
        for label, app in (
            ("raw destroyed", first),
            ("anonymised", build_app(settings, FixedClock(CLOSED + timedelta(days=800)), environ)),
        ):
            started = time.perf_counter()
            report = run_retention(app, trigger="cli", actor="bench")
            seconds = time.perf_counter() - started
            done = len(report.raw_destroyed) + len(report.anonymised)
            size = (folder / "mailbot.db").stat().st_size
            print(
                f"{label}: {done} tickets in {seconds:.1f} s ({done / seconds:.0f} a second), "
                f"file {size / 2**20:.0f} MiB"
            )
            app.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
