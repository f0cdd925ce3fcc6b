"""One entry of the erasure ledger as text: what an erasure, an anonymisation or a destruction
leaves in the mail store, nothing personal, signed with the instance's key (pure).

An entry says which run it belongs to, when, and what went: the references of the tickets
anonymised or emptied (and those an erasure left whole under legal hold), a keyed hash
(HMAC-SHA256 with the signing key, cut to 128 bits) of the erased person's normalised address
and of the SHA-256 of each received message emptied, the Message-IDs of mailbot's own mail
emptied (mailbot made them: a token and a reference, nothing of the citizen), and the
high-water mark of every reference counter when it was written. Without the key the hashes
say nothing; with it they only recognise an address or a message already in hand.

The text is lines of `key: value`, a list wrapped over several lines of the same key, after
the marker line and before the signature (an HMAC of those lines): what the mail store or
Exchange does to a message's headers and line ends does not touch it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

MARKER = "mailbot-ledger: 1"
SIGNATURE = "signature"
# What an entry records: an erasure on request; a ticket anonymised, or its messages'
# bytes destroyed, by the schedule; mail of no ticket emptied by the schedule.
KINDS = ("erase", "anonymise", "raw", "unlinked")
_PER_LINE = 6
_HASH_CHARS = 32

# (prefix, year, last sequence given): MRI, 2025, 42 for MRI-2025-00042.
Counter = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What one batch of an erasure or a retention run destroyed, as the ledger keeps it."""

    entry: str  # the entry's own id (hex)
    instance: str  # the instance id of the database it was written from
    at: datetime
    kind: str
    run: str  # the run's ledger key (`retention_run.ledger_key`)
    trigger: str  # erase | cli | daemon | ...
    actor: str  # who ran it (an OS user, `--actor`, "mailbot"): never a citizen
    high_water: tuple[Counter, ...] = ()
    addresses: tuple[str, ...] = ()  # keyed hashes of the erased person's address
    refs: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # an erasure's tickets left whole under legal hold
    messages: tuple[str, ...] = ()  # keyed hashes of the SHA-256 of received messages
    sent: tuple[str, ...] = ()  # Message-IDs of mailbot's own mail emptied
    unlinked_before: datetime | None = None  # mail of no ticket stored at or before it
    counts: tuple[int, int, int] = (0, 0, 0)  # raw destroyed, anonymised, unlinked


@dataclass(frozen=True, slots=True)
class ReadEntry:
    """An entry read back: `verified` when its signature is this instance's key's."""

    entry: LedgerEntry
    verified: bool


@dataclass(frozen=True, slots=True)
class Ledger:
    """Every entry found in the mail store, once each (an entry is kept in every mailbox)."""

    entries: tuple[ReadEntry, ...] = ()
    unreadable: int = 0  # messages of the ledger folders that are not entries
    mailboxes: tuple[str, ...] = field(default_factory=tuple)  # where it was read

    @property
    def verified(self) -> list[LedgerEntry]:
        return [read.entry for read in self.entries if read.verified]

    @property
    def unverified(self) -> int:
        return sum(1 for read in self.entries if not read.verified)

    def high_water(self) -> dict[tuple[str, int], int]:
        """The highest sequence per (prefix, year) any entry records, as given or as a
        reference it names. Taken from every entry, signed or not: a mark can only make
        references skip ahead, never give one twice."""
        found: dict[tuple[str, int], int] = {}
        for read in self.entries:
            marks = [*read.entry.high_water]
            marks += [c for ref in (*read.entry.refs, *read.entry.kept) if (c := split(ref))]
            for prefix, year, last in marks:
                found[(prefix, year)] = max(found.get((prefix, year), 0), last)
        return found

    def instance(self) -> str:
        """The instance id of the newest signed entry ("" when there is none)."""
        newest = max(self.verified, key=lambda entry: entry.at, default=None)
        return newest.instance if newest is not None else ""


def split(ref: str) -> Counter | None:
    """(prefix, year, sequence) of a reference such as MRI-2025-00042."""
    prefix, _, rest = ref.rpartition("-")
    prefix, _, year = prefix.rpartition("-")
    if not (prefix and year.isdigit() and rest.isdigit()):
        return None
    return prefix, int(year), int(rest)


def keyed_hash(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:_HASH_CHARS]


def address_hash(key: bytes, normalised_address: str) -> str:
    """The ledger's name for an address (already normalised as mailbot compares addresses)."""
    return keyed_hash(key, "address", normalised_address)


def message_hash(key: bytes, sha256: str) -> str:
    """The ledger's name for a received message (the SHA-256 of its bytes, hex)."""
    return keyed_hash(key, "message", sha256.lower())


def _wrapped(name: str, values: Sequence[str]) -> list[str]:
    return [
        f"{name}: {' '.join(values[start : start + _PER_LINE])}"
        for start in range(0, len(values), _PER_LINE)
    ]


def _flat(value: str) -> str:
    return " ".join(value.split())[:200]


def data_lines(entry: LedgerEntry) -> list[str]:
    """The entry's lines, before the signature."""
    lines = [
        MARKER,
        f"entry: {entry.entry}",
        f"instance: {entry.instance}",
        f"at: {entry.at.isoformat()}",
        f"kind: {entry.kind}",
        f"run: {entry.run}",
        f"trigger: {_flat(entry.trigger)}",
        f"actor: {_flat(entry.actor)}",
        "counts: " + " ".join(str(n) for n in entry.counts),
    ]
    lines += _wrapped("high-water", [f"{p}-{y}-{n:05d}" for p, y, n in entry.high_water])
    lines += _wrapped("address", entry.addresses)
    lines += _wrapped("refs", entry.refs)
    lines += _wrapped("kept", entry.kept)
    lines += _wrapped("messages", entry.messages)
    lines += _wrapped("sent", entry.sent)
    if entry.unlinked_before is not None:
        lines.append(f"unlinked-before: {entry.unlinked_before.isoformat()}")
    return lines


def signature(key: bytes, lines: Iterable[str]) -> str:
    return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def entry_text(entry: LedgerEntry, key: bytes) -> str:
    """The signed text of an entry."""
    lines = data_lines(entry)
    return "\n".join([*lines, f"{SIGNATURE}: {signature(key, lines)}"]) + "\n"


def read_entry(text: str, key: bytes) -> ReadEntry | None:
    """The entry in a ledger message's text (None: there is none, or it is malformed)."""
    lines = [line.strip() for line in text.splitlines()]
    if MARKER not in lines:
        return None
    start = lines.index(MARKER)
    data: list[str] = []
    signed = ""
    for line in lines[start:]:
        if line.startswith(f"{SIGNATURE}:"):
            signed = line.partition(":")[2].strip()
            break
        if line:
            data.append(line)
    fields: dict[str, list[str]] = {}
    for line in data[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), []).extend(value.split())
    try:
        entry = _entry_of(fields)
    except (KeyError, ValueError, IndexError):
        return None
    verified = bool(signed) and hmac.compare_digest(signed, signature(key, data))
    return ReadEntry(entry, verified)


def _one(fields: dict[str, list[str]], name: str) -> str:
    return " ".join(fields.get(name, []))


def _entry_of(fields: dict[str, list[str]]) -> LedgerEntry:
    marks = [split(value) for value in fields.get("high-water", [])]
    unlinked = _one(fields, "unlinked-before")
    counts = [int(n) for n in fields.get("counts", ["0", "0", "0"])]
    kind = _one(fields, "kind")
    if kind not in KINDS or not _one(fields, "entry"):
        raise ValueError(kind)
    return LedgerEntry(
        entry=_one(fields, "entry"),
        instance=_one(fields, "instance"),
        at=datetime.fromisoformat(_one(fields, "at")),
        kind=kind,
        run=_one(fields, "run"),
        trigger=_one(fields, "trigger"),
        actor=_one(fields, "actor"),
        high_water=tuple(mark for mark in marks if mark is not None),
        addresses=tuple(fields.get("address", [])),
        refs=tuple(fields.get("refs", [])),
        kept=tuple(fields.get("kept", [])),
        messages=tuple(fields.get("messages", [])),
        sent=tuple(fields.get("sent", [])),
        unlinked_before=datetime.fromisoformat(unlinked) if unlinked else None,
        counts=(counts[0], counts[1], counts[2]),
    )
