"""RFC 6761 special-use names: `test.`, `example.` and example.org are ordinary names to mail
software (a ministry's test environment uses them); `.invalid`, `.localhost`, `.local` and
`.onion` can never receive mail and are refused, with a reason that says so."""

from __future__ import annotations

import pytest
from sqlmodel import select

from mailbot.db.models import InboundMessage
from mailbot.db.store import session_scope
from mailbot.mail.addresses import normalise_address, usable_address
from mailbot.mail.parse import parse_message
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import AppFactory
from tests.intake.test_spine import INFO, citizen_request, office, parsed
from tests.staff.test_staff_server import event_kinds, staff_reply

ORDINARY = (
    "someone@example.test",
    "lea.roy@ministere.test",
    "a@pilot.example",
    "lea.roy@example.org",
    "b@example.com",
    "c@example.net",
)
REFUSED = {
    "bob@host.invalid": ".invalid",
    "bob@invalid": ".invalid",
    "root@localhost": ".localhost",
    "bob@printer.local": ".local",
    "bob@abcdefghijklmnop.onion": ".onion",
}


@pytest.mark.parametrize("address", ORDINARY)
def test_reserved_but_ordinary_names_are_ordinary_addresses(address: str) -> None:
    assert normalise_address(address) == address
    found = usable_address(f"Léa Roy <{address}>")
    assert found is not None and found.address == address


@pytest.mark.parametrize(("address", "name"), sorted(REFUSED.items()))
def test_names_that_never_receive_mail_are_refused_with_the_reason(address: str, name: str) -> None:
    assert normalise_address(address) is None
    mail = parse_message(
        f"From: Bob <{address}>\r\nTo: {INFO}\r\nSubject: Question\r\n"
        "Message-ID: <q-1@example.org>\r\n\r\nBonjour\r\n".encode()
    )
    assert mail.from_address is None
    [defect] = [d for d in mail.defects if d.startswith("From address refused")]
    assert f"at {name}," in defect and "RFC" in defect


def test_a_request_from_invalid_is_held_with_the_reason(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(
        INFO, citizen_request(sender="bob@host.invalid"), received_at=office("2025-11-03T10:00")
    )
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)

    with session_scope(app.engine) as session:
        [row] = session.exec(select(InboundMessage)).all()
    assert row.state in ("set_aside", "held"), row.state
    assert "usable reply address" in row.reason and "at .invalid" in row.reason, row.reason


def test_a_test_domain_citizen_is_acknowledged_and_test_domain_staff_are_staff(
    sandbox: Sandbox, settings: Settings, make_app: AppFactory
) -> None:
    citizen, agent = "someone@example.test", "agent@ministere.test"
    sandbox.accept_mail_for(citizen, agent)
    mailboxes = tuple(
        m.model_copy(update={"staff": (agent,)}) if m.address == INFO else m
        for m in settings.mailboxes
    )
    chosen = settings.model_copy(
        update={
            "mailboxes": mailboxes,
            "organisation": settings.organisation.model_copy(
                update={"staff_domains": ("mri.gouv.qc.ca", "ministere.test")}
            ),
        }
    )
    sandbox.deliver(INFO, citizen_request(sender=citizen), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00", chosen)
    run_pass(app)

    [acknowledgement] = sandbox.delivered_to(citizen)
    assert "MRI-2025-00001" in str(parsed(acknowledgement)["Subject"])
    [notice] = sandbox.delivered_to(agent)

    auth = (
        "Authentication-Results: mx.mri.gouv.qc.ca; dkim=pass header.d=ministere.test; "
        "spf=pass smtp.mailfrom=ministere.test; dmarc=pass header.from=ministere.test\r\n"
    )
    reply = staff_reply(
        notice, "Bonjour,\r\n\r\nVoici la réponse.\r\n\r\nAgente", sender=agent, auth=auth
    )
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:01:00-05:00", chosen))

    answers = sandbox.delivered_to(citizen)
    assert len(answers) == 2, event_kinds(app)
    assert "Voici la réponse." in parsed(answers[1]).get_body(("plain",)).get_content()  # type: ignore[union-attr]
