"""Benchmark: two daemons on one PostgreSQL database, one killed with SIGKILL in the middle of a
burst; how long the other takes to finish the burst and the killed one's work.

Each run makes a fresh PostgreSQL database, starts a real Dovecot and SMTP server (the
sandbox's) and two `mailbot run` processes on the same mailboxes and database (real clock,
IDLE on, a 2 s poll, `[daemon] outbox_lease_seconds` = --lease). It delivers --count requests
at once, kills the first daemon with SIGKILL once a third of them are stored (--kill-at sent:
once a third are acknowledged, so that it dies while sending), and waits until
every request has its acknowledgement. It prints, per run, the seconds from the kill to the
last acknowledgement (the takeover time: the rows the killed daemon had leased wait for their
lease to end), how many acknowledgements arrived twice, and the median over the runs.

    .venv/bin/python bench/takeover_bench.py                   # 60 requests, 1 run, 15 s lease
    .venv/bin/python bench/takeover_bench.py --count 200 --runs 3 --kill-at sent

PostgreSQL: --postgres ADMIN_URL, else $MAILBOT_TEST_POSTGRES_URL, else the local default.
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
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.sandbox.servers import SANDBOX_PASSWORD, Sandbox, make_sandbox_dir  # noqa: E402

INFO = "renseignements@mri.gouv.qc.ca"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"


def request(n: int) -> bytes:
    return (
        f"From: Citoyen {n} <citoyen{n}@example.org>\r\nTo: {INFO}\r\n"
        f"Subject: Demande {n}\r\nMessage-ID: <takeover-{n}@example.org>\r\n"
        "Date: Mon, 3 Nov 2025 07:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Bonjour,\r\n\r\nJe voudrais savoir comment obtenir une bourse de mobilité.\r\n"
    ).encode()


def write_config(path: Path, box: Sandbox, data: Path, url: str, lease: float) -> None:
    import tomli_w

    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["imap"].update(port=box.imap_port)
    document["smtp"].update(port=box.smtp_port)
    document["data_dir"] = str(data)
    document["templates_dir"] = str(REPO / "templates")
    document["database"] = {"url": url}
    document["daemon"].update(poll_seconds=2, outbox_lease_seconds=lease, parse_worker=False)
    document.setdefault("classification", {}).update(
        per_address_daily_limit=100_000, burst_limit=100_000
    )
    path.write_text(tomli_w.dumps(document))


def stored(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(sa.text("SELECT count(*) FROM inbound_message")).scalar() or 0
            )
    except sa.exc.ProgrammingError:
        return 0  # the schema is not there yet
    finally:
        engine.dispose()


def acknowledgements(box: Sandbox, count: int) -> Counter[str]:
    found: Counter[str] = Counter()
    for n in range(count):
        for raw in box.delivered_to(f"citoyen{n}@example.org"):
            for line in raw.split(b"\r\n"):
                if line.lower().startswith(b"in-reply-to:"):
                    found[line.split(b":", 1)[1].strip().decode()] += 1
    return found


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def one_run(admin_url: str, count: int, lease: float, kill_at: str) -> tuple[float, int]:
    import sqlalchemy as sa

    name = f"mailbot_takeover_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    root = make_sandbox_dir("mailbot-takeover-")
    box = Sandbox(root=root / "mail").start()
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        box.accept_mail_for(*(f"citoyen{n}@example.org" for n in range(count)))
        config = root / "mailbot.toml"
        write_config(config, box, root / "data", url, lease)
        environ = {
            **os.environ,
            "MAILBOT_SIGNING_KEY": "takeover-bench-key-0123456789",
            "MAILBOT_IMAP_PASSWORD_RENSEIGNEMENTS": SANDBOX_PASSWORD,
            "MAILBOT_IMAP_PASSWORD_PLAINTES": SANDBOX_PASSWORD,
        }
        environ.pop("MAILBOT_DATABASE_URL", None)
        logs = [root / f"daemon-{n}.log" for n in range(2)]
        for log in logs:
            with log.open("w") as handle:
                daemons.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
                        cwd=REPO,
                        env=environ,
                        stdout=subprocess.DEVNULL,
                        stderr=handle,
                    )
                )
        wait_for(
            lambda: all("daemon started" in log.read_text() for log in logs), 120, "the daemons"
        )
        time.sleep(2)  # IDLE established
        for n in range(count):
            box.deliver(INFO, request(n))
        if kill_at == "stored":
            wait_for(lambda: stored(url) >= count // 3, 120, "a third of the burst stored")
        else:
            wait_for(lambda: len(acknowledgements(box, count)) >= count // 3, 120, "a third sent")
        os.kill(daemons[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        daemons[0].wait(30)
        wait_for(lambda: len(acknowledgements(box, count)) >= count, lease + 300, "every ack")
        took = time.monotonic() - killed
        time.sleep(3)  # anything sent twice would arrive now
        twice = sum(n - 1 for n in acknowledgements(box, count).values() if n > 1)
        return took, twice
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(60)
        box.stop()
        shutil.rmtree(root, ignore_errors=True)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="requests in the burst (60)")
    parser.add_argument("--runs", type=int, default=1, help="runs (1)")
    parser.add_argument("--lease", type=float, default=15.0, help="outbox lease, seconds (15)")
    parser.add_argument("--postgres", help="PostgreSQL admin URL")
    parser.add_argument(
        "--kill-at",
        choices=["stored", "sent"],
        default="stored",
        help="kill once a third of the burst is stored (while storing), or once a third is "
        "acknowledged (while sending: the leased rows wait for the lease)",
    )
    options = parser.parse_args()
    admin_url = options.postgres or os.environ.get("MAILBOT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    results = []
    for run in range(options.runs):
        took, twice = one_run(admin_url, options.count, options.lease, options.kill_at)
        results.append(took)
        print(
            f"run {run + 1}: every request acknowledged {took:.1f} s after the kill; "
            f"{twice} acknowledgement(s) sent twice"
        )
    print(
        f"median takeover time over {len(results)} run(s): {statistics.median(results):.1f} s "
        f"({options.count} requests, killed once a third was {options.kill_at}, "
        f"outbox lease {options.lease:.0f} s)"
    )


if __name__ == "__main__":
    main()
