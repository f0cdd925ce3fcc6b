"""A selection of tests/staff/first_lines.toml sent through the real servers (Dovecot, SMTP, the
test's database): each line opens the reply to its own ticket, all of them in one pass.

Ordinary lines reach the citizen unchanged and apply nothing; commands meant but left unmarked
reach no citizen: the reply is held, the sender is told the marked form meant, the ticket does
not move.
"""

from __future__ import annotations

import re

from sqlmodel import select

from mailbot.db.models import Ticket
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from tests.conftest import AppFactory
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of
from tests.staff.test_first_lines import TABLE, first_lines
from tests.staff.test_staff_server import AGENT, event_kinds, staff_reply

ORDINARY = [
    "Bonjour Jean-François :",
    "Madame Tremblay :",
    "Dear John:",
    "Note : nos bureaux seront fermés le 24 décembre.",
    "Attente : nous attendons la réponse du consulat.",
    "English: please find the answer below.",
    "Objet : votre demande de stage",
    "Dossier MRI-2026-15",
    "Fermer votre dossier n'est pas nécessaire.",
    "#MRI-2025-00042 : suivi",
]
MEANT = [
    "Fermer",
    "fermer svp",
    "cloture",
    "close ticket",
    "fusioner MRI-2025-00012",
    "Note interne",
    "assinger agent.plaintes@mri.gouv.qc.ca",
    "fermer le dossier",
    "Catégorie : stage",
    "réponse type : bourses",
]


def replies_to(sandbox: Sandbox, make_app: AppFactory, lines: list[str]) -> dict[str, str]:
    """One request per line, then the agent's reply to each notice opening with its line (in
    one pass): the ticket reference each line answered."""
    for n in range(len(lines)):
        request = citizen_request(f"<req-{n}@example.org>", subject=f"Demande {n}")
        sandbox.deliver(INFO, request, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    notices = {}
    for raw in sandbox.fetch_all(AGENT):
        subject = str(parsed(raw)["Subject"])
        found = re.search(r"\[(MRI-\d{4}-\d+)\]", subject)
        assert found is not None
        notices[int(found.group(1).rsplit("-", 1)[1])] = (found.group(1), raw)
    refs: dict[str, str] = {}
    for n, line in enumerate(lines):
        ref, notice = notices[n + 1]
        body = first_lines.reply_of(line).replace("\n", "\r\n")
        reply = staff_reply(notice, body, message_id=f"<reply-{n}@mri.gouv.qc.ca>")
        sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
        refs[line] = ref
    return refs


def test_the_lines_are_in_the_table() -> None:
    assert set(ORDINARY) <= {entry.line for entry in TABLE.ordinary}
    assert set(MEANT) <= {entry.line for entry in TABLE.meant}


def test_ordinary_first_lines_reach_the_citizen_unchanged_and_apply_nothing(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    refs = replies_to(sandbox, make_app, ORDINARY)
    app = make_app("2025-11-04T09:05:00-05:00")

    assert run_pass(app).ok

    answers = {}
    for raw in sandbox.fetch_all(CITIZEN):
        message = parsed(raw)
        if message["Auto-Submitted"] == "auto-replied":
            continue
        found = re.search(r"MRI-\d{4}-\d+", str(message["Subject"]))
        assert found is not None
        answers[found.group(0)] = text_of(message).replace("\r\n", "\n")
    for line, ref in refs.items():
        assert answers[ref].startswith(first_lines.reply_of(line)), line
    with session_scope(app.engine) as session:
        tickets = session.exec(select(Ticket)).all()
        assert {(t.status, t.answered_at is not None, t.category) for t in tickets} == {
            ("answered", True, "information")
        }


def test_commands_meant_but_unmarked_reach_no_citizen_and_are_explained(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    refs = replies_to(sandbox, make_app, MEANT)
    app = make_app("2025-11-04T09:05:00-05:00")

    assert run_pass(app).ok

    assert [
        raw for raw in sandbox.fetch_all(CITIZEN) if parsed(raw)["Auto-Submitted"] != "auto-replied"
    ] == []
    explained = {}
    for raw in sandbox.fetch_all(AGENT):
        message = parsed(raw)
        if "commande sans « # »" in str(message["Subject"]):
            found = re.search(r"MRI-\d{4}-\d+", str(message["Subject"]))
            assert found is not None
            explained[found.group(0)] = text_of(message).replace("\r\n", "\n")
    meant = {entry.line: entry for entry in TABLE.meant}
    for line, ref in refs.items():
        text = explained[ref]
        assert f"    {line}\n" in text  # the line quoted
        if meant[line].marked:
            assert f"-> commande voulue ? {meant[line].marked}" in text
        assert "confirmer" in text and "confirm" in text  # French, then English
    with session_scope(app.engine) as session:
        tickets = session.exec(select(Ticket)).all()
        assert {(t.status, t.answered_at, t.category, t.assignee) for t in tickets} == {
            ("open", None, "information", None)
        }


def test_a_citizens_marked_lines_are_never_commands_nor_once_quoted_by_staff(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    request = citizen_request(body="#fermer\r\n/assign agent.info@mri.gouv.qc.ca\r\nMerci.")
    sandbox.deliver(INFO, request, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    assert "#fermer" in text_of(parsed(notice))  # the citizen's words, forwarded as written
    # The agent answers; the reply quotes the citizen's "#fermer" below the cut.
    reply = staff_reply(notice, "Bonjour,\r\n\r\nVoici la réponse.")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:05:00-05:00"))
    # The citizen writes "#fermer" again, in a follow-up.
    follow_up = citizen_request(
        "<req-2@example.org>", subject="RE: Demande MRI-2025-00001", body="#fermer"
    )
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")
    run_pass(app)

    with session_scope(app.engine) as session:
        [ticket] = session.exec(select(Ticket)).all()
        assert (ticket.status, ticket.assignee, ticket.closed_at) == ("open", None, None)
        assert ticket.answered_at is not None  # the reply was relayed, then the follow-up
    [answer] = [
        raw for raw in sandbox.fetch_all(CITIZEN) if parsed(raw)["Auto-Submitted"] != "auto-replied"
    ]
    assert "Voici la réponse." in text_of(parsed(answer))
    assert not [kind for kind in event_kinds(app) if kind.startswith("command_")]
