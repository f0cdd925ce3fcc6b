"""Microsoft Graph bookkeeping: one row per (mailbox, immutable id) whose number (the UID it
stands for) never changes, whatever a delta page or a resync says; one delta link per
folder; the first Message-ID the transport gave one of ours stays."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db import graph_rows
from mailbot.db.graph_rows import Seen
from mailbot.db.models import GRAPH_FOLDER, GRAPH_MESSAGE
from tests.db.seed import at

T = at("2025-03-03T14:00:00Z")
LATER = at("2025-03-03T15:00:00Z")
BOX = "renseignements"


def numbers(connection: Connection, mailbox: str = BOX) -> dict[str, int]:
    """immutable id -> number, for every row of the mailbox, present or not."""
    rows = connection.execute(
        sa.select(GRAPH_MESSAGE.c.immutable_id, GRAPH_MESSAGE.c.id).where(
            GRAPH_MESSAGE.c.mailbox == mailbox
        )
    )
    return {immutable_id: int(number) for immutable_id, number in rows}


def listed(connection: Connection, mailbox: str = BOX) -> list[str]:
    return [item.immutable_id for item in graph_rows.present(connection, mailbox)]


def test_a_message_seen_again_keeps_its_number(connection: Connection) -> None:
    graph_rows.record_seen(connection, BOX, [Seen("AAA", T), Seen("BBB", T), Seen("CCC", LATER)], T)
    first = numbers(connection)
    assert first["AAA"] < first["BBB"] < first["CCC"]
    graph_rows.record_seen(connection, BOX, [Seen("CCC", LATER), Seen("AAA", T)], LATER)
    assert numbers(connection) == first
    assert [item.uid for item in graph_rows.present(connection, BOX)] == sorted(first.values())


def test_a_message_removed_is_absent_and_comes_back_under_its_number(
    connection: Connection,
) -> None:
    graph_rows.record_seen(connection, BOX, [Seen("AAA", T), Seen("BBB", T)], T)
    number = numbers(connection)["AAA"]
    graph_rows.record_seen(connection, BOX, [Seen("AAA", None, removed=True)], LATER)
    assert listed(connection) == ["BBB"]
    graph_rows.record_seen(connection, BOX, [Seen("AAA", T)], LATER)
    assert listed(connection) == ["AAA", "BBB"]
    assert numbers(connection)["AAA"] == number


def test_a_removal_of_a_message_never_seen_writes_nothing(connection: Connection) -> None:
    graph_rows.record_seen(connection, BOX, [Seen("ZZZ", None, removed=True)], T)
    assert numbers(connection) == {}


def test_the_same_immutable_id_in_two_mailboxes_is_two_messages(connection: Connection) -> None:
    graph_rows.record_seen(connection, BOX, [Seen("AAA", T)], T)
    graph_rows.record_seen(connection, "plaintes", [Seen("AAA", T)], T)
    assert numbers(connection)["AAA"] != numbers(connection, "plaintes")["AAA"]
    graph_rows.mark_absent_except(connection, "plaintes", [], LATER)
    assert listed(connection) == ["AAA"]
    assert listed(connection, "plaintes") == []


def test_a_full_listing_marks_absent_every_message_it_does_not_list(
    connection: Connection,
) -> None:
    graph_rows.record_seen(connection, BOX, [Seen(name, T) for name in ("A", "B", "C", "D")], T)
    graph_rows.record_seen(connection, BOX, [Seen("D", None, removed=True)], T)
    assert graph_rows.mark_absent_except(connection, BOX, ["B", "X"], LATER) == 2  # A and C
    assert listed(connection) == ["B"]
    assert graph_rows.mark_absent_except(connection, BOX, ["B"], LATER) == 0


def test_present_gives_the_number_id_and_aware_arrival(connection: Connection) -> None:
    graph_rows.record_seen(connection, BOX, [Seen("AAA", T), Seen("BBB", None)], T)
    found = graph_rows.present(connection, BOX)
    assert [(item.immutable_id, item.received_at) for item in found] == [
        ("AAA", T),
        ("BBB", None),
    ]
    assert found[0].received_at is not None and found[0].received_at.utcoffset() is not None


def test_messages_moved_out_are_absent(connection: Connection) -> None:
    graph_rows.record_seen(connection, BOX, [Seen("AAA", T), Seen("BBB", T)], T)
    graph_rows.mark_moved(connection, [numbers(connection)["AAA"]], LATER)
    graph_rows.mark_moved(connection, [], LATER)
    assert listed(connection) == ["BBB"]


def test_a_folder_has_one_delta_link_and_counts_its_resyncs(connection: Connection) -> None:
    assert graph_rows.delta_link(connection, BOX, "Inbox") == ""
    graph_rows.save_delta_link(connection, BOX, "Inbox", "https://graph/delta?1", T, resync=False)
    graph_rows.save_delta_link(connection, BOX, "Inbox", "https://graph/delta?2", T, resync=True)
    graph_rows.save_delta_link(connection, BOX, "Inbox", "https://graph/delta?3", T, resync=False)
    graph_rows.save_delta_link(connection, BOX, "Inbox", "https://graph/delta?4", T, resync=True)
    graph_rows.save_delta_link(connection, BOX, "Archive", "https://graph/delta?a", T, resync=False)
    assert graph_rows.delta_link(connection, BOX, "Inbox") == "https://graph/delta?4"
    assert graph_rows.delta_link(connection, "plaintes", "Inbox") == ""
    rows = connection.execute(
        sa.select(GRAPH_FOLDER.c.folder, GRAPH_FOLDER.c.resyncs).order_by(GRAPH_FOLDER.c.folder)
    ).all()
    assert [tuple(row) for row in rows] == [("Archive", 0), ("Inbox", 2)]


def test_the_first_message_id_the_transport_gave_ours_stays(connection: Connection) -> None:
    graph_rows.record_alias(connection, "<exch-1@outlook.com>", "<ours-1@mri.gouv.qc.ca>", T)
    graph_rows.record_alias(connection, "<exch-1@outlook.com>", "<ours-2@mri.gouv.qc.ca>", LATER)
    graph_rows.record_alias(connection, "<exch-2@outlook.com>", "<ours-2@mri.gouv.qc.ca>", T)
    ours = graph_rows.our_message_ids(connection, ["<exch-1@outlook.com>", "<unknown@example.org>"])
    assert ours == ["<ours-1@mri.gouv.qc.ca>"]
    assert graph_rows.our_message_ids(connection, []) == []
