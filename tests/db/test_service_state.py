"""Alert episodes, facts about the database and correspondents' addresses: one open episode
per name, the first claim of a fact wins (also between two transactions at once), addresses
compared without case."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mailbot.db import service_state
from mailbot.db.models import ADDRESS
from mailbot.db.service_state import Alert
from tests.db.concurrent import start_second
from tests.db.seed import at

T = at("2025-03-03T14:00:00Z")
LATER = at("2025-03-03T15:00:00Z")


# --- alert episodes -----------------------------------------------------------------------------


def test_an_alert_has_one_open_episode_at_a_time(connection: Connection) -> None:
    assert service_state.open_alert(connection, "pacing") is None
    assert service_state.start_alert(connection, "pacing", T, "renseignements")
    assert not service_state.start_alert(connection, "pacing", LATER, "plaintes")
    assert service_state.open_alert(connection, "pacing") == Alert("pacing", T, "renseignements")
    assert service_state.resolve_alert(connection, "pacing", LATER)
    assert not service_state.resolve_alert(connection, "pacing", LATER)
    assert service_state.open_alert(connection, "pacing") is None


def test_an_alert_resolved_starts_a_new_episode(connection: Connection) -> None:
    service_state.start_alert(connection, "pacing", T, "renseignements")
    service_state.resolve_alert(connection, "pacing", LATER)
    again = at("2025-03-04T09:00:00Z")
    assert service_state.start_alert(connection, "pacing", again, "plaintes")
    assert service_state.open_alert(connection, "pacing") == Alert("pacing", again, "plaintes")


def test_open_alerts_are_found_by_a_literal_prefix(connection: Connection) -> None:
    service_state.start_alert(connection, "held_acts:a@mri.gouv.qc.ca", T, "a")
    service_state.start_alert(connection, "heldXacts:b@mri.gouv.qc.ca", T, "b")
    service_state.start_alert(connection, "held_acts:c@mri.gouv.qc.ca", T, "c")
    service_state.resolve_alert(connection, "held_acts:c@mri.gouv.qc.ca", LATER)
    assert [alert.detail for alert in service_state.open_alerts(connection, "held_acts:")] == ["a"]
    assert service_state.open_alerts(connection, "held%") == []


def test_the_first_of_two_transactions_starting_an_alert_at_once_wins(
    committing_engine: Engine,
) -> None:
    with committing_engine.begin() as first:
        assert service_state.start_alert(first, "pacing", T, "first")
        second = start_second(
            committing_engine,
            lambda connection: service_state.start_alert(connection, "pacing", T, "second"),
        )
    assert second.outcome() is False
    with committing_engine.connect() as connection:
        assert service_state.open_alert(connection, "pacing") == Alert("pacing", T, "first")


def test_the_first_of_two_transactions_reopening_an_alert_at_once_wins(
    committing_engine: Engine,
) -> None:
    with committing_engine.begin() as connection:
        service_state.start_alert(connection, "pacing", T, "old")
        service_state.resolve_alert(connection, "pacing", T)
    with committing_engine.begin() as first:
        assert service_state.start_alert(first, "pacing", LATER, "first")
        second = start_second(
            committing_engine,
            lambda connection: service_state.start_alert(connection, "pacing", LATER, "second"),
        )
    assert second.outcome() is False
    with committing_engine.connect() as connection:
        assert service_state.open_alert(connection, "pacing") == Alert("pacing", LATER, "first")


# --- facts about the database -------------------------------------------------------------------


def test_the_first_claim_of_a_fact_wins(connection: Connection) -> None:
    assert service_state.meta_value(connection, "clock") is None
    assert service_state.claim_meta(connection, "clock", "wall") == "wall"
    assert service_state.claim_meta(connection, "clock", "fixed") == "wall"
    assert service_state.meta_value(connection, "clock") == "wall"


def test_a_fact_set_replaces_the_claim_and_a_fact_dropped_can_be_claimed_again(
    connection: Connection,
) -> None:
    service_state.set_meta(connection, "relay_size", "10485760")
    assert service_state.meta_value(connection, "relay_size") == "10485760"
    service_state.set_meta(connection, "relay_size", "36700160")
    assert service_state.claim_meta(connection, "relay_size", "1") == "36700160"
    service_state.drop_meta(connection, "relay_size")
    assert service_state.meta_value(connection, "relay_size") is None
    assert service_state.claim_meta(connection, "relay_size", "1") == "1"


def test_the_first_of_two_transactions_claiming_a_fact_at_once_wins(
    committing_engine: Engine,
) -> None:
    with committing_engine.begin() as first:
        assert service_state.claim_meta(first, "clock", "wall") == "wall"
        second = start_second(
            committing_engine,
            lambda connection: service_state.claim_meta(connection, "clock", "fixed"),
        )
    assert second.outcome() == "wall"


# --- correspondents' addresses ------------------------------------------------------------------


def address_states(connection: Connection) -> list[tuple[str, bool, str]]:
    rows = connection.execute(
        sa.select(ADDRESS.c.address, ADDRESS.c.undeliverable, ADDRESS.c.reason).order_by(
            ADDRESS.c.address
        )
    )
    return [(row.address, bool(row.undeliverable), row.reason) for row in rows]


def test_an_address_is_marked_and_cleared_whatever_its_case(connection: Connection) -> None:
    service_state.mark_undeliverable(connection, "Citoyen@Example.ORG", "5.1.1 unknown user", T)
    service_state.mark_undeliverable(connection, "citoyen@example.org", "5.2.2 mailbox full", LATER)
    assert address_states(connection) == [("citoyen@example.org", True, "5.2.2 mailbox full")]
    service_state.clear_undeliverable(connection, "CITOYEN@example.org")
    assert address_states(connection) == [("citoyen@example.org", False, "")]
    service_state.clear_undeliverable(connection, "other@example.org")  # never marked: nothing
    assert address_states(connection) == [("citoyen@example.org", False, "")]
