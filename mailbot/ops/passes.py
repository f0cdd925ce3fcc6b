"""One pass of mailbot: every mailbox's new mail, the scheduled jobs, then the outbox.

One direction: IMAP -> store each message with its outcome (one transaction per batch) ->
move it on the server -> the staff acts a supervisor released are applied, and people past
their hourly limit are alerted -> the jobs add their outgoing rows -> the daily retention
run, once a business day -> the outbox worker sends. The
scheduler (mailbot/ops/daemon.py) only wakes passes up; what is due is in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailbot.app import App, guard_clock, reconcile_pending
from mailbot.errors import ImapError
from mailbot.intake.ingest import IngestReport, ingest_mailbox
from mailbot.logformat import log_fields
from mailbot.privacy.ledger import start_new_database
from mailbot.privacy.retention import run_if_due
from mailbot.recovery.journal import keep_sent_copies
from mailbot.reporting.jobs import run_due_jobs
from mailbot.sending.outbox import FlushReport, SendPolicy, flush_outbox
from mailbot.sending.pacing import review_pacing
from mailbot.settings import MailboxSettings
from mailbot.staff.release import replay_released, review_held_acts
from mailbot.tickets.clocks import meet_sent
from mailbot.tickets.failures import report_failures

log = logging.getLogger(__name__)

StopCheck = Callable[[], bool]


@dataclass
class PassReport:
    """What one pass did, for the exit code and the log."""

    ingest: IngestReport = field(default_factory=IngestReport)
    outbox: FlushReport = field(default_factory=FlushReport)
    errors: list[str] = field(default_factory=list)
    # Per mailbox: the outcomes of its messages, and whether its server answered.
    by_mailbox: dict[str, dict[str, int]] = field(default_factory=dict)
    reached: list[str] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return self.ingest.fetched

    @property
    def moved(self) -> int:
        return self.ingest.moved

    @property
    def outcomes(self) -> dict[str, int]:
        return self.ingest.outcomes

    @property
    def ok(self) -> bool:
        return not self.errors and not self.outbox.unreachable

    def summary(self) -> str:
        parts = [f"fetched={self.ingest.fetched}"]
        parts += [f"{name}={n}" for name, n in sorted(self.ingest.outcomes.items())]
        parts += [
            f"moved={self.ingest.moved}",
            f"sent={self.outbox.sent}",
            f"retrying={self.outbox.retrying}",
            f"failed={self.outbox.failed}",
        ]
        if self.outbox.unreachable:
            parts.append("smtp=unreachable")
        parts += [f"error={error}" for error in self.errors]
        return " ".join(parts)


def run_pass(
    app: App,
    should_stop: StopCheck = lambda: False,
    *,
    mailboxes: Sequence[MailboxSettings] | None = None,
) -> PassReport:
    """One pass: the new mail of `mailboxes` (default: every one), the jobs that are due,
    then the outbox. A restored database is first reconciled with the mail store, and a new
    one first reads the erasure ledger (mailbot/privacy/ledger.py)."""
    guard_clock(app)
    report = PassReport()
    if reconcile_pending(app):
        # A restored database: the mail store first, or new tickets would take references
        # already given. Nothing else runs until it is done.
        from mailbot.recovery.reconcile import reconcile

        reconciled = reconcile(app)
        if not reconciled.ok:
            report.errors.append("reconcile")
            return report
    unread: list[tuple[str, str]] = []
    if start_new_database(app, unread) is None:
        # A new database takes no mail before it has read the erasure ledger: it would give
        # again a reference an erased ticket had.
        for name, failure in unread:
            log.error(
                "%s; no mail is taken in before it is read", failure, extra=log_fields(mailbox=name)
            )
            report.errors.append(f"imap:{name}")
        return report
    for mailbox in app.settings.mailboxes if mailboxes is None else mailboxes:
        if should_stop():
            break
        before = dict(report.ingest.outcomes)
        try:
            ingest_mailbox(app, mailbox, report.ingest, should_stop)
        except ImapError as exc:
            log.error("mailbox %s: %s", mailbox.name, exc, extra=log_fields(mailbox=mailbox.name))
            report.errors.append(f"imap:{mailbox.name}")
        else:
            report.reached.append(mailbox.name)
        report.by_mailbox[mailbox.name] = {
            name: n - before.get(name, 0)
            for name, n in report.ingest.outcomes.items()
            if n != before.get(name, 0)
        }
    try:
        # What supervisors released runs now; whoever went past their limit is alerted once.
        replay_released(app, app.clock.now())
        review_held_acts(app, app.clock.now())
    except Exception:  # never stops ingestion or sending; tried again at the next pass
        log.exception("held staff acts could not be reviewed")
        report.errors.append("held_acts")
    try:
        jobs = run_due_jobs(app, app.clock.now())
    except Exception:  # reminders must never stop ingestion or sending
        log.exception("scheduled jobs failed")
        report.errors.append("jobs")
    else:
        for name, n in jobs.counts().items():
            report.ingest.count(name, n)
        if jobs.failed:
            report.errors.append("jobs")
    try:
        retention = run_if_due(app)
    except Exception:  # the retention run resumes at the next pass; mail goes on
        log.exception("retention run failed")
        report.errors.append("retention")
    else:
        if retention is not None:
            for name, refs in (
                ("retention_anonymised", retention.anonymised),
                ("retention_raw_destroyed", retention.raw_destroyed),
            ):
                if refs:
                    report.ingest.count(name, len(refs))
    report.outbox = send_outbox(app)
    # A Sent folder that cannot be reached is logged and tried again at the next pass; it
    # never fails the pass (the mail itself went out).
    keep_sent_copies(app)
    return report


def send_outbox(app: App) -> FlushReport:
    """Flush the outbox; the brake's notices go before, failure reports after (and out).

    Sending follows ingestion rather than running beside it: SQLite has one writer, which
    ingestion holds through each transaction, and a sender in another process would wait for
    each commit before its next message (measured: no gain, bench/throughput_bench.py) or
    record the relay's answers later, widening the one window SMTP cannot close (the relay's
    250 received, the process killed before the row is marked sent)."""
    policy = SendPolicy.of(app.settings, meet_sent)
    now = app.clock.now()
    review_pacing(app, policy, now)
    report = flush_outbox(app, now, policy)
    if report_failures(app, now):
        report = report.plus(flush_outbox(app, now, policy))
    return report
