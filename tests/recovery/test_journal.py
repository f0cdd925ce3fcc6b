"""The journal: every message mailbot sends leaves one copy in the sending mailbox's Sent
folder, with the ticket's reference and the message's purpose in headers of our own; none
where the server keeps its own copy."""

from __future__ import annotations

import sqlalchemy as sa

from mailbot.ops.passes import run_pass
from mailbot.settings import Settings
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import AGENT, CITIZEN, at, header, request


def test_each_sent_message_leaves_one_copy_saying_its_ticket_and_purpose(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    box = memory["renseignements"]
    box.deliver(request(), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)
    run_pass(make_app("2025-11-03T10:02:00-05:00"))

    copies = box.folder("Sent")
    assert sorted(copies) == sorted(item.raw for item in relay.sent)
    by_purpose = {header(raw, "X-Mailbot-Purpose"): raw for raw in copies}
    assert {"acknowledgement", "notice"} <= set(by_purpose)
    ack = by_purpose["acknowledgement"]
    assert header(ack, "X-Mailbot-Ref") == "MRI-2025-00001"
    assert header(ack, "X-Mailbot-Key") == "None"  # a citizen sees no key of ours
    assert header(by_purpose["notice"], "X-Mailbot-Key").startswith("notice:MRI-2025-00001:")
    assert relay.to(CITIZEN) == [ack] and by_purpose["notice"] in relay.to(AGENT)
    with app.engine.connect() as connection:
        missing = connection.execute(
            sa.text("SELECT count(*) FROM outbox WHERE sent_copy_at IS NULL")
        ).scalar()
    assert missing == 0


def test_a_copy_appended_before_a_crash_is_not_appended_again(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    box = memory["renseignements"]
    box.deliver(request(), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    # The process died after the APPEND and before recording it on the row.
    with app.engine.begin() as connection:
        connection.execute(sa.text("UPDATE outbox SET sent_copy_at = NULL"))

    run_pass(make_app("2025-11-03T10:02:00-05:00"))

    assert len(box.folder("Sent")) == len(relay.sent)


def test_a_server_that_keeps_its_own_copy_gets_no_second_one(
    make_app: AppFactory, fast_settings: Settings, memory: MemoryMailboxes
) -> None:
    chosen = fast_settings.model_copy(
        update={
            "mailboxes": tuple(
                mailbox.model_copy(update={"sent_copy": "server"})
                for mailbox in fast_settings.mailboxes
            )
        }
    )
    box = memory["renseignements"]
    box.deliver(request(), at("2025-11-03T10:00"))

    run_pass(make_app("2025-11-03T10:01:00-05:00", chosen))

    assert box.folder("Sent") == []
