"""Benchmark: the acknowledgement's latency over Microsoft Graph, and what idling costs.

Each run starts the local Graph of the tests (tests/graph_server.py) and `mailbot run` on
the example configuration with a `[graph]` section at its defaults (delta poll every 5 s,
full poll every 60 s), with the real clock. Requests are delivered into the inbox one by one,
at random intervals (so their arrival falls anywhere in the poll's cycle); each one's latency
is the time from its delivery to Graph's acceptance of the acknowledgement (sendMail).
Then nothing arrives for `--idle` seconds: the requests Graph received meanwhile, per
mailbox, scaled to ten minutes (Graph's limit is 10,000 per ten minutes per mailbox and
application).

It prints p50, p95 and max for each run, then the medians over the runs.

    .venv/bin/python bench/graph_latency_bench.py                  # 1 run, 20 requests, 60 s idle
    .venv/bin/python bench/graph_latency_bench.py --runs 3 --requests 30 --idle 120
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.graph_server import GraphServer  # noqa: E402
from tests.intake.test_spine import INFO, citizen_request  # noqa: E402
from tests.transport.test_graph_process import environ, write_graph_config  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def one_run(requests: int, idle: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="mailbot-graph-bench-"))
    graph = GraphServer().start()
    process = None
    try:
        # The defaults: only what points at the local Graph is written.
        config = write_graph_config(root / "mailbot.toml", graph, root / "data")
        text = config.read_text().replace("poll_seconds = 0.5\n", "")
        config.write_text(text)
        process = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=REPO,
            env=environ(graph),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while graph.count("GET", r"/messages/delta$") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        delivered: dict[str, float] = {}
        for n in range(requests):
            time.sleep(random.uniform(1.0, 4.0))
            message_id = f"<bench-{n}@example.org>"
            delivered[message_id] = time.time()
            graph.deliver(INFO, citizen_request(message_id, sender=f"c{n}@example.org"))
        while len(set(delivered) & set(graph.answered_at)) < requests:
            if time.monotonic() > deadline + 600:
                raise SystemExit("not every request was acknowledged")
            time.sleep(0.1)
        latencies = [graph.answered_at[mid] - at for mid, at in delivered.items()]
        time.sleep(10)  # the notices and the last pass end
        before = len(graph.requests)
        time.sleep(idle)
        idle_requests = len(graph.requests) - before
        mailboxes = len(graph.mailboxes)
        return {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "idle_per_10min_per_mailbox": idle_requests / mailboxes * 600 / idle,
        }
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        graph.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = []
    for run in range(1, args.runs + 1):
        result = one_run(args.requests, args.idle)
        results.append(result)
        print(
            f"run {run}: ack latency p50 {result['p50']:.2f} s, p95 {result['p95']:.2f} s, "
            f"max {result['max']:.2f} s; idle: "
            f"{result['idle_per_10min_per_mailbox']:.0f} requests / 10 min / mailbox"
        )
    print(
        f"median of {args.runs} run(s): p50 {statistics.median(r['p50'] for r in results):.2f} s, "
        f"p95 {statistics.median(r['p95'] for r in results):.2f} s, idle "
        f"{statistics.median(r['idle_per_10min_per_mailbox'] for r in results):.0f} requests "
        "/ 10 min / mailbox"
    )


if __name__ == "__main__":
    main()
