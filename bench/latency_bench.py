"""Benchmark: how long a citizen waits for the acknowledgement, with the daemon as shipped.

Each run starts a real Dovecot and an SMTP server (the sandbox's), and `mailbot run` on the
example configuration's default daemon settings (IMAP IDLE on, poll every 60 s) against them,
with the real clock. Requests are then delivered into the inbox the way a mail server
delivers (Maildir), and each one's latency is the time from its delivery to the SMTP
server's 250 for its acknowledgement:

* singles: requests one by one, a second and a half apart;
* bursts: 50 requests within one second.

It prints p50, p95 and max for each run and mode, then the medians over the runs.

    .venv/bin/python bench/latency_bench.py                  # 3 runs, 20 singles, 50 burst
    .venv/bin/python bench/latency_bench.py --runs 5 --singles 30 --burst 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.sandbox.servers import SANDBOX_PASSWORD, Sandbox, _SmtpHandler, make_sandbox_dir  # noqa: E402

INFO = "renseignements@mri.gouv.qc.ca"
STAFF = ("agent.info@mri.gouv.qc.ca", "agent.plaintes@mri.gouv.qc.ca", "superviseur@mri.gouv.qc.ca")


class TimingHandler(_SmtpHandler):
    """The sandbox's SMTP server, noting when it answers 250 to each message."""

    accepted: dict[str, float]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        now = time.time()
        for line in (envelope.original_content or b"").split(b"\r\n"):
            if line.lower().startswith(b"in-reply-to:"):
                self.accepted.setdefault(line.split(b":", 1)[1].strip().decode(), now)
            if not line:
                break
        return answer


def request(n: int, tag: str) -> tuple[str, bytes]:
    message_id = f"<{tag}-{n}@example.org>"
    raw = (
        f"From: Citoyen {n} <{tag}{n}@example.org>\r\nTo: {INFO}\r\n"
        f"Subject: Demande de renseignements {n}\r\nMessage-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Bonjour, je voudrais des renseignements sur les bourses de mobilité.\r\n"
    ).encode()
    return message_id, raw


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def one_run(singles: int, burst: int) -> dict[str, dict[str, float]]:
    root = make_sandbox_dir("mailbot-latency-")
    citizens = [f"seul{n}@example.org" for n in range(singles)]
    citizens += [f"rafale{n}@example.org" for n in range(burst)]
    users = (INFO, "plaintes@mri.gouv.qc.ca", *STAFF, *citizens)
    sandbox = Sandbox(root=root / "mail", users=users)
    handler = TimingHandler(root / "mail", frozenset(u.lower() for u in users))
    handler.accepted = {}
    sandbox.handler = handler
    sandbox.start()
    daemon = None
    try:
        document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
        document["imap"]["port"] = sandbox.imap_port
        document["smtp"]["port"] = sandbox.smtp_port
        document["data_dir"] = str(root / "data")
        config = root / "mailbot.toml"
        config.write_text(tomli_w.dumps(document))
        environ = {**os.environ, "MAILBOT_SIGNING_KEY": "latency-bench-key-0123456789"}
        environ.pop("MAILBOT_DATABASE_URL", None)
        for mailbox in document["mailboxes"]:
            environ[mailbox["password_env"]] = SANDBOX_PASSWORD
        log = open(root / "daemon.log", "w")  # noqa: SIM115 - the daemon's stderr
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=REPO,
            env=environ,
            stderr=log,
        )
        time.sleep(3)  # start-up: migrations, first pass, IDLE established
        delivered: dict[str, dict[str, float]] = {"singles": {}, "burst": {}}
        for n in range(singles):
            message_id, raw = request(n, "seul")
            delivered["singles"][message_id] = time.time()
            sandbox.deliver(INFO, raw)
            time.sleep(1.5)
        for n in range(burst):
            message_id, raw = request(n, "rafale")
            delivered["burst"][message_id] = time.time()
            sandbox.deliver(INFO, raw)
            time.sleep(1.0 / burst)
        deadline = time.time() + 120
        while time.time() < deadline and len(handler.accepted) < singles + burst:
            time.sleep(0.2)
        result = {}
        for mode, sent in delivered.items():
            latencies = [handler.accepted[m] - t for m, t in sent.items() if m in handler.accepted]
            missing = len(sent) - len(latencies)
            result[mode] = {
                "p50": percentile(latencies, 0.5),
                "p95": percentile(latencies, 0.95),
                "max": max(latencies),
                "missing": missing,
            }
        return result
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
        sandbox.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    print(
        f"delivery to the SMTP server's 250 for the acknowledgement, daemon on its default "
        f"settings; {args.runs} runs of {args.singles} single requests and a burst of "
        f"{args.burst} in one second"
    )
    runs = [one_run(args.singles, args.burst) for _ in range(args.runs)]
    for i, run in enumerate(runs, 1):
        print(
            f"  run {i}: "
            + "   ".join(
                f"{mode}: p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, max {r['max']:.2f} s"
                + (f", {r['missing']:.0f} missing" if r["missing"] else "")
                for mode, r in run.items()
            )
        )
    for mode in ("singles", "burst"):
        p50 = statistics.median(run[mode]["p50"] for run in runs)
        p95 = statistics.median(run[mode]["p95"] for run in runs)
        worst = statistics.median(run[mode]["max"] for run in runs)
        print(f"median {mode}: p50 {p50:.2f} s, p95 {p95:.2f} s, max {worst:.2f} s")


if __name__ == "__main__":
    main()
