"""Benchmark: one `run --once` over a backlog of waiting requests, end to end.

The parent process starts a sandbox (real Dovecot; the SMTP server delivering into it) and
fills the renseignements inbox with N requests from distinct citizens; a fresh child process
then runs one full pass of mailbot against it (fetch, store, classify, open tickets, queue and
send the acknowledgements) and reports its time and peak RSS. The SMTP server runs in the
parent, as a real relay would run outside mailbot.

    .venv/bin/python bench/ingest_bench.py                  # 1000 messages, 3 runs, + sizes
    .venv/bin/python bench/ingest_bench.py --count 1000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.app import PassReport, send_outbox  # noqa: E402
from mailbot.clock import FixedClock, parse_instant  # noqa: E402
from mailbot.context import build_app  # noqa: E402
from mailbot.ingest import ingest_mailbox  # noqa: E402
from mailbot.sandbox import Sandbox, make_sandbox_dir  # noqa: E402
from mailbot.sandbox_cli import sandbox_environ, sandbox_settings  # noqa: E402
from mailbot.settings import ClassificationSettings, load_settings  # noqa: E402

INFO = "renseignements@mri.gouv.qc.ca"


def request(n: int) -> bytes:
    return (
        f"From: Citoyen {n} <citoyen{n}@example.org>\r\n"
        f"To: {INFO}\r\n"
        f"Subject: Demande de renseignements {n}\r\n"
        f"Message-ID: <bench-{n}@example.org>\r\n"
        "Date: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Bonjour,\r\n\r\nJe voudrais savoir comment obtenir une bourse de mobilité pour un "
        "stage à l'étranger et quels documents fournir.\r\n\r\nMerci,\r\nCitoyen\r\n"
    ).encode()


def child(imap_port: int, smtp_port: int, root: Path, count: int) -> dict[str, float]:
    """In a fresh process: one pass of mailbot over the waiting backlog."""
    base = load_settings(REPO / "config" / "mailbot.toml", environ={})
    box = Sandbox(root=root / "mail", imap_port=imap_port, smtp_port=smtp_port)
    settings = sandbox_settings(base, box, root / "data").model_copy(
        update={"classification": ClassificationSettings(burst_limit=100_000)}
    )
    environ = sandbox_environ(settings, {"MAILBOT_SIGNING_KEY": "bench-key-0123456789"})
    app = build_app(settings, FixedClock(parse_instant("2025-11-03T10:05:00-05:00")), environ)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # run_pass, in its two phases, so each can be timed: ingestion, then sending.
    report = PassReport()
    started = time.perf_counter()
    for mailbox in settings.mailboxes:
        ingest_mailbox(app, mailbox, report.ingest, lambda: False)
    ingested = time.perf_counter()
    report.outbox = send_outbox(app)
    finished = time.perf_counter()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if report.fetched != count or report.outbox.sent != 2 * count:  # ack + staff notice
        raise SystemExit(f"pass incomplete: {report.summary()}")
    elapsed = finished - started
    return {
        "count": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "ingest_seconds": ingested - started,
        "send_seconds": finished - ingested,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": rss_after / 1024,
    }


def one_run(count: int) -> dict[str, float]:
    root = make_sandbox_dir("mailbot-bench-")
    users = [INFO, "plaintes@mri.gouv.qc.ca", "agent.info@mri.gouv.qc.ca"] + [
        f"citoyen{n}@example.org" for n in range(count)
    ]
    try:
        with Sandbox(root=root / "mail", users=users) as sandbox:
            received = datetime(2025, 11, 3, 10, 0, tzinfo=ZoneInfo("America/Toronto"))
            for n in range(count):
                sandbox.deliver(INFO, request(n), received_at=received)
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(count),
                    "--imap-port",
                    str(sandbox.imap_port),
                    "--smtp-port",
                    str(sandbox.smtp_port),
                    "--root",
                    str(root),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=REPO,
            ).stdout
            delivered = sum(1 for _ in (root / "mail").glob("mail/citoyen*/Maildir/new/*"))
        result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
        result["delivered"] = delivered
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--imap-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--smtp-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.imap_port, args.smtp_port, args.root, args.child)))
        return
    results = [one_run(args.count) for _ in range(args.runs)]
    rates = [r["per_second"] for r in results]
    print(
        f"backlog of {args.count} requests, {args.runs} runs of one `run --once` each "
        "(IMAP fetch + store + classify + ticket + acknowledgement and staff notice sent over SMTP)"
    )
    for r in results:
        print(
            f"  {r['seconds']:.2f} s  {r['per_second']:.0f} msg/s  (ingest "
            f"{r['ingest_seconds']:.2f} s = {r['count'] / r['ingest_seconds']:.0f} msg/s, send "
            f"{2 * r['count']:.0f} messages {r['send_seconds']:.2f} s)  peak RSS "
            f"{r['rss_peak_mib']:.0f} MiB (after start-up {r['rss_before_mib']:.0f} MiB)  "
            f"acknowledgements delivered {r['delivered']:.0f}"
        )
    print(
        f"median {statistics.median(rates):.0f} msg/s (min {min(rates):.0f}, max {max(rates):.0f})"
    )
    print("peak RSS by backlog size (one run each):")
    for size in sorted({args.count // 4, args.count // 2, args.count, args.count * 2}):
        r = one_run(size)
        print(
            f"  {size:>6} messages: peak RSS {r['rss_peak_mib']:.0f} MiB "
            f"(start-up {r['rss_before_mib']:.0f} MiB), {r['per_second']:.0f} msg/s"
        )


if __name__ == "__main__":
    main()
