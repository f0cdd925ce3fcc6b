"""Benchmark: one pass over a backlog, against the raw floor of the same I/O, in the same run.

For each run the parent starts a real Dovecot (the sandbox's) and a recording SMTP sink in a
process of its own (it accepts every message and keeps only a count, as a fast relay would),
and fills two inboxes with the same N citizen requests. Then, each in a fresh process:

* the raw floor: imapclient logs in, fetches the N messages in batches of 200 (BODY.PEEK[],
  INTERNALDATE, RFC822.SIZE), moves them out of the inbox, and aiosmtplib sends 2N messages
  of the size of mailbot's over one connection to the sink: the same I/O as mailbot's pass,
  with no mailbot code;
* mailbot: one `run --once`-style pass (fetch, store, classify, ticket, acknowledgement and
  staff notice built, queued and sent to the sink, messages moved), its parsing worker
  (mailbot/transport/parse_ahead.py) included.

It prints each run, the medians and their ratio (floor time / mailbot time: 1.0 would be no
overhead at all), then mailbot's peak RSS for backlogs of several sizes.

    .venv/bin/python bench/throughput_bench.py                 # 1000 requests, 5 runs
    .venv/bin/python bench/throughput_bench.py --count 1000 --runs 3 --sizes 1000 5000
    .venv/bin/python bench/throughput_bench.py --count 300 --runs 3 --sizes --relay-delay-ms 5 \
        --connections 1      # a relay across a network, over one session (then 3)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.sandbox.servers import SANDBOX_PASSWORD, Sandbox, free_port, make_sandbox_dir  # noqa: E402

INFO = "renseignements@mri.gouv.qc.ca"
FLOOR = "plancher@example.org"
STAFF = "agent.info@mri.gouv.qc.ca"
RECEIVED = datetime(2025, 11, 3, 10, 0, tzinfo=ZoneInfo("America/Toronto"))


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


# --- the sink: an SMTP server that accepts everything and counts -------------------------


def run_sink(port: int, count: Any, done: Any, delay: float = 0.0) -> None:
    """`delay`: seconds the sink waits before answering RCPT and the end of DATA, as a relay
    across a network does (0: answers at once)."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if delay:
                await asyncio.sleep(delay)
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if delay:
                await asyncio.sleep(delay)
            with count.get_lock():
                count.value += 1
            return "250 2.0.0 Accepted"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    done.wait()
    controller.stop()


# --- the raw floor ---------------------------------------------------------------------------


def floor(imap_port: int, smtp_port: int, count: int, message_size: int) -> dict[str, float]:
    import aiosmtplib
    from imapclient import IMAPClient

    started = time.perf_counter()
    client = IMAPClient("127.0.0.1", port=imap_port, ssl=False)
    client.login(FLOOR, SANDBOX_PASSWORD)
    if not client.folder_exists("Traites"):
        client.create_folder("Traites")
    client.select_folder("INBOX")
    uids = sorted(client.search(["NOT", "DELETED"]))
    fetched = 0
    for start in range(0, len(uids), 200):
        batch = uids[start : start + 200]
        client.fetch(batch, ["INTERNALDATE", "RFC822.SIZE"])
        fetched += len(client.fetch(batch, ["BODY.PEEK[]"]))
        client.move(batch, "Traites")
    client.logout()
    imap_done = time.perf_counter()
    line = b"x" * 74 + b"\r\n"
    body = line * max((message_size - 400) // len(line), 1)

    async def send() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port)
        await smtp.connect()
        for n in range(2 * count):
            raw = (
                f"From: {INFO}\r\nTo: citoyen{n}@example.org\r\nSubject: Accuse {n}\r\n"
                f"Message-ID: <floor-{n}@mri.gouv.qc.ca>\r\n\r\n"
            ).encode() + body
            await smtp.sendmail("", [f"citoyen{n}@example.org"], raw)
        await smtp.quit()

    asyncio.run(send())
    finished = time.perf_counter()
    if fetched != count:
        raise SystemExit(f"floor fetched {fetched} of {count}")
    return {"seconds": finished - started, "imap_seconds": imap_done - started}


# --- mailbot ---------------------------------------------------------------------------------


def mailbot(
    imap_port: int, smtp_port: int, root: Path, count: int, connections: int
) -> dict[str, float]:
    from mailbot.app import build_app
    from mailbot.clock import FixedClock, parse_instant
    from mailbot.ops.passes import run_pass
    from mailbot.sandbox.cli import sandbox_environ, sandbox_settings
    from mailbot.settings import ClassificationSettings, load_settings

    base = load_settings(REPO / "config" / "mailbot.toml", environ={})
    box = Sandbox(root=root / "mail", imap_port=imap_port, smtp_port=smtp_port)
    settings = sandbox_settings(base, box, root / "data")
    settings = settings.model_copy(
        update={
            "classification": ClassificationSettings(burst_limit=100_000),
            "smtp": settings.smtp.model_copy(update={"connections": connections}),
        }
    )
    environ = sandbox_environ(settings, {"MAILBOT_SIGNING_KEY": "bench-key-0123456789"})
    # Before the supervisors' digest time: the pass does the requests' work only.
    app = build_app(settings, FixedClock(parse_instant("2025-11-03T08:10:00-05:00")), environ)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = run_pass(app)
    finished = time.perf_counter()
    if report.fetched != count or report.outbox.sent != 2 * count:  # ack + staff notice
        raise SystemExit(f"pass incomplete: {report.summary()}")
    sizes = [len(r) for r in _sample_outbox(app)]
    return {
        "seconds": finished - started,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_worker_mib": _peak_rss_kib(app.parse_ahead.pid) / 1024,
        "message_size": statistics.mean(sizes) if sizes else 0,
    }


def _peak_rss_kib(pid: int | None) -> int:
    """A running process's peak resident size (VmHWM), 0 without one."""
    if pid is None:
        return 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _sample_outbox(app: Any) -> list[bytes]:
    import sqlalchemy as sa

    with app.engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT raw FROM outbox LIMIT 50")).scalars())


# --- one run ---------------------------------------------------------------------------------


def child(mode: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, f"--{mode}", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def one_run(
    count: int, *, with_floor: bool = True, connections: int = 3, delay_ms: float = 0
) -> dict[str, float]:
    root = make_sandbox_dir("mailbot-bench-")
    users = [INFO, "plaintes@mri.gouv.qc.ca", STAFF, "superviseur@mri.gouv.qc.ca", FLOOR]
    sink_port = free_port()
    sent = multiprocessing.Value("i", 0)
    done = multiprocessing.Event()
    sink = multiprocessing.Process(
        target=run_sink, args=(sink_port, sent, done, delay_ms / 1000), daemon=True
    )
    sink.start()
    try:
        with Sandbox(root=root / "mail", users=users) as sandbox:
            sandbox.stop_smtp()
            for n in range(count):
                sandbox.deliver(INFO, request(n), received_at=RECEIVED)
                if with_floor:
                    sandbox.deliver(FLOOR, request(n), received_at=RECEIVED)
            ports = [str(sandbox.imap_port), str(sink_port)]
            result = child("mailbot", *ports, str(root), str(count), str(connections))
            if with_floor:
                size = str(int(result["message_size"]))
                result.update(
                    {f"floor_{k}": v for k, v in child("floor", *ports, str(count), size).items()}
                )
        result["sink_count"] = sent.value
        return result
    finally:
        done.set()
        sink.join(10)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument(
        "--connections", type=int, default=3, help="mailbot's relay sessions ([smtp] connections)"
    )
    parser.add_argument(
        "--relay-delay-ms",
        type=float,
        default=0,
        help="the sink waits this long before answering RCPT and DATA (a relay on a network)",
    )
    parser.add_argument("--mailbot", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mailbot:
        imap, smtp, root, count, connections = args.mailbot
        print(json.dumps(mailbot(int(imap), int(smtp), Path(root), int(count), int(connections))))
        return
    if args.floor:
        imap, smtp, count, size = args.floor
        print(json.dumps(floor(int(imap), int(smtp), int(count), int(size))))
        return
    print(
        f"one pass over {args.count} waiting requests (mailbot: fetch, store, classify, "
        "ticket, acknowledgement + staff notice sent, move) against the raw floor of the same "
        f"I/O (imapclient fetch + move, aiosmtplib sending {2 * args.count} messages), "
        f"{args.runs} runs"
    )
    print(
        f"mailbot over {args.connections} relay session(s); the sink answers after "
        f"{args.relay_delay_ms:g} ms"
    )
    results = [
        one_run(args.count, connections=args.connections, delay_ms=args.relay_delay_ms)
        for _ in range(args.runs)
    ]
    for r in results:
        print(
            f"  mailbot {r['seconds']:.2f} s ({args.count / r['seconds']:.0f} requests/s)   "
            f"floor {r['floor_seconds']:.2f} s (IMAP {r['floor_imap_seconds']:.2f} s)   "
            f"ratio {r['floor_seconds'] / r['seconds']:.2f}   sink got {r['sink_count']:.0f}"
        )
    ours = statistics.median(r["seconds"] for r in results)
    theirs = statistics.median(r["floor_seconds"] for r in results)
    print(
        f"median: mailbot {ours:.2f} s ({args.count / ours:.0f} requests/s), floor "
        f"{theirs:.2f} s, ratio floor/mailbot {theirs / ours:.2f} (goal: at least 0.50)"
    )
    print("mailbot's peak RSS by backlog size (one run each):")
    for size in args.sizes:
        r = one_run(size, with_floor=False, connections=args.connections)
        print(
            f"  {size:>6} requests: peak RSS {r['rss_peak_mib']:.0f} MiB "
            f"(after start-up {r['rss_before_mib']:.0f} MiB; the parsing worker "
            f"{r['rss_worker_mib']:.0f} MiB), {size / r['seconds']:.0f} requests/s"
        )


if __name__ == "__main__":
    main()
