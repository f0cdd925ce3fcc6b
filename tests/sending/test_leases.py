"""Whose outbox leases a restarted mailbot may take back: only those of a dead process here."""

from __future__ import annotations

import subprocess
import sys

from mailbot.sending import leases


def owner_of(pid: int, here: leases.Holder) -> str:
    start = leases._start_time(pid)
    assert start is not None
    return f"{here.host}.{here.boot}.{pid}.{start}.abcdef12"


def test_only_a_dead_process_of_this_host_and_boot_loses_its_leases() -> None:
    here = leases.me()
    assert not leases.is_dead(leases.lease_owner(), here)  # this process: alive
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = owner_of(child.pid, here)
        assert not leases.is_dead(owner, here)  # a live second instance keeps its lease
    finally:
        child.kill()
        child.wait(10)
    assert leases.is_dead(owner, here)  # killed: taken back at once
    assert leases.is_dead(owner.replace(f".{here.boot}.", ".00000000.", 1), here)  # rebooted
    assert not leases.is_dead(owner.replace(here.host, "ffffffff", 1), here)  # another host
    assert not leases.is_dead("0123456789abcdef", here)  # the old format waits out its lease
    assert len(leases.lease_owner()) <= 64
