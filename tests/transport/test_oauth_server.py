"""OAuth2 logins end to end: a real Dovecot whose passdb is its oauth2 driver, an SMTP server
that takes XOAUTH2 only, both checking tokens with an OAuth2 server the fixtures start."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import tomli_w

from mailbot.app import build_app
from mailbot.clock import FixedClock, parse_instant
from mailbot.errors import ImapError
from mailbot.ops.passes import run_pass
from mailbot.sandbox.cli import sandbox_settings
from mailbot.sandbox.servers import make_sandbox_dir
from mailbot.settings import AuthSettings, DatabaseSettings, Settings
from mailbot.transport.imap import ImapMailbox
from tests.conftest import REPO, TEST_SIGNING_KEY
from tests.intake.test_spine import CITIZEN, COMPLAINTS, INFO, citizen_request, office
from tests.oauth_sandbox import SCOPE, OAuthSandbox, OAuthServer

pytestmark = pytest.mark.server

CLIENT_ID = "mailbot-app"
SECRET = "oauth-test-secret-0123456789"
SECRET_ENV = "MAILBOT_OAUTH_CLIENT_SECRET"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer(lifetime=3600) as server:
        server.register(CLIENT_ID, SECRET, "mri.gouv.qc.ca")
        yield server


def start_box(oauth: OAuthServer, granted: tuple[str, ...]) -> OAuthSandbox:
    box = OAuthSandbox(root=make_sandbox_dir("mailbot-oauth-"), oauth=oauth, granted=granted)
    box.start()
    return box


@pytest.fixture
def box(oauth: OAuthServer) -> Iterator[OAuthSandbox]:
    started = start_box(oauth, (INFO, COMPLAINTS))
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(started.root, ignore_errors=True)


def auth_section(oauth: OAuthServer, **extra: str) -> dict[str, str]:
    return {
        "method": "oauth2",
        "provider": "generic",
        "token_endpoint": oauth.token_endpoint,
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "scope": SCOPE,
        **extra,
    }


def oauth_settings(
    base: Settings, box: OAuthSandbox, data_dir: Path, database_url: str, **imap_extra: str
) -> Settings:
    assert box.oauth is not None
    chosen = sandbox_settings(base, box, data_dir)
    return chosen.model_copy(
        update={
            "database": DatabaseSettings(url=database_url),
            "imap": chosen.imap.model_copy(
                update={"auth": AuthSettings.model_validate(auth_section(box.oauth, **imap_extra))}
            ),
            "smtp": chosen.smtp.model_copy(
                update={
                    "username": INFO,
                    "auth": AuthSettings.model_validate(auth_section(box.oauth)),
                }
            ),
            "mailboxes": tuple(m.model_copy(update={"password_env": ""}) for m in chosen.mailboxes),
        }
    )


def environ() -> dict[str, str]:
    return {SECRET_ENV: SECRET, "MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY}


def write_oauth_config(path: Path, box: OAuthSandbox, data_dir: Path, **daemon: float) -> Path:
    """The example configuration with OAuth2 on both sides, for a subprocess."""
    assert box.oauth is not None
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["imap"].update(port=box.imap_port, auth=auth_section(box.oauth))
    document["smtp"].update(port=box.smtp_port, username=INFO, auth=auth_section(box.oauth))
    document["data_dir"] = str(data_dir)
    document["templates_dir"] = str(REPO / "templates")
    document["daemon"].update(daemon)
    document["classification"]["per_address_daily_limit"] = 1000
    for mailbox in document["mailboxes"]:
        mailbox.pop("password_env")
    path.write_text(tomli_w.dumps(document))
    return path


def mailbot(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def acknowledgements(box: OAuthSandbox, address: str = CITIZEN) -> list[bytes]:
    return [raw for raw in box.fetch_all(address) if b"Auto-Submitted: auto-replied" in raw]


def test_a_pass_with_oauth2_on_both_sides(
    oauth: OAuthServer,
    box: OAuthSandbox,
    base_settings: Settings,
    tmp_path: Path,
    database_url: str,
) -> None:
    box.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    settings = oauth_settings(base_settings, box, tmp_path / "data", database_url)
    app = build_app(settings, FixedClock(parse_instant("2025-11-03T10:01:00-05:00")), environ())

    report = run_pass(app)

    assert report.ok, report.summary()
    assert report.fetched == 1
    assert len(acknowledgements(box)) == 1
    log = box.dovecot_log()
    # Dovecot offers OAUTHBEARER, so `auto` takes it; the SMTP server offers XOAUTH2 only.
    assert f"user=<{INFO}>, method=OAUTHBEARER" in log
    assert f"user=<{COMPLAINTS}>, method=OAUTHBEARER" in log
    # Each relay session of the flush logs in as the sending mailbox ([smtp] connections).
    assert set(box.smtp_handler.logins) == {INFO}
    # One application token for both mailboxes and SMTP: it is cached, not asked for again.
    assert oauth.issued == 1
    app.engine.dispose()


def test_xoauth2_when_configured_and_a_token_the_server_dropped_is_renewed_once(
    oauth: OAuthServer,
    box: OAuthSandbox,
    base_settings: Settings,
    tmp_path: Path,
    database_url: str,
) -> None:
    settings = oauth_settings(
        base_settings, box, tmp_path / "data", database_url, mechanism="xoauth2"
    )
    clock = FixedClock(parse_instant("2025-11-03T10:01:00-05:00"))
    app = build_app(settings, clock, environ())
    assert run_pass(app).ok  # the supervisors' digest goes out: SMTP logs in too
    # IMAP (XOAUTH2) and SMTP (auto) are configured apart: one token source each.
    assert oauth.issued == 2
    # The provider revokes every token; by our clock the cached one is still valid.
    oauth.revoke_tokens()
    box.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))

    report = run_pass(app)

    assert report.ok, report.summary()
    assert report.fetched == 1 and len(acknowledgements(box)) == 1
    assert f"user=<{INFO}>, method=XOAUTH2" in box.dovecot_log()
    # Each side: refused once, renewed once, then cached again for the second mailbox.
    assert oauth.issued == 4
    assert box.smtp_handler.refusals == 1
    app.engine.dispose()


def test_check_shows_each_step_and_a_revoked_secret_loses_nothing(
    oauth: OAuthServer, box: OAuthSandbox, tmp_path: Path
) -> None:
    config = write_oauth_config(tmp_path / "mailbot.toml", box, tmp_path / "data")
    good = mailbot(config, environ(), "check")
    assert good.returncode == 0, good.stdout + good.stderr
    token_step = (
        f"ok   token for imap renseignements: from {oauth.token_endpoint}, client {CLIENT_ID}"
    )
    assert token_step in good.stdout
    assert f"ok   imap plaintes: logged in as {COMPLAINTS} with an OAuth2 token" in good.stdout
    assert f"logged in as {INFO} with an OAuth2 token" in good.stdout.split("smtp")[-1]

    oauth.revoke_secret(CLIENT_ID)
    for number in range(3):
        box.deliver(
            INFO,
            citizen_request(message_id=f"<revoked-{number}@example.org>"),
            received_at=office("2025-11-03T10:00"),
        )
    bad = mailbot(config, environ(), "check")
    run = mailbot(config, environ(), "run", "--once")

    assert bad.returncode == 1
    reason = "the client was refused: wrong client_id or secret, or the secret was revoked"
    failed_step = (
        f"FAIL token for imap renseignements: {oauth.token_endpoint}, client {CLIENT_ID}: "
    )
    assert failed_step + reason in bad.stdout
    assert "FAIL token for smtp" in bad.stdout
    assert SECRET not in bad.stdout + bad.stderr + run.stdout + run.stderr
    assert run.returncode == 1
    # Nothing was fetched, nothing moved: the three messages wait in the inbox.
    assert len(box.fetch_all(INFO)) == 3
    assert box.fetch_all(INFO, "Traites") == []
    assert acknowledgements(box) == []


def test_a_mailbox_not_granted_to_the_application_is_named_by_check(
    oauth: OAuthServer, tmp_path: Path
) -> None:
    only_info = start_box(oauth, (INFO,))
    try:
        config = write_oauth_config(tmp_path / "mailbot.toml", only_info, tmp_path / "data")
        result = mailbot(config, environ(), "check")
    finally:
        only_info.stop()
        shutil.rmtree(only_info.root, ignore_errors=True)
    assert result.returncode == 1
    assert "ok   imap renseignements" in result.stdout
    assert "FAIL imap plaintes" in result.stdout
    assert "the mailbox is not granted to the application" in result.stdout


def test_a_session_dropped_when_its_token_expires_is_reopened_without_loss_or_repeat(
    oauth: OAuthServer,
    box: OAuthSandbox,
    base_settings: Settings,
    tmp_path: Path,
    database_url: str,
) -> None:
    for number in range(6):
        box.deliver(
            INFO,
            citizen_request(message_id=f"<drop-{number}@example.org>", subject=f"Demande {number}"),
            received_at=office("2025-11-03T10:00"),
        )
    settings = oauth_settings(base_settings, box, tmp_path / "data", database_url)
    settings = settings.model_copy(
        update={"daemon": settings.daemon.model_copy(update={"fetch_batch": 2})}
    )
    app = build_app(settings, FixedClock(parse_instant("2025-11-03T10:01:00-05:00")), environ())
    seen = 0

    def expire_and_drop() -> bool:
        # Called before the mailbox and after each message: after the second message the
        # token expires and the server closes the session, as Exchange Online does.
        nonlocal seen
        seen += 1
        if seen == 3:
            oauth.revoke_tokens()
            box.kick(INFO)
        return False

    first = run_pass(app, should_stop=expire_and_drop)
    second = run_pass(app)

    assert not first.ok and "imap:renseignements" in first.errors
    # Two stored, then the session is gone (the move of their batch, or the next fetch,
    # fails): the next pass logs in with a new token, moves what was stored but not moved
    # without processing it again, and processes the four others.
    assert first.fetched == 2 and first.moved in (0, 2)
    assert second.ok, second.summary()
    assert second.fetched == 4 and first.moved + second.moved == 6
    assert oauth.issued == 2
    with app.engine.connect() as connection:
        refs = connection.execute(sa.text("SELECT ref FROM ticket")).scalars().all()
        stored = connection.execute(sa.text("SELECT COUNT(*) FROM inbound_message")).scalar()
    assert len(refs) == len(set(refs)) == 6 and stored == 6
    assert len(acknowledgements(box)) == 6
    assert box.fetch_all(INFO) == [] and len(box.fetch_all(INFO, "Traites")) == 6
    app.engine.dispose()


def test_the_daemon_runs_across_several_token_lifetimes_and_processes_each_message_once(
    box: OAuthSandbox, tmp_path: Path
) -> None:
    assert box.oauth is not None
    box.oauth.lifetime = 2.0  # seconds: the run below spans several token lifetimes
    config = write_oauth_config(tmp_path / "mailbot.toml", box, tmp_path / "data", poll_seconds=0.5)
    import os

    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
        cwd=REPO,
        env={**os.environ, **environ()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    total = 16
    try:
        for number in range(total):
            box.deliver(
                INFO,
                citizen_request(message_id=f"<daemon-{number}@example.org>", subject=f"N{number}"),
            )
            time.sleep(0.6)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(acknowledgements(box)) < total:
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    acks = acknowledgements(box)
    assert len(acks) == total, err[-3000:]
    # Every request acknowledged exactly once, each with its own ticket.
    subjects = sorted(
        str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"]) for raw in acks
    )
    assert len(set(subjects)) == total
    listed = mailbot(config, environ(), "tickets", "--json")
    assert len({ticket["ref"] for ticket in json.loads(listed.stdout)}) == total
    assert box.fetch_all(INFO) == [] and len(box.fetch_all(INFO, "Traites")) == total
    # Several tokens were needed; each login used a live one (the logs show no failure).
    assert box.oauth.issued >= 4
    assert "auth failed" not in box.dovecot_log()
    assert SECRET not in err


def test_a_session_closed_by_the_server_is_an_imap_error_at_every_step(
    oauth: OAuthServer,
    box: OAuthSandbox,
    base_settings: Settings,
    tmp_path: Path,
    database_url: str,
) -> None:
    # An ImapError ends the pass for that mailbox with a reason; anything else would stop
    # the pass for every mailbox.
    box.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    settings = oauth_settings(base_settings, box, tmp_path / "data", database_url)
    app = build_app(settings, FixedClock(parse_instant("2025-11-03T10:01:00-05:00")), environ())
    mailbox = settings.mailbox("renseignements")
    steps: list[Callable[[ImapMailbox], object]] = [
        lambda imap: imap.list_uids(),
        lambda imap: list(imap.fetch([1], 1_000_000)),
        lambda imap: imap.move([1], "Traites"),
    ]
    for step in steps:
        with ImapMailbox(settings.imap, app.logins.imap(mailbox), app.clock.now()) as imap:
            imap.select(mailbox.folder)
            box.kick(INFO)
            time.sleep(0.5)  # the server's BYE arrives
            with pytest.raises(ImapError):
                step(imap)
    assert box.fetch_all(INFO) != []  # still in the inbox
    app.engine.dispose()
