"""Benchmark: two `mailbot run` started at the same instant on a new SQLite database, many
times; do both keep running, and is a request answered once?

Each run starts a fresh sandbox (Dovecot and the SMTP server) and a fresh data folder (no
database, no signing key yet), starts two daemons with the same configuration at once (real
clock, IDLE on, a poll far away: only IDLE can answer in time), waits until both finished
their first pass, delivers one request, waits for its acknowledgement, then stops both with
SIGTERM. A run passes when neither daemon exited before the stop, both exited 0, and the
request got exactly one acknowledgement. `--load N` keeps N busy loops (other CPU-bound work)
running for the whole benchmark; `--cold` gives every run an empty bytecode cache, as on a
fresh clone.

    .venv/bin/python bench/startup_bench.py                     # 20 runs
    .venv/bin/python bench/startup_bench.py --runs 20 --load 1 --cold

Two daemons started by hand rarely run their first statement in the same instant (their
imports alone differ by tenths of a second), which is when a new file's switch to WAL fails
for one of them. `--same-instant N` makes it happen: N times, two processes open a new
database (mailbot's engine, start-up lock and migrations) with their first statement at an
agreed instant, and it counts the processes that failed.

    .venv/bin/python bench/startup_bench.py --same-instant 150
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
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.sandbox.servers import SANDBOX_PASSWORD, Sandbox, make_sandbox_dir  # noqa: E402

INFO = "renseignements@mri.gouv.qc.ca"
BUSY_LOOP = "while True:\n    pass\n"


def request(run: int) -> bytes:
    return (
        f"From: Citoyen {run} <citoyen{run}@example.org>\r\nTo: {INFO}\r\n"
        f"Subject: Demande {run}\r\nMessage-ID: <startup-{run}@example.org>\r\n"
        "Date: Mon, 3 Nov 2025 07:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Bonjour,\r\n\r\nJe voudrais savoir comment obtenir une bourse.\r\n"
    ).encode()


def write_config(path: Path, box: Sandbox, data: Path) -> None:
    import tomli_w

    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["imap"].update(port=box.imap_port)
    document["smtp"].update(port=box.smtp_port)
    document["data_dir"] = str(data)
    document["templates_dir"] = str(REPO / "templates")
    document["daemon"].update(poll_seconds=600)
    path.write_text(tomli_w.dumps(document))


def wait_until(done: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.1)
    return False


def one_run(root: Path, run: int, cold: bool) -> tuple[bool, float, str]:
    """(passed, seconds from the start to both first passes, what went wrong)."""
    folder = root / f"run-{run}"
    folder.mkdir()
    box = Sandbox(root=folder / "mail").start()
    try:
        return in_sandbox(box, folder, run, cold)
    finally:
        box.stop()


def in_sandbox(box: Sandbox, folder: Path, run: int, cold: bool) -> tuple[bool, float, str]:
    person = f"citoyen{run}@example.org"
    box.accept_mail_for(person)
    config = folder / "mailbot.toml"
    write_config(config, box, folder / "data")
    environ = {
        **os.environ,
        "MAILBOT_IMAP_PASSWORD_RENSEIGNEMENTS": SANDBOX_PASSWORD,
        "MAILBOT_IMAP_PASSWORD_PLAINTES": SANDBOX_PASSWORD,
    }
    environ.pop("MAILBOT_DATABASE_URL", None)
    environ.pop("MAILBOT_SIGNING_KEY", None)  # made in the data folder: by both at once
    if cold:
        environ["PYTHONPYCACHEPREFIX"] = str(folder / "bytecode")
    logs = [folder / f"daemon-{n}.log" for n in range(2)]
    started = time.monotonic()
    daemons = [
        subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=REPO,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    problem = ""
    try:
        both = wait_until(
            lambda: (
                all("pass done" in log.read_text() for log in logs)
                or any(d.poll() is not None for d in daemons)
            ),
            180,
        )
        up = time.monotonic() - started
        if not both or any(d.poll() is not None for d in daemons):
            problem = "a daemon exited or never finished its first pass"
        else:
            box.deliver(INFO, request(run))
            if not wait_until(lambda: box.delivered_to(person), 120):
                problem = "no acknowledgement"
            time.sleep(2)  # a second acknowledgement would arrive now
            if len(box.delivered_to(person)) > 1:
                problem = f"{len(box.delivered_to(person))} acknowledgements"
            if any(d.poll() is not None for d in daemons):
                problem = "a daemon exited"
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        codes = [daemon.wait(60) for daemon in daemons]
    if codes != [0, 0] and not problem:
        problem = f"exit codes {codes}"
    if problem:
        tails = [log.read_text()[-1500:] for log in logs]
        problem += "\n" + "\n---\n".join(tails)
    return not problem, up, problem


SAME_INSTANT = """
import contextlib, sys, time
sys.path.insert(0, sys.argv[3])
from mailbot.db import store
url, go = sys.argv[1], float(sys.argv[2])
turns = getattr(store, "one_at_a_time", lambda _url: contextlib.nullcontext())
while time.time() < go:
    pass
try:
    with turns(url):
        store.migrate(store.make_engine(url))
    print("ok")
except Exception as exc:
    print(f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
"""


def same_instant(root: Path, rounds: int) -> None:
    failed: list[str] = []
    for n in range(rounds):
        url = f"sqlite:///{root / f'same-{n}' / 'mailbot.db'}"
        go = f"{time.time() + 1.0:.3f}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", SAME_INSTANT, url, go, str(REPO)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=300)[0].strip() for process in processes]
        failed += [output for output in outputs if output != "ok"]
    print(
        f"{len(failed)} of {2 * rounds} processes failed to open a new database another "
        f"process opened in the same instant ({rounds} rounds)"
        + "".join(f"\n  {line}" for line in sorted(set(failed)))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs (20)")
    parser.add_argument("--load", type=int, default=0, help="busy loops running beside (0)")
    parser.add_argument("--cold", action="store_true", help="an empty bytecode cache each run")
    parser.add_argument("--same-instant", type=int, metavar="N", help="see above")
    options = parser.parse_args()
    root = make_sandbox_dir("mailbot-startup-")
    if options.same_instant:
        try:
            same_instant(root, options.same_instant)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(options.load)]
    passed, times = 0, []
    try:
        for run in range(options.runs):
            ok, up, problem = one_run(root, run, options.cold)
            passed += ok
            times.append(up)
            print(
                f"run {run + 1}: {'both kept running, one answer' if ok else 'FAILED'}; "
                f"both first passes done {up:.1f} s after the start{problem and ': ' + problem}"
            )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{passed} of {options.runs} runs: two daemons started together on a new SQLite "
        f"database both kept running and answered the request once; both first passes done a "
        f"median {statistics.median(times):.1f} s after the start "
        f"({options.load} busy loop(s) beside{', cold bytecode' if options.cold else ''})"
    )


if __name__ == "__main__":
    main()
