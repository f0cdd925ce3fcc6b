"""What the scheduled jobs read: the deadlines still open as of an instant (with the start of
the hold open then), a month's compliance of one queue, and the referrals sent in a window."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Connection

from mailbot.db import deadline_rows, hold_rows, job_rows, journal_rows, outbox_rows, ticket_rows
from mailbot.settings import load_settings
from mailbot.standards.digest import SentReferral
from tests.db.seed import at, day, queued, ticket

SETTINGS = load_settings(
    Path(__file__).resolve().parents[2] / "config" / "mailbot.toml", environ={}
)
NOW = at("2025-03-12T15:00:00Z")


def deadline(
    connection: Connection, ticket_id: int, commitment: str, due: str, met: str | None = None
) -> None:
    deadline_rows.insert_deadlines(
        connection,
        ticket_id,
        {
            commitment: {
                "clock_start": day("2025-03-03"),
                "due_date": day(due),
                "due_at": at(f"{due}T23:59:59-04:00") + timedelta(seconds=1),
                "met_at": at(met) if met else None,
                "days_on_hold": 0,
            }
        },
    )


def test_open_deadlines_as_of_an_instant_with_the_hold_open_then(connection: Connection) -> None:
    first = ticket(connection, "MRI-2025-00001")
    deadline(connection, first.id, "ack", "2025-03-05", met="2025-03-04T15:00:00Z")  # met
    deadline(connection, first.id, "info_reply", "2025-03-31")
    held = ticket(connection, "MRI-2025-00002", status="on_hold")
    deadline(connection, held.id, "ack", "2025-03-05", met="2025-03-13T15:00:00Z")  # met later
    for start, end in [
        ("2025-03-04T15:00:00Z", "2025-03-05T15:00:00Z"),  # over by now
        ("2025-03-10T15:00:00Z", "2025-03-12T15:00:01Z"),  # open now
        ("2025-03-12T15:00:02Z", None),  # begins after now
    ]:
        hold_rows.open_hold(connection, held.id, at(start), "", "agent")
        if end:
            hold_rows.close_hold(connection, held.id, at(end), "citoyen")
    closed = ticket(connection, "MRI-2025-00003", status="closed")
    deadline(connection, closed.id, "ack", "2025-03-05")
    found = job_rows.open_deadlines(connection, ["ack", "info_reply"], NOW)
    assert [(d.ref, d.commitment, d.held_since) for d in found] == [
        ("MRI-2025-00002", "ack", at("2025-03-10T15:00:00Z")),
        ("MRI-2025-00001", "info_reply", None),
    ]
    assert job_rows.open_deadlines(connection, ["interview"], NOW) == []
    assert job_rows.open_deadlines(connection, [], NOW) == []


def test_a_months_compliance_counts_the_cases_the_queue_works(connection: Connection) -> None:
    queue = SETTINGS.mailbox("renseignements")
    cases = [
        ("MRI-2025-00001", "information", "renseignements", "2025-03-05", "2025-03-04T15:00:00Z"),
        ("MRI-2025-00002", "information", "plaintes", "2025-03-06", "2025-03-08T15:00:00Z"),
        ("MRI-2025-00003", "other", "renseignements", "2025-03-07", None),  # no queue claims it
        ("MRI-2025-00004", "complaint", "renseignements", "2025-03-07", None),  # the other queue's
        ("MRI-2025-00005", "information", "renseignements", "2025-03-31", None),  # pending
        ("MRI-2025-00006", "information", "renseignements", "2025-04-01", None),  # April
    ]
    for ref, category, mailbox, due, met in cases:
        row = ticket(connection, ref, category=category, mailbox=mailbox)
        deadline(connection, row.id, "ack", due, met)
    merged = ticket(connection, "MRI-2025-00007")
    ticket_rows.set_ticket_fields(
        connection, merged.id, NOW, status="closed", closed_reason="merged"
    )
    deadline(connection, merged.id, "ack", "2025-03-05")
    counts = job_rows.month_compliance(connection, SETTINGS, queue, day("2025-03-01"), NOW)
    assert counts == {"ack": {"met": 1, "late": 1, "open_late": 1, "pending": 1}}


def test_the_referrals_sent_in_a_window_with_who_referred_them(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    referrals = [
        queued(connection, f"referral:{n}", ticket_id=row.id, purpose="referral", recipient=to)
        for n, to in enumerate(["Organisme@Example.org", "autre@example.org", "x@example.org"])
    ]
    ticket_rows.add_event(
        connection,
        row.id,
        NOW,
        "referral_queued",
        actor="agent@mri.gouv.qc.ca",
        outbox_id=referrals[0],
    )
    for row_id, sent in zip(
        referrals, ["2025-03-12T15:00:00Z", "2025-03-12T14:00:00Z"], strict=False
    ):
        journal_rows.lease_for(connection, row_id, "t", NOW + timedelta(hours=1))
        [leased] = outbox_rows.leased_rows(connection, [row_id], "t")
        outbox_rows.record_attempt(connection, leased, {"state": "sent", "sent_at": at(sent)})
    found = job_rows.referrals_sent(connection, at("2025-03-12T14:00:00Z"), NOW)
    assert found == [
        SentReferral(
            "MRI-2025-00001",
            "information",
            "renseignements",
            "organisme@example.org",
            "agent@mri.gouv.qc.ca",
            NOW,
        )
    ]
