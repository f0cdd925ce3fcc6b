"""Limits on one person's acts (real servers): past `[staff] actions_per_hour`, acts are held,
the supervisors and administrators get one alert, and a supervisor releases them.

Run on SQLite, and on PostgreSQL with MAILBOT_TEST_POSTGRES_URL set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import AccessEntry, OutboxMessage, StaffAct, Ticket
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import AlertSettings, Settings, StaffSettings
from tests.conftest import REPO, AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import INFO, citizen_request, office, parsed, text_of
from tests.staff.test_staff_handoff import notice_for
from tests.staff.test_staff_server import AGENT, SUPERVISOR, citizen_replies, staff_reply

ADMIN = "exploitation@mri.gouv.qc.ca"
TICKETS = 30


def with_admin(settings: Settings) -> Settings:
    return settings.model_copy(update={"alerts": AlertSettings(admins=(ADMIN,))})


def statuses(app: App) -> Counter[str]:
    with session_scope(app.engine) as session:
        return Counter(session.exec(select(Ticket.status)).all())


def alerts_to(sandbox: Sandbox, address: str) -> list[bytes]:
    return [
        raw
        for raw in (sandbox.fetch_all(address) if address != ADMIN else sandbox.delivered_to(ADMIN))
        if "actes de" in str(parsed(raw)["Subject"])
    ]


def test_thirty_closes_in_one_pass_apply_twenty_and_tell_the_supervisors_once(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.accept_mail_for(ADMIN)
    settings = with_admin(make_app("2025-11-03T10:00:00-05:00").settings)
    assert settings.staff.actions_per_hour == 20  # the default
    for number in range(1, TICKETS + 1):
        request = citizen_request(
            f"<req-{number}@example.org>", subject=f"Demande {number}", body=f"Question {number}."
        )
        sandbox.deliver(INFO, request, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:30:00-05:00", settings))
    notices = sandbox.fetch_all(AGENT)
    assert len(notices) == TICKETS

    # One mailbox closes all thirty in one pass.
    for number, notice in enumerate(notices, start=1):
        reply = staff_reply(notice, "#fermer", message_id=f"<close-{number}@mri.gouv.qc.ca>")
        sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00", settings)
    run_pass(app)

    assert statuses(app) == Counter({"closed": 20, "open": 10})
    assert citizen_replies(sandbox) == []
    [alert] = alerts_to(sandbox, SUPERVISOR)
    text = text_of(parsed(alert))
    assert f"{AGENT} a fait 20 actes" in text
    assert text.count("MRI-2025-000") == 10 and "fermeture" in text
    assert f"#libérer {AGENT}" in text
    assert len(alerts_to(sandbox, ADMIN)) == 1
    held_notes = [
        r for r in sandbox.fetch_all(AGENT) if "limite d'actes" in str(parsed(r)["Subject"])
    ]
    assert len(held_notes) == 10
    with session_scope(app.engine) as session:
        held = session.exec(
            select(AccessEntry.action).where(col(AccessEntry.action) == "held_over_limit")
        ).all()
    assert len(held) == 10

    # More held acts, later in the hour: no second alert while these wait.
    run_pass(make_app("2025-11-04T09:20:00-05:00", settings))
    assert len(alerts_to(sandbox, SUPERVISOR)) == 1

    # An answer to the alert is a release or nothing: never text for the ticket it names.
    chat = staff_reply(
        alert, "Je vérifie avec elle.", sender=SUPERVISOR, message_id="<chat-1@mri.gouv.qc.ca>"
    )
    sandbox.deliver(INFO, chat, received_at=office("2025-11-04T09:25"))
    run_pass(make_app("2025-11-04T09:26:00-05:00", settings))
    assert citizen_replies(sandbox) == []
    assert any(
        "seule la commande « #libérer ADRESSE » y est acceptée" in text_of(parsed(raw))
        for raw in sandbox.fetch_all(SUPERVISOR)
    )

    # The supervisor releases them, answering the alert: they apply, as they stand now.
    release = staff_reply(
        alert, f"#libérer {AGENT}", sender=SUPERVISOR, message_id="<release-1@mri.gouv.qc.ca>"
    )
    sandbox.deliver(INFO, release, received_at=office("2025-11-04T09:30"))
    later = make_app("2025-11-04T09:35:00-05:00", settings)
    run_pass(later)

    assert statuses(later) == Counter({"closed": 30})
    with session_scope(later.engine) as session:
        acts = Counter(session.exec(select(StaffAct.state)).all())
        released_by = set(session.exec(select(StaffAct.decided_by)).all())
        purposes = Counter(session.exec(select(OutboxMessage.purpose)).all())
    assert acts == Counter({"applied": 30})
    assert released_by == {"", SUPERVISOR}
    assert purposes["acts_alert"] == 2  # one supervisor, one administrator: once
    run_pass(make_app("2025-11-04T10:40:00-05:00", settings))
    assert len(alerts_to(sandbox, SUPERVISOR)) == 1


def test_only_a_supervisor_releases_held_acts(sandbox: Sandbox, make_app: AppFactory) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    # The agent tries to release their own held acts.
    attempt = staff_reply(notice, f"#libérer {AGENT}")
    sandbox.deliver(INFO, attempt, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")
    run_pass(app)

    [error] = [
        text_of(parsed(raw))
        for raw in sandbox.fetch_all(AGENT)
        if "Commande non comprise" in str(parsed(raw)["Subject"])
    ]
    assert "seuls les superviseurs de la file « renseignements » peuvent libérer" in error
    assert citizen_replies(sandbox) == []


def test_an_administrator_lists_and_releases_held_acts_on_the_command_line(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    config = write_sandbox_config(
        tmp_path / "mailbot.toml", sandbox, tmp_path / "data", staff={"actions_per_hour": 2}
    )
    limited = settings.model_copy(update={"staff": StaffSettings(actions_per_hour=2)})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(config), *args],
            cwd=REPO,
            env=subprocess_environ(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )

    for number in range(1, 4):
        request = citizen_request(f"<req-{number}@example.org>", subject=f"Demande {number}")
        sandbox.deliver(INFO, request, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:30:00-05:00", limited))
    # The agent closes the three in the order of their references (their notices, sent in the
    # same pass, arrive in either order): the third close, MRI-2025-00003's, is over the limit.
    for number in range(1, 4):
        notice = notice_for(sandbox, f"MRI-2025-{number:05d}")
        reply = staff_reply(notice, "#close", message_id=f"<close-{number}@mri.gouv.qc.ca>")
        sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:05:00-05:00", limited))

    listed = cli("--now", "2025-11-04T09:10:00-05:00", "held-acts", "--json")
    assert listed.returncode == 0, listed.stderr
    [held] = json.loads(listed.stdout)
    assert (held["person"], held["ref"], held["acts"]) == (AGENT, "MRI-2025-00003", "close")
    released = cli(
        "--now",
        "2025-11-04T09:10:00-05:00",
        "--actor",
        "exploitation",
        "held-acts",
        "--release",
        AGENT,
    )
    assert released.returncode == 0, released.stderr
    assert "1 act(s)" in released.stdout
    later = make_app("2025-11-04T09:15:00-05:00", limited)
    run_pass(later)

    assert statuses(later) == Counter({"closed": 3})
    again = cli("--now", "2025-11-04T09:20:00-05:00", "held-acts", "--release", AGENT)
    assert again.returncode == 1 and "no act of" in again.stderr
