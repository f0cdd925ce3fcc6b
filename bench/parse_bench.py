"""Benchmark: what parsing costs a person's mail and a machine's, delivery-report reading included.

`parse_message` reads delivery reports that are not RFC 3464 with flufl.bounce's detectors,
which read every line of a message several times; it runs them only on mail with a sign of a
machine sender, and only over the head of it (`NOTICE_SCAN_BYTES`). This prints the median
time of `parse_message` over:

* the labelled corpus (tests/corpus, every message once), and the same without its recursion
  bomb (which takes most of the time);
* a 1 MB request from a person (never given to the detectors);
* a qmail failure notice returning a 10 MB attachment (the detectors stop at the notice);
* 10 MB of machine mail that no detector recognises (the detectors read its head only).

    .venv/bin/python bench/parse_bench.py            # 15 runs each
    .venv/bin/python bench/parse_bench.py --runs 31
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.mail.parse import parse_message  # noqa: E402

CORPUS = REPO / "tests" / "corpus"


def median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def attachment(size: int) -> str:
    data = random.Random(3464).randbytes(size * 3 // 4)
    return base64.encodebytes(data).decode()


def person(size: int) -> bytes:
    line = "Bonjour, je voudrais savoir où en est ma demande de permis, merci.\n"
    return (
        "From: Marie Tremblay <marie.tremblay@example.org>\nTo: renseignements@example.org\n"
        "Subject: Demande\nMessage-ID: <m-1@example.org>\nContent-Type: text/plain; "
        "charset=utf-8\n\n" + line * (size // len(line))
    ).encode()


def machine(size: int, notice: str) -> bytes:
    return (
        "Return-Path: <>\nFrom: MAILER-DAEMON@relay.example.net\nTo: renseignements@example.org\n"
        "Subject: failure notice\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        f"{notice}\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        f"{attachment(size)}--b--\n"
    ).encode()


QMAIL = (
    "Hi. This is the qmail-send program at relay.example.net.\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
    "<someone@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
    "--- Below this line is a copy of the message.\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    corpus = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    # The recursion bomb alone takes most of the corpus's time: shown apart.
    ordinary = [
        path.read_bytes()
        for path in sorted(CORPUS.glob("*.eml"))
        if not path.name.startswith("malformed_recursion")
    ]
    large_request = person(1_000_000)
    returned = machine(10_000_000, QMAIL)
    unrecognised = machine(10_000_000, "Rapport mensuel.")
    cases: list[tuple[str, Callable[[], object]]] = [
        (f"corpus ({len(corpus)} messages)", lambda: [parse_message(raw) for raw in corpus]),
        (
            f"corpus but the bomb ({len(ordinary)})",
            lambda: [parse_message(raw) for raw in ordinary],
        ),
        ("a person's 1 MB request", lambda: parse_message(large_request)),
        ("qmail notice + 10 MB returned", lambda: parse_message(returned)),
        ("10 MB machine mail, no notice", lambda: parse_message(unrecognised)),
    ]
    print(f"parse_message, median of {args.runs} runs")
    for name, work in cases:
        print(f"  {name:34} {median_ms(work, args.runs):9.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
