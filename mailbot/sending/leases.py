"""Who holds an outbox lease, so that a restarted mailbot takes back its dead leases at once.

A lease owner is written `HOST.BOOT.PID.START.RANDOM`: a short hash of the host name, the
first characters of the kernel's boot id, the process id and its start time (clock ticks
since boot, from /proc: a reused pid has another), and a random part per flush. A lease of
this host is dead when it was taken before the last boot, or when its process no longer
runs (or the pid now names a process started at another time). A lease of another host, of
a live process here (a second daemon on the same database) or in an older format is never
taken back early: it expires after `outbox.LEASE` as before.

`lease_owner` and `is_dead` read /proc (Linux); elsewhere no lease is ever judged dead.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Holder:
    host: str
    boot: str
    pid: int
    start: str


@lru_cache(maxsize=1)
def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _boot() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def me() -> Holder:
    pid = os.getpid()
    return Holder(_host(), _boot(), pid, _start_time(pid) or "0")


def lease_owner() -> str:
    """A new owner name for this process's leases (at most 64 characters)."""
    holder = me()
    return f"{holder.host}.{holder.boot}.{holder.pid}.{holder.start}.{uuid.uuid4().hex[:8]}"


def holder_of(owner: str) -> Holder | None:
    parts = owner.split(".")
    if len(parts) != 5 or not parts[2].isdigit():
        return None
    return Holder(parts[0], parts[1], int(parts[2]), parts[3])


def is_dead(owner: str, here: Holder | None = None) -> bool:
    """Whether `owner` is a process of this host that no longer runs (see the module)."""
    holder = holder_of(owner)
    here = here or me()
    if holder is None or holder.host != here.host or not here.boot:
        return False
    if holder.boot != here.boot:
        return True  # taken before this host last booted
    return _start_time(holder.pid) != holder.start
