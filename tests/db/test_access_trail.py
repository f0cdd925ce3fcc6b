"""The access trail: entries in time order, of one reference or since an instant."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import access
from tests.db.seed import at


def test_entries_in_time_order_by_reference_and_since(connection: Connection) -> None:
    access.record(connection, at("2025-03-03T15:00:00Z"), "admin", "show", "MRI-2025-00001")
    access.record(connection, at("2025-03-03T14:00:00Z"), "admin", "export", "MRI-2025-00002")
    access.record(connection, at("2025-03-03T15:00:00Z"), "x" * 400, "y" * 40, None, "z" * 3000)
    everything = access.entries(connection)
    assert [(e["at"], e["ref"]) for e in everything] == [
        (at("2025-03-03T14:00:00Z"), "MRI-2025-00002"),
        (at("2025-03-03T15:00:00Z"), "MRI-2025-00001"),
        (at("2025-03-03T15:00:00Z"), None),
    ]
    long = everything[2]
    assert (len(long["actor"]), len(long["action"]), len(long["detail"])) == (320, 32, 2000)
    assert [e["action"] for e in access.entries(connection, ref="MRI-2025-00001")] == ["show"]
    since = access.entries(connection, since=at("2025-03-03T15:00:00Z"))
    assert [e["ref"] for e in since] == ["MRI-2025-00001", None]
