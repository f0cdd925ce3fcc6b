"""A throwaway mail system for newcomers and tests: Dovecot (IMAP) and an SMTP server.

Dovecot runs from a private directory on free loopback ports with its own configuration;
the SMTP server (aiosmtpd) accepts mail for the sandbox's users (and their plus addresses,
`user+tag@domain`, delivered to `user@domain` as Exchange Online, Gmail and a Postfix with
`recipient_delimiter = +` do) and, with a catch-all mailbox (as `mailbot sandbox serve` and
`demo` run it), for any other address too, kept in that mailbox; it delivers into the
Maildir the way a local delivery agent does (write to tmp/, rename into new/), adding the
Return-Path, Delivered-To and Received headers a real MTA adds. Nothing here touches the
system's own mail configuration. Used by `mailbot sandbox`, the README's first
command and the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailbot.errors import MailbotError

SANDBOX_PASSWORD = "sandbox"
MINISTRY_ADDRESSES = (
    "renseignements@mri.gouv.qc.ca",
    "plaintes@mri.gouv.qc.ca",
    "stages@mri.gouv.qc.ca",
    "cooperation@mri.gouv.qc.ca",
)
STAFF_ADDRESSES = (
    "agent.info@mri.gouv.qc.ca",
    "agent.plaintes@mri.gouv.qc.ca",
    "superviseur@mri.gouv.qc.ca",
)
CITIZEN_ADDRESSES = (
    "josee.tremblay@example.org",
    "john.smith@example.com",
    "marc.gagnon@example.net",
)
DEFAULT_USERS = (*MINISTRY_ADDRESSES, *STAFF_ADDRESSES, *CITIZEN_ADDRESSES)
# Mail for any other address is kept here (an IMAP login like the others): the sandbox's
# relay delivers to every address, as a real one does, and nothing sent is lost.
CATCH_ALL = "catch-all@sandbox.test"
DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")


class SandboxError(MailbotError):
    """The sandbox could not be started (Dovecot missing, a port taken, a bad state file)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_sandbox_dir(prefix: str) -> Path:
    """A fresh temporary directory that Dovecot's mail processes (another user) can enter."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)
    return root


def find_dovecot() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return next((path for path in DOVECOT_CANDIDATES if os.access(path, os.X_OK)), None)


def _wait_for_port(port: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise SandboxError(f"nothing answered on 127.0.0.1:{port} after {seconds:.0f} s")


def maildir_for(root: Path, address: str) -> Path:
    return root / "mail" / address.lower() / "Maildir"


def mail_owner() -> tuple[int, int]:
    """The uid/gid that owns the sandbox's mail: Dovecot refuses uid 0, so root uses `mail`."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    import pwd

    entry = pwd.getpwnam("mail")
    return entry.pw_uid, entry.pw_gid


def _make_owned_dirs(path: Path, stop: Path) -> None:
    uid, gid = mail_owner()
    missing = []
    while not path.exists() and path != stop:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        os.chown(directory, uid, gid)


def make_maildir(root: Path, address: str) -> Path:
    maildir = maildir_for(root, address)
    for sub in ("tmp", "new", "cur"):
        _make_owned_dirs(maildir / sub, root)
    return maildir


def deliver_to_maildir(
    root: Path, address: str, raw: bytes, received_at: datetime | None = None
) -> Path:
    """Deliver like an LDA: write into tmp/, rename into new/; mtime becomes INTERNALDATE."""
    maildir = make_maildir(root, address)
    name = f"{time.time_ns()}.{uuid.uuid4().hex}.sandbox"
    tmp = maildir / "tmp" / name
    tmp.write_bytes(raw)
    uid, gid = mail_owner()
    os.chown(tmp, uid, gid)
    if received_at is not None:
        stamp = received_at.timestamp()
        os.utime(tmp, (stamp, stamp))
    final = maildir / "new" / name
    tmp.rename(final)
    return final


def password_auth_lines(root: Path) -> list[str]:
    """Dovecot's authentication: every user logs in with the sandbox password."""
    return [
        "auth_mechanisms = plain login",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN username_format=%Lu {root}/passwd",
        "}",
    ]


# doveadm kick's exit status when the user had no session to close.
KICKED_NOBODY = 68
# Dovecot's capabilities without IDLE: a server that mailbot must poll.
NO_IDLE_CAPABILITY = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY STATUS=SIZE "
    "SAVEDATE"
)


def _dovecot_config(
    root: Path, imap_port: int, auth_lines: Sequence[str], *, idle: bool = True
) -> str:
    is_root = os.geteuid() == 0
    uid, gid = mail_owner()
    internal_user = "dovecot" if is_root else _user_name()
    login_user = "dovenull" if is_root else _user_name()
    lines = [
        f"base_dir = {root}/run",
        f"state_dir = {root}/state",
        f"log_path = {root}/dovecot.log",
        f"info_log_path = {root}/dovecot.log",
        "protocols = imap",
        "listen = 127.0.0.1",
        "ssl = no",
        "disable_plaintext_auth = no",
        *auth_lines,
        f"default_internal_user = {internal_user}",
        f"default_login_user = {login_user}",
        f"first_valid_uid = {uid}",
        "mail_location = maildir:~/Maildir",
        # Plus addresses (renseignements+note@...) belong to their user, as in production.
        "recipient_delimiter = +",
        "mail_fsync = never",
        "mailbox_list_index = yes",
        "imap_capability = +MOVE" if idle else f"imap_capability = {NO_IDLE_CAPABILITY}",
        "userdb {",
        "  driver = static",
        f"  args = uid={uid} gid={gid} home={root}/mail/%Lu",
        "}",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {imap_port}",
        "  }",
        "  inet_listener imaps {",
        "    port = 0",
        "  }",
        "}",
        "service anvil {",
        "  chroot =",
        "}",
        "service imap-login {",
        "  chroot =",
        "}",
        "protocol imap {",
        "  mail_max_userip_connections = 50",
        "}",
    ]
    # The auth processes read the passwd file inside a private (0700) directory.
    lines += [
        "service auth {",
        f"  user = {_user_name()}",
        "}",
        "service auth-worker {",
        f"  user = {_user_name()}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def unreachable_parent(root: Path) -> Path | None:
    """The first folder above `root` that Dovecot's mail processes could not enter, or None.
    Only root runs them as another user (`mail`); anyone else reaches what they can."""
    if os.geteuid() != 0:
        return None
    for parent in root.resolve().parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return parent
    return None


def _check_traversable(root: Path) -> None:
    parent = unreachable_parent(root)
    if parent is not None:
        raise SandboxError(
            f"the sandbox directory must be reachable by the mail user; {parent} is not "
            f"(mode {parent.stat().st_mode & 0o777:o}): give --dir a folder that every user "
            "may enter, such as /tmp/mailbot-sandbox"
        )


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


@dataclass
class _SmtpHandler:
    """aiosmtpd hook: accept mail for sandbox users only, deliver it into their Maildir."""

    root: Path
    users: frozenset[str]
    delivered: list[tuple[str, str]] = field(default_factory=list)
    # Where mail for an address outside `users` goes; None: such a recipient is refused.
    catch_all: str | None = None
    # A list keeps each message's DATA exactly as the server received it, for tests of the
    # wire form; None (the default) keeps nothing, so a long-running sandbox does not grow.
    received: list[bytes] | None = None
    # Whether `user+tag@domain` is delivered to `user@domain` (off: refused like an unknown
    # address, as where plus addressing is turned off).
    plus_addressing: bool = True

    def user_of(self, address: str) -> str | None:
        """The sandbox user whose mailbox `address` reaches, or None."""
        address = address.lower()
        if address in self.users:
            return address
        local, _, domain = address.rpartition("@")
        base = f"{local.split('+', 1)[0]}@{domain}"
        return base if self.plus_addressing and "+" in local and base in self.users else None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.user_of(address) is None and self.catch_all is None:
            return "550 5.1.1 No such user in the sandbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = datetime.now(UTC)
        sender = (envelope.mail_from or "").strip("<>")
        content = envelope.original_content or b""
        if self.received is not None:
            self.received.append(content)
        for recipient in envelope.rcpt_tos:
            prefix = (
                f"Return-Path: <{sender}>\r\n"
                f"Delivered-To: {recipient}\r\n"
                f"Received: from {session.host_name or 'unknown'} by sandbox.localhost "
                f"with SMTP for <{recipient}>; {format_datetime(now)}\r\n"
            ).encode()
            mailbox = self.user_of(recipient) or self.catch_all or recipient
            deliver_to_maildir(self.root, mailbox, prefix + content)
            self.delivered.append((sender, recipient.lower()))
        return "250 2.0.0 Delivered"


@dataclass
class Sandbox:
    """Dovecot and an SMTP server in `root`, on free ports, with one password for all users."""

    root: Path
    users: Sequence[str] = DEFAULT_USERS
    imap_port: int = 0
    smtp_port: int = 0
    # Whether the SMTP server offers SMTPUTF8 (RFC 6531), as most relays do.
    smtputf8: bool = True
    # Whether Dovecot offers IDLE (RFC 2177), as most IMAP servers do.
    idle: bool = True
    # Whether the SMTP server delivers plus addresses to their user (user+tag@domain).
    plus_addressing: bool = True
    # The largest message the SMTP server takes, announced in its EHLO (SIZE, RFC 1870);
    # larger ones are refused with 552. aiosmtpd's own default: 32 MiB.
    size_limit: int = 2**25
    # The mailbox that keeps mail for addresses outside `users` (None: the relay refuses them,
    # 550 5.1.1, which the tests of failed deliveries rely on). `mailbot sandbox` sets it.
    catch_all: str | None = None
    _dovecot: subprocess.Popen[bytes] | None = None
    _smtp: Any = None
    handler: _SmtpHandler | None = None

    def start(self) -> Sandbox:
        """Both servers, or neither: a half-started sandbox is stopped before the error."""
        self.start_imap()
        try:
            self.start_smtp()
        except BaseException:
            self.stop()
            raise
        return self

    def start_imap(self) -> None:
        binary = find_dovecot()
        if binary is None:
            raise SandboxError(
                "Dovecot is not installed: run `apt-get install dovecot-imapd` "
                "(scripts/bootstrap does it for you)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        # Mail processes run as the mail owner, which must reach the Maildirs below root.
        self.root.chmod(0o711)
        for sub in ("run", "state"):
            (self.root / sub).mkdir(exist_ok=True)
        _make_owned_dirs(self.root / "mail", self.root)
        _check_traversable(self.root)
        logins = (*self.users, *([self.catch_all] if self.catch_all else []))
        (self.root / "passwd").write_text(
            "".join(f"{user.lower()}:{SANDBOX_PASSWORD}::::::\n" for user in logins)
        )
        for user in logins:
            make_maildir(self.root, user)
        self.imap_port = self.imap_port or free_port()
        config = self.root / "dovecot.conf"
        config.write_text(
            _dovecot_config(self.root, self.imap_port, self.auth_lines(), idle=self.idle)
        )
        self._dovecot = subprocess.Popen(
            [binary, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "dovecot.stderr", "ab"),  # noqa: SIM115 - kept for the process
            start_new_session=True,
        )
        try:
            _wait_for_port(self.imap_port)
        except SandboxError as exc:
            self.stop_imap()
            log = (self.root / "dovecot.stderr").read_text(errors="replace")[-2000:]
            raise SandboxError(f"Dovecot did not start: {exc}\n{log}") from exc

    def auth_lines(self) -> list[str]:
        return password_auth_lines(self.root)

    def smtp_options(self) -> dict[str, Any]:
        """Extra aiosmtpd SMTP options (a subclass changes how logins work)."""
        return {}

    def start_smtp(self) -> None:
        from aiosmtpd.controller import Controller

        self.smtp_port = self.smtp_port or free_port()
        self.handler = self.handler or _SmtpHandler(
            self.root,
            frozenset(user.lower() for user in (*self.users, *filter(None, [self.catch_all]))),
            catch_all=self.catch_all,
            plus_addressing=self.plus_addressing,
        )
        self._smtp = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.smtp_port,
            server_hostname="sandbox.localhost",
            enable_SMTPUTF8=self.smtputf8,
            data_size_limit=self.size_limit,
            **self.smtp_options(),
        )
        self._smtp.start()

    def stop_smtp(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    def stop_imap(self) -> None:
        if self._dovecot is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._dovecot.pid, signal.SIGTERM)
            try:
                self._dovecot.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._dovecot.pid, signal.SIGKILL)
                self._dovecot.wait(5)
            self._dovecot = None

    def crash_imap(self) -> None:
        """Kill Dovecot and its sessions at once (SIGKILL): connections end without a BYE."""
        if self._dovecot is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._dovecot.pid, signal.SIGKILL)
            self._dovecot.wait(10)
            self._dovecot = None

    def stop(self) -> None:
        self.stop_smtp()
        self.stop_imap()

    def accept_mail_for(self, *addresses: str) -> None:
        """Let the SMTP server take mail for more addresses (read back with `delivered`);
        they get a Maildir but no IMAP login."""
        assert self.handler is not None, "start the SMTP server first"
        self.handler.users = self.handler.users | {a.lower() for a in addresses}

    def deliver(self, address: str, raw: bytes, received_at: datetime | None = None) -> None:
        """Put a message straight into `address`'s inbox, as if it had just arrived."""
        deliver_to_maildir(self.root, address, raw, received_at)

    def kick(self, user: str) -> bool:
        """Close `user`'s IMAP sessions, as a server does on a restart or when a token
        expires (doveadm kick); False when `user` had none open."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        done = subprocess.run(
            [doveadm, "-c", str(self.root / "dovecot.conf"), "kick", user],
            capture_output=True,
            timeout=30,
        )
        if done.returncode not in (0, KICKED_NOBODY):
            raise SandboxError(f"doveadm kick: exit {done.returncode}: {done.stderr!r}")
        return done.returncode == 0

    def delivered_to(self, address: str) -> list[bytes]:
        """What the SMTP server delivered to `address`, read from its Maildir (no IMAP)."""
        maildir = maildir_for(self.root, address)
        files = [*maildir.glob("new/*"), *maildir.glob("cur/*")]
        return [path.read_bytes() for path in sorted(files, key=lambda path: path.name)]

    def fetch_all(self, address: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in `address`'s folder, as raw bytes, oldest first (via IMAP)."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=15) as client:
            client.login(address, SANDBOX_PASSWORD)
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
            return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def describe(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "imap_port": self.imap_port,
            "smtp_port": self.smtp_port,
            "password": SANDBOX_PASSWORD,
            "users": list(self.users),
            "catch_all": self.catch_all,
        }

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_sandbox(root: Path, users: Sequence[str] = DEFAULT_USERS) -> Iterator[Sandbox]:
    sandbox = Sandbox(root=root, users=users)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def write_state(sandbox: Sandbox, path: Path) -> None:
    path.write_text(json.dumps(sandbox.describe(), indent=2))
