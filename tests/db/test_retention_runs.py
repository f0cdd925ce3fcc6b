"""The record of retention runs: counts and references added batch by batch, and the start
of the last finished run of a trigger, an aware instant on both engines (dry runs aside)."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.engine import Connection

from mailbot.db import retention_runs
from tests.db.seed import at


def test_no_finished_run_is_none(connection: Connection) -> None:
    assert retention_runs.last_finished_run(connection, "daemon") is None
    retention_runs.start_run(connection, "daemon", "", at("2025-03-03T07:00:00Z"), dry_run=False)
    assert retention_runs.last_finished_run(connection, "daemon") is None  # killed halfway


def test_the_last_finished_run_is_the_latest_start_of_its_trigger_and_aware(
    connection: Connection,
) -> None:
    runs = [
        ("daemon", "2025-03-03T07:00:00Z", True, False),
        ("daemon", "2025-03-04T07:00:00.250000Z", True, False),
        ("daemon", "2025-03-05T07:00:00Z", False, False),  # not finished
        ("daemon", "2025-03-06T07:00:00Z", True, True),  # a dry run
        ("cli", "2025-03-07T07:00:00Z", True, False),  # another trigger
    ]
    for trigger, started, finished, dry_run in runs:
        run_id = retention_runs.start_run(connection, trigger, "", at(started), dry_run=dry_run)
        if finished:
            retention_runs.finish_run(connection, run_id, at(started))
    last = retention_runs.last_finished_run(connection, "daemon")
    assert last == at("2025-03-04T07:00:00.250000Z")
    assert last is not None and last.tzinfo is not None and last.utcoffset() == UTC.utcoffset(None)
    assert retention_runs.last_finished_run(connection, "cli") == at("2025-03-07T07:00:00Z")
    assert retention_runs.last_finished_run(connection, "erase") is None


def test_a_runs_counts_and_references_add_up_batch_by_batch(connection: Connection) -> None:
    started = at("2025-03-03T07:00:00Z")
    run_id = retention_runs.start_run(connection, "cli", "admin", started, dry_run=False)
    retention_runs.add_to_run(connection, run_id, raw_destroyed=2, refs=["MRI-2023-00001"])
    retention_runs.add_to_run(connection, run_id, unlinked=5)
    retention_runs.add_to_run(
        connection, run_id, anonymised=1, raw_destroyed=1, refs=["MRI-2023-00002", "MRI-2023-00003"]
    )
    retention_runs.finish_run(connection, run_id, at("2025-03-03T07:01:00Z"))
    [run] = retention_runs.runs(connection)
    assert (run["raw_destroyed"], run["anonymised"], run["unlinked"]) == (3, 1, 5)
    assert run["refs"] == "MRI-2023-00001 MRI-2023-00002 MRI-2023-00003"
    assert (run["trigger"], run["actor"], bool(run["dry_run"])) == ("cli", "admin", False)
    assert (run["started_at"], run["finished_at"]) == (started, at("2025-03-03T07:01:00Z"))


def test_a_run_with_no_reference_keeps_an_empty_list(connection: Connection) -> None:
    run_id = retention_runs.start_run(
        connection, "daemon", "", at("2025-03-03T07:00:00Z"), dry_run=True
    )
    retention_runs.add_to_run(connection, run_id, unlinked=1)
    retention_runs.add_to_run(connection, run_id, refs=["MRI-2023-00001"])
    retention_runs.add_to_run(connection, run_id, unlinked=1)
    [run] = retention_runs.runs(connection)
    assert (run["refs"], run["unlinked"], bool(run["dry_run"])) == ("MRI-2023-00001", 2, True)
