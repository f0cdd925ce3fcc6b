"""Benchmark: what one message costs against Microsoft Graph, by the size of its attachments.

Each case sends one message from a watched mailbox to a citizen through `GraphSender`, against
the local Graph of the tests (tests/graph_server.py, which refuses what Microsoft documents
as refused: requests over 4 MB, POSTed attachments of 3 MB or more, upload sessions under
3 MB), once with Microsoft's "MB" read as 10^6 bytes and once as 2^20. For each it prints the
requests made (the two look-ups of what the mailbox already holds included; the token is not
counted), how many were attachment POSTs, upload sessions and PUTs, the largest request body,
the bytes sent, and the median wall time over the runs. Every file is checked to arrive whole.

    .venv/bin/python bench/graph_attachments_bench.py             # 3 runs a case
    .venv/bin/python bench/graph_attachments_bench.py --runs 5
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.transport.graph import GraphClient  # noqa: E402
from mailbot.transport.graph_sender import GraphSender  # noqa: E402
from tests.graph_server import GraphServer  # noqa: E402
from tests.intake.test_spine import CITIZEN, INFO, parsed  # noqa: E402
from tests.transport.test_graph import _Tokens, graph_settings  # noqa: E402

MB, MIB = 1_000_000, 1024 * 1024
CASES: list[tuple[str, list[int]]] = [
    ("text only", []),
    ("1 MB", [1 * MB]),
    ("2.5 MB", [2_500_000]),
    ("2.9 MB", [2_900_000]),
    ("3.0 MB", [3 * MB]),
    ("3.1 MB", [3_100_000]),
    ("10 MB", [10 * MB]),
    ("12 x 400 kB", [400_000] * 12),
]


def message_with(sizes: list[int]) -> tuple[bytes, dict[str, str]]:
    message = EmailMessage()
    message["From"] = INFO
    message["To"] = CITIZEN
    message["Subject"] = "[MRI-2025-00001] Votre demande"
    message["Message-ID"] = f"<bench-{random.getrandbits(64):x}@mri.gouv.qc.ca>"
    message["X-Mailbot-Purpose"] = "relay"
    message.set_content("Bonjour,\n\nVoici les documents demandés.\n")
    digests = {}
    for n, size in enumerate(sizes):
        data = random.Random(n * 7919 + size).randbytes(size)
        name = f"document-{n}.pdf"
        digests[name] = hashlib.sha256(data).hexdigest()
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return message.as_bytes(), digests


def one(sizes: list[int], megabyte: int) -> dict[str, float | str]:
    raw, digests = message_with(sizes)
    graph = GraphServer(megabyte=megabyte).start()
    try:
        graph.register(INFO)
        client = GraphClient(graph_settings(graph), _Tokens(graph), lambda: datetime.now(UTC))
        sender = GraphSender(client, frozenset({INFO}))
        started = time.perf_counter()
        result = sender.send_now(CITIZEN, raw)
        seconds = time.perf_counter() - started
        if result.outcome != "sent":
            raise SystemExit(f"not sent: {result.error}")
        [received] = graph.to(CITIZEN)
        arrived = {
            str(part.get_filename()): hashlib.sha256(
                bytes(part.get_payload(decode=True))
            ).hexdigest()
            for part in parsed(received).iter_attachments()
        }
        if arrived != digests or graph.drafts(INFO):
            raise SystemExit("a file did not arrive whole, or a draft was left")
        asked = [(m, p, n) for m, p, n in graph.sizes if not p.endswith("/token")]
        return {
            "requests": len(asked),
            "posts": graph.count("POST", r"/attachments$"),
            "sessions": graph.count("POST", r"/createUploadSession$"),
            "puts": sum(1 for m, p, _n in asked if m == "PUT"),
            "largest": max(n for _m, _p, n in asked),
            "bytes": sum(n for _m, _p, n in asked),
            "seconds": seconds,
        }
    finally:
        graph.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{'case':<12} {'MB is':<6} {'requests':>8} {'POSTs':>5} {'sessions':>8} {'PUTs':>4} "
        f"{'largest request':>15} {'bytes sent':>11} {'median s':>8}"
    )
    for label, sizes in CASES:
        for megabyte, reading in ((MB, "10^6"), (MIB, "2^20")):
            runs = [one(sizes, megabyte) for _ in range(args.runs)]
            first = runs[0]
            print(
                f"{label:<12} {reading:<6} {first['requests']:>8} {first['posts']:>5} "
                f"{first['sessions']:>8} {first['puts']:>4} {first['largest']:>15,} "
                f"{first['bytes']:>11,} "
                f"{statistics.median(float(r['seconds']) for r in runs):>8.2f}"
            )


if __name__ == "__main__":
    main()
