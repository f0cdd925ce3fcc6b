"""Seconds, not minutes: what wakes the daemon's passes.

`PassRequests` gathers what the next pass must look at: one mailbox (an IMAP IDLE
notification) or all of them (the poll, the reminder and digest times). The daemon's one
pass loop takes the requests and runs the passes one at a time, so a wake-up and a poll that
race never process a message twice within a process; across processes the database's keys
decide (mailbot/intake/ingest.py).

Over Microsoft Graph there is no IDLE: the daemon asks for a pass of every mailbox each
`[graph] poll_seconds`, and the pass's delta query finds the new mail
(mailbot/transport/graph_mailbox.py).

`IdleWatcher` keeps one IMAP connection per watched mailbox in IDLE (RFC 2177), on a thread
of its own: it asks for a pass when the server announces new mail, re-issues IDLE every
`idle_renew_minutes` (before the server's timeout), and reconnects with growing backoff when
the connection drops (a server restart, or a server that closes a session when its OAuth2
token expires: the next login takes a fresh token). A server without IDLE leaves the mailbox
to the poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailbot.app import App
from mailbot.errors import ImapError, MailbotError
from mailbot.logformat import log_fields
from mailbot.ops.health import Observed, imap_name
from mailbot.settings import MailboxSettings
from mailbot.transport.imap import ImapMailbox

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0


@dataclass
class PassRequests:
    """Thread-safe: which mailboxes the next pass must look at."""

    _condition: threading.Condition = field(default_factory=threading.Condition)
    _names: set[str] = field(default_factory=set)
    _everything: bool = False

    def mailbox(self, name: str) -> None:
        with self._condition:
            self._names.add(name)
            self._condition.notify_all()

    def mailboxes(self, names: Iterable[str]) -> None:
        """A pass of each of `names` (the Graph delta poll asks for its mailboxes so)."""
        with self._condition:
            self._names.update(names)
            self._condition.notify_all()

    def everything(self) -> None:
        with self._condition:
            self._everything = True
            self._condition.notify_all()

    def wake(self) -> None:
        """Wake the loop without asking for a pass (to see a stop request)."""
        with self._condition:
            self._condition.notify_all()

    def take(self, timeout: float) -> tuple[bool, frozenset[str]] | None:
        """Wait up to `timeout` seconds for a request; (everything, mailbox names) or None."""
        with self._condition:
            if not (self._everything or self._names):
                self._condition.wait(timeout)
            if not (self._everything or self._names):
                return None
            taken = (self._everything, frozenset(self._names))
            self._everything, self._names = False, set()
            return taken


class IdleWatcher(threading.Thread):
    """IMAP IDLE on one mailbox, asking for a pass whenever new mail lands."""

    def __init__(
        self,
        app: App,
        mailbox: MailboxSettings,
        on_mail: Callable[[str], None],
        stop: threading.Event,
        observed: Observed | None = None,
    ) -> None:
        super().__init__(name=f"idle-{mailbox.name}", daemon=True)
        self._app = app
        self._mailbox = mailbox
        self._on_mail = on_mail
        self._stop_event = stop
        self._observed = observed
        self._name = imap_name(mailbox.name)
        self.supported: bool | None = None  # None until the first login tells

    def run(self) -> None:
        delay = 1.0
        fields = log_fields(mailbox=self._mailbox.name)
        renew = self._app.settings.daemon.idle_renew_minutes * 60
        while not self._stop_event.is_set():
            try:
                login = self._app.logins.imap(self._mailbox)
                with ImapMailbox(self._app.settings.imap, login, self._app.clock.now()) as box:
                    if not box.supports_idle:
                        self.supported = False
                        log.info("the server offers no IDLE: the poll watches it", extra=fields)
                        return
                    self.supported = True
                    box.select(self._mailbox.folder)
                    self._alive(True)
                    # Whatever arrived while nobody watched is seen now.
                    self._on_mail(self._mailbox.name)
                    delay = 1.0
                    while not self._stop_event.is_set():
                        if box.wait_for_mail(renew, self._stop_event.is_set):
                            self._on_mail(self._mailbox.name)
            except (ImapError, MailbotError, OSError) as exc:
                self._alive(False)
                log.warning(
                    "IDLE connection lost (%s); reconnecting in %.0f s",
                    type(exc).__name__,
                    delay,
                    extra=fields,
                )
                self._stop_event.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        self._alive(False)

    def _alive(self, alive: bool) -> None:
        """Tell the health check whether the IDLE connection holds."""
        if self._observed is None:
            return
        if alive:
            self._observed.reached(self._name, self._app.clock.now())
        self._observed.idle(self._name, alive)
