"""Ticket references: consecutive per prefix and year, never given twice, also to two
transactions that ask at once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mailbot.db import ticket_rows
from mailbot.db.models import TICKET
from tests.db.concurrent import start_second
from tests.db.seed import ticket


def test_references_are_consecutive_per_prefix_and_year(connection: Connection) -> None:
    allocate = ticket_rows.allocate_ref
    assert allocate(connection, "MRI", 2025) == "MRI-2025-00001"
    assert allocate(connection, "MRI", 2025) == "MRI-2025-00002"
    assert allocate(connection, "MRI", 2026) == "MRI-2026-00001"
    assert allocate(connection, "PLT", 2025) == "PLT-2025-00001"
    assert allocate(connection, "MRI", 2025) == "MRI-2025-00003"
    assert allocate(connection, "MRI", 2026) == "MRI-2026-00002"


def test_a_reference_is_never_given_again_even_once_its_ticket_is_gone(
    connection: Connection,
) -> None:
    ref = ticket_rows.allocate_ref(connection, "MRI", 2025)
    row = ticket(connection, ref)
    connection.execute(sa.delete(TICKET).where(TICKET.c.id == row.id))
    assert ticket_rows.allocate_ref(connection, "MRI", 2025) == "MRI-2025-00002"


def test_the_number_grows_past_five_digits_without_wrapping(connection: Connection) -> None:
    for _ in range(3):
        ticket_rows.allocate_ref(connection, "MRI", 2025)
    connection.execute(sa.text("UPDATE ticket_counter SET last = 99999"))
    assert ticket_rows.allocate_ref(connection, "MRI", 2025) == "MRI-2025-100000"


def test_two_transactions_allocating_at_once_get_consecutive_references(
    committing_engine: Engine,
) -> None:
    """The second waits for the first's counter row, then takes the next number."""
    with committing_engine.begin() as connection:
        assert ticket_rows.allocate_ref(connection, "MRI", 2025) == "MRI-2025-00001"
    with committing_engine.begin() as first:
        assert ticket_rows.allocate_ref(first, "MRI", 2025) == "MRI-2025-00002"
        second = start_second(
            committing_engine, lambda connection: ticket_rows.allocate_ref(connection, "MRI", 2025)
        )
    assert second.outcome() == "MRI-2025-00003"


def test_two_transactions_opening_a_year_at_once_get_consecutive_references(
    committing_engine: Engine,
) -> None:
    """The first reference of a year: neither finds the counter row, both make it; the
    second waits for the first's, then takes the next number (never an error, never the same)."""
    with committing_engine.begin() as first:
        assert ticket_rows.allocate_ref(first, "MRI", 2026) == "MRI-2026-00001"
        second = start_second(
            committing_engine, lambda connection: ticket_rows.allocate_ref(connection, "MRI", 2026)
        )
    assert second.outcome() == "MRI-2026-00002"
