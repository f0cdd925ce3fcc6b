"""`mailbot sandbox demo|serve|send`: show the whole path on a throwaway mail system, and put
mail into a running one."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import smtplib
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from mailbot.clock import Clock
from mailbot.db.store import reading
from mailbot.errors import ConfigError, MailbotError
from mailbot.sandbox.servers import (
    CATCH_ALL,
    SANDBOX_PASSWORD,
    Sandbox,
    maildir_for,
    make_sandbox_dir,
    unreachable_parent,
    write_state,
)
from mailbot.settings import (
    PACKAGE_ROOT,
    DatabaseSettings,
    Settings,
    config_path,
    load_settings,
)

SAMPLES = (
    ("josee.tremblay@example.org", "renseignements@mri.gouv.qc.ca", "demande.eml"),
    ("marc.gagnon@example.net", "plaintes@mri.gouv.qc.ca", "plainte.eml"),
)
# The sample mail ships inside the package, so the demo works from any directory and from
# a wheel; so does the example configuration, used when no other is given.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
EXAMPLE_CONFIG = next(
    (
        path
        for path in (
            PACKAGE_ROOT.parent / "config" / "mailbot.toml",
            PACKAGE_ROOT / "config" / "mailbot.toml",
        )
        if path.exists()
    ),
    PACKAGE_ROOT / "config" / "mailbot.toml",
)
DEFAULT_SERVE_DIR = Path(".sandbox")
SERVE_IMAP_PORT = 10143
SERVE_SMTP_PORT = 10025


def sandbox_environ(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The environment mailbot needs against the sandbox: every password is the same."""
    env = dict(base)
    for mailbox in settings.mailboxes:
        env.setdefault(mailbox.password_env, SANDBOX_PASSWORD)
    if settings.smtp.password_env:
        env.setdefault(settings.smtp.password_env, SANDBOX_PASSWORD)
    return env


def sandbox_settings(settings: Settings, sandbox: Sandbox, data_dir: Path) -> Settings:
    """`settings` pointed at the sandbox's ports, with its own data directory and database."""
    return settings.model_copy(
        update={
            "imap": settings.imap.model_copy(
                update={"host": "127.0.0.1", "port": sandbox.imap_port, "tls": "none"}
            ),
            "smtp": settings.smtp.model_copy(
                update={
                    "host": "127.0.0.1",
                    "port": sandbox.smtp_port,
                    "tls": "none",
                    "username": None,
                    "password_env": None,
                }
            ),
            "data_dir": data_dir,
            "database": DatabaseSettings(url=f"sqlite:///{data_dir / 'mailbot.db'}"),
        }
    )


def sandbox_config(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """--config, else $MAILBOT_CONFIG, else config/mailbot.toml here, else the example
    configuration shipped with mailbot."""
    chosen = config_path(explicit, environ)
    if explicit or environ.get("MAILBOT_CONFIG") or chosen.exists():
        return chosen
    return EXAMPLE_CONFIG


@dataclass(frozen=True)
class SendRequest:
    """`mailbot sandbox send`: who writes, to which mailbox or address, and what."""

    sender: str
    to: str
    subject: str | None = None
    body: str | None = None
    file: Path | None = None


def serve_dir(explicit: Path | None) -> Path:
    """Where `serve` keeps the sandbox and `send` finds it: --dir, else .sandbox here, else
    (root in a folder Dovecot's mail user cannot enter, such as /root) a folder of the
    system's temporary directory."""
    if explicit is not None:
        return explicit
    if unreachable_parent(DEFAULT_SERVE_DIR / "mail") is None:
        return DEFAULT_SERVE_DIR
    fallback = Path(tempfile.gettempdir()) / f"mailbot-sandbox-{os.getuid()}"
    # A shared temporary directory: a folder of that name someone else made is not ours.
    if fallback.is_symlink() or (fallback.exists() and fallback.stat().st_uid != os.getuid()):
        raise ConfigError(f"sandbox: {fallback} exists and is not yours; give --dir")
    return fallback


def run_sandbox_command(
    action: str,
    directory: Path | None,
    clock: Clock,
    config: str | None = None,
    send: SendRequest | None = None,
) -> int:
    directory = serve_dir(directory)
    path = sandbox_config(config, os.environ)
    settings = load_settings(path)
    if action == "send":
        assert send is not None
        return _send(directory, settings, send)
    if path == EXAMPLE_CONFIG and not config:
        print(f"(the example configuration {path}; give --config to use yours)")
    if action == "serve":
        return _serve(directory, settings, path)
    return _demo(settings, SAMPLES_DIR, clock)


def recipient_address(settings: Settings, to: str) -> str:
    """A mailbox's name (`renseignements`) or any address, as the address to write to."""
    if "@" in to:
        return to
    for mailbox in settings.mailboxes:
        if mailbox.name == to:
            return mailbox.address
    names = ", ".join(mailbox.name for mailbox in settings.mailboxes)
    raise ConfigError(f"sandbox send: no mailbox {to!r} (the mailboxes: {names}), nor an address")


def sandbox_message(request: SendRequest, recipient: str, raw: bytes | None) -> bytes:
    """The message to send: FILE.eml as it is (From and Subject replaced when given), or a
    short request written for the occasion."""
    if raw is not None:
        message = email.message_from_bytes(raw, policy=email.policy.SMTP)
        replaced = {"From": request.sender, "Subject": request.subject}
        for name, value in replaced.items():
            if value is not None:
                del message[name]
                message[name] = value
        if message["To"] is None:
            message["To"] = recipient
        if message["Message-ID"] is None:
            message["Message-ID"] = make_msgid(domain="sandbox.test")
        if message["Date"] is None:
            message["Date"] = formatdate(localtime=True)
        return message.as_bytes()
    written = EmailMessage(policy=email.policy.SMTP)
    written["From"] = request.sender
    written["To"] = recipient
    written["Subject"] = request.subject or "Demande de renseignements"
    written["Date"] = formatdate(localtime=True)
    written["Message-ID"] = make_msgid(domain="sandbox.test")
    written.set_content(
        request.body or "Bonjour,\n\nJ'aimerais obtenir des renseignements.\n\nMerci.\n"
    )
    return written.as_bytes()


def _sandbox_smtp_port(directory: Path) -> int:
    """The port of the sandbox `serve` keeps in `directory`, else serve's usual port."""
    state = directory / "state.json"
    if not state.exists():
        return SERVE_SMTP_PORT
    try:
        return int(json.loads(state.read_text())["smtp_port"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"sandbox send: {state} is not a sandbox's state file") from exc


def _send(directory: Path, settings: Settings, request: SendRequest) -> int:
    recipient = recipient_address(settings, request.to)
    raw = None
    if request.file is not None:
        try:
            raw = request.file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"sandbox send: cannot read {request.file}: {exc.strerror}") from exc
    message = sandbox_message(request, recipient, raw)
    port = _sandbox_smtp_port(directory)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail(request.sender, [recipient], message)
    except smtplib.SMTPRecipientsRefused as exc:
        [(code, text)] = exc.recipients.values()
        reply = text.decode(errors="replace")
        raise MailbotError(f"sandbox send: refused: {code} {reply}") from exc
    except smtplib.SMTPException as exc:  # before OSError, of which it is a kind
        raise MailbotError(f"sandbox send: {exc}") from exc
    except OSError as exc:
        raise MailbotError(
            f"sandbox send: nothing answers on 127.0.0.1:{port} ({exc.strerror or exc}); "
            "start the sandbox first: mailbot sandbox serve"
        ) from exc
    print(f"sent from {request.sender} to {recipient}; `mailbot run --once` will read it")
    return 0


def sandbox_config_copy(example: str, data_dir: Path) -> str:
    """The example configuration with its data directory made absolute (`data_dir`): the
    other commands run from any folder with it, and never write inside the package."""
    line = re.compile(r"^data_dir\s*=.*$", re.M)
    value = json.dumps(str(data_dir))  # a TOML basic string
    if not line.search(example):
        return f"data_dir = {value}\n{example}"
    return line.sub(lambda _match: f"data_dir = {value}", example, count=1)


def _serve(directory: Path, settings: Settings, config: Path) -> int:
    if directory != DEFAULT_SERVE_DIR:
        print(f"(the sandbox is kept in {directory}; `mailbot sandbox send` finds it there)")
    sandbox = Sandbox(
        root=directory.resolve(),
        imap_port=SERVE_IMAP_PORT,
        smtp_port=SERVE_SMTP_PORT,
        catch_all=CATCH_ALL,
    )
    sandbox.start()
    try:
        write_state(sandbox, directory / "state.json")
    except BaseException:
        sandbox.stop()  # never left running behind a command that failed
        raise
    print(
        f"sandbox running: IMAP 127.0.0.1:{sandbox.imap_port}, "
        f"SMTP 127.0.0.1:{sandbox.smtp_port}, every password is {SANDBOX_PASSWORD!r}"
    )
    done = threading.Event()
    try:
        if config == EXAMPLE_CONFIG:
            # The other commands find no configuration in an empty folder: give them one.
            copy = directory.resolve() / "mailbot.toml"
            copy.write_text(
                sandbox_config_copy(config.read_text(encoding="utf-8"), copy.parent / "data"),
                encoding="utf-8",
            )
            print(f"  export MAILBOT_CONFIG={copy}")
        for mailbox in settings.mailboxes:
            print(f"  export {mailbox.password_env}={SANDBOX_PASSWORD}")
        first = settings.mailboxes[0].name if settings.mailboxes else "renseignements"
        print(
            "put a message in (another terminal):\n"
            f"  mailbot sandbox send [FILE.eml] --from lea.roy@example.org --to {first} "
            "[--subject TEXT]\n"
            "then: mailbot run --once; mailbot tickets\n"
            f"its SMTP delivers to any address; mail for addresses that are not sandbox users "
            f"is kept for {CATCH_ALL} (IMAP login, password {SANDBOX_PASSWORD!r}; files in "
            f"{maildir_for(sandbox.root, CATCH_ALL)}/new)"
        )
        print("stop with Ctrl-C")
        stopped_by: list[int] = []

        def stop(signum: int, _frame: object) -> None:
            stopped_by.append(signum)
            done.set()

        # Both set here: a process started in the background inherits SIGINT ignored.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        done.wait()
        if signal.SIGINT in stopped_by:
            return 130  # Ctrl-C, as every command (README, "Exit codes")
    except KeyboardInterrupt:
        return 130
    finally:
        sandbox.stop()
    return 0


def _demo(settings: Settings, samples: Path, clock: Clock) -> int:
    root = make_sandbox_dir("mailbot-demo-")
    try:
        return _demo_in(settings, samples, clock, root)
    finally:
        # The sandbox is stopped by now, whatever happened; its files stay for a look.
        print(f"\nThe demo's files (mail system, database) are in {root}; remove them with:")
        print(f"  rm -rf {root}")


def _demo_in(settings: Settings, samples: Path, clock: Clock, root: Path) -> int:
    from mailbot.app import build_app
    from mailbot.db.ticket_rows import ticket_records
    from mailbot.ops.passes import run_pass
    from mailbot.reporting.shapes import office_minute, ticket_json

    zone = settings.organisation.zone
    with Sandbox(root=root / "mail-system", catch_all=CATCH_ALL) as sandbox:
        demo = sandbox_settings(settings, sandbox, root / "data")
        print(
            f"1. Sandbox started in {root}: Dovecot on 127.0.0.1:{sandbox.imap_port}, "
            f"SMTP on 127.0.0.1:{sandbox.smtp_port}."
        )
        for sender, recipient, name in SAMPLES:
            # Arrival at the clock's instant, so `--now` replays a whole day consistently.
            sandbox.deliver(recipient, (samples / name).read_bytes(), received_at=clock.now())
            print(f"2. {sender} wrote to {recipient} ({name}).")
        app = build_app(demo, clock, sandbox_environ(demo, os.environ))
        report = run_pass(app)
        print(f"3. mailbot run --once: {report.summary()}")
        with reading(app.engine) as connection:
            for record in ticket_records(connection):
                data = ticket_json(record)
                print(
                    f"4. Ticket {data['ref']} ({data['category']}) for {data['requester']}: "
                    f"received {data['receipt_date']}, answer due {data['due_date']}, "
                    f"acknowledged {office_minute(data['acknowledged_at'], zone)}"
                )
        for sender, _recipient, _name in SAMPLES:
            for raw in sandbox.fetch_all(sender):
                message = email.message_from_bytes(raw, policy=email.policy.default)
                body = message.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                print(f"\n5. In {sender}'s mailbox:")
                for header in ("From", "To", "Subject", "In-Reply-To", "Auto-Submitted"):
                    print(f"   {header}: {message[header]}")
                print("   " + "\n   ".join(str(text).strip().splitlines()))
        for staff in sorted({a for m in demo.mailboxes for a in (*m.staff, *m.supervisors)}):
            subjects = [
                str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
                for raw in sandbox.fetch_all(staff)
            ]
            if subjects:
                print(f"\n6. In {staff}'s mailbox (staff):")
                print("   " + "\n   ".join(subjects))
        app.engine.dispose()
    return 0 if report.ok else 1
