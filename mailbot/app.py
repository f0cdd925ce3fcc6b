"""The one shared context: everything mailbot's stages need, built once from the settings.

`App` holds the configuration, the one clock, the database engine, the renderer, the business
calendar, the signing key, and the two effects at the edges: how to open a mailbox
(`Mailbox`, IMAP by default) and how to send (`Sender`, SMTP by default); both go through
Microsoft Graph when the configuration has a `[graph]` section. Tests build it with
in-memory mailboxes and senders; nothing else reads the environment or the wall clock.

Two checks every writing command makes on the `App` live here too: `guard_clock` (one kind
of clock writes a database) and `reconcile_pending` (a restore left the database to
reconcile with the mail store).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from mailbot.clock import Clock
from mailbot.db.backup import RECONCILE_PENDING
from mailbot.db.service_state import claim_meta, meta_value
from mailbot.errors import ClockRefused, ConfigError
from mailbot.mail.canned import CannedAnswers, load_answers
from mailbot.standards.business_calendar import BusinessCalendar, build_calendar

if TYPE_CHECKING:
    from mailbot.transport.graph import GraphClient
from mailbot.db.store import make_engine, migrate, reading
from mailbot.mail.render import Renderer
from mailbot.settings import Settings
from mailbot.transport.base import MailboxOpener, Sender
from mailbot.transport.imap import imap_opener
from mailbot.transport.logins import Logins
from mailbot.transport.parse_ahead import ParseAhead
from mailbot.transport.smtp import SmtpSender

log = logging.getLogger(__name__)

LIVE, REPLAY = "live", "replay"


@dataclass(frozen=True, slots=True)
class App:
    """Everything a pass needs, built once from the settings."""

    settings: Settings
    engine: Engine
    clock: Clock
    renderer: Renderer
    calendar: BusinessCalendar
    signing_key: bytes
    logins: Logins  # kept for the process's life: OAuth2 tokens are cached across passes
    open_mailbox: MailboxOpener
    sender: Sender
    parse_ahead: ParseAhead  # a worker process parsing a backlog's next messages
    answers: CannedAnswers = field(default_factory=CannedAnswers)  # checked at start-up
    # Microsoft Graph's client, when Graph carries the mail instead of IMAP and SMTP.
    graph: GraphClient | None = None


def load_signing_key(settings: Settings, environ: Mapping[str, str]) -> bytes:
    """The key from the environment, else a key file in the data directory (made once)."""
    value = environ.get(settings.organisation.signing_key_env)
    if value:
        if len(value) < 16:
            raise ConfigError(f"{settings.organisation.signing_key_env} must be 16+ characters")
        return value.encode()
    path = settings.data_dir / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole beside it, then linked into place: two mailbots started together on
        # a new data folder both find one complete key (the second link fails, harmlessly).
        partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)
            log.info("created a signing key in %s", path)
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
    return path.read_text().strip().encode()


def build_app(
    settings: Settings,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    engine: Engine | None = None,
    *,
    open_mailbox: MailboxOpener | None = None,
    sender: Sender | None = None,
) -> App:
    """The context for `settings`, its schema migrated; IMAP and SMTP unless others are given."""
    env = os.environ if environ is None else environ
    answers = load_answers(settings.answers.dir, settings.templates_dir)
    engine = engine or make_engine(settings.database_url)
    migrate(engine)
    logins = Logins(settings, env)
    graph = None
    if settings.graph is not None and (open_mailbox is None or sender is None):
        graph, graph_mailbox, graph_sender = _graph_transport(settings, logins, clock, engine)
        open_mailbox = open_mailbox or graph_mailbox
        sender = sender or graph_sender
    return App(
        settings=settings,
        engine=engine,
        clock=clock,
        renderer=Renderer(settings.templates_dir, answer_names=answers.names),
        calendar=build_calendar(settings.calendar, settings.organisation.timezone),
        signing_key=load_signing_key(settings, env),
        logins=logins,
        open_mailbox=open_mailbox or imap_opener(settings.imap, logins),
        sender=sender or SmtpSender(settings.smtp, logins),
        parse_ahead=ParseAhead(enabled=settings.daemon.parse_worker),
        answers=answers,
        graph=graph,
    )


def _graph_transport(
    settings: Settings, logins: Logins, clock: Clock, engine: Engine
) -> tuple[GraphClient, MailboxOpener, Sender]:
    """Graph's client, mailbox opener and sender (needs the "microsoft" extra)."""
    from mailbot.transport.graph import GraphClient
    from mailbot.transport.graph_mailbox import graph_opener
    from mailbot.transport.graph_sender import GraphSender

    assert settings.graph is not None
    client = GraphClient(settings.graph, logins.graph(), clock.now)
    # Sent as a watched mailbox only: a notes address receives, it never sends.
    senders = frozenset(mailbox.address.lower() for mailbox in settings.mailboxes)
    return client, graph_opener(client, engine), GraphSender(client, senders)


def guard_clock(app: App) -> None:
    """Refuse to mix replayed and real time in one database.

    The first command that writes a database fixes which clock writes it from then on: the
    real one (a live database) or `--now` (a replay database: tests, demos, audits on a
    copy). A pass as of another instant on a live database would record late answers, send
    reminders early and use up today's digest; the real clock on a replay database would mix
    invented dates with real ones. Both are refused before anything is written.
    """
    wanted = REPLAY if app.clock.replays else LIVE
    with app.engine.begin() as connection:
        mode = claim_meta(connection, "clock", wanted)
    if mode == wanted:
        return
    if mode == LIVE:
        raise ClockRefused(
            "--now cannot write to this database: it is a live one (written by the real "
            "clock). Read-only commands (report, tickets, show, due) accept --now; replay a "
            "pass on a separate database (MAILBOT_DATABASE_URL) against test mail servers"
        )
    raise ClockRefused(
        "this database holds replayed time (it was written under --now): the real clock "
        "never writes to it; give --now, or point mailbot at the live database"
    )


def reconcile_pending(app: App) -> bool:
    """A restore left the database to reconcile with the mail store
    (mailbot/recovery/reconcile.py)."""
    with reading(app.engine) as connection:
        return meta_value(connection, RECONCILE_PENDING) is not None
