"""Every kind of mail mailbot sends, as the SMTP server receives it: conformant MIME, low score.

One walk through November 2025 makes mailbot write each kind of mail it sends (acknowledgements,
staff notices, relayed replies, commands, reminders, digests, the brake's notices at its start
and end, the notice of a refused delivery, the administrators' alert at its start and end).
The bytes of each message, as the SMTP server received them, must be RFC-conformant: 7-bit,
CRLF lines, header lines of at most 78 characters (folded at spaces; a lone message identifier
is never folded or encoded), quoted-printable and base64 lines of at most 76 characters (RFC 2045),
encoded words of at most 75 (RFC 2047), the usual headers once each, and a MIME tree the
standard library reads without a defect, with a plain-text part before any HTML. Each kind
must also score well below SpamAssassin's default threshold with Debian's `spamassassin` and
the rules it ships, local tests only (no network, no sa-update). scripts/bootstrap installs
SpamAssassin; without it these tests fail, they never skip.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage, Message
from pathlib import Path

import pytest
from sqlmodel import select

from mailbot.app import build_app
from mailbot.clock import FixedClock, parse_instant
from mailbot.db.models import OutboxMessage, Ticket
from mailbot.db.store import session_scope
from mailbot.ops.observe import Monitor
from mailbot.ops.passes import run_pass
from mailbot.sandbox.cli import sandbox_environ, sandbox_settings
from mailbot.sandbox.servers import Sandbox, make_sandbox_dir
from mailbot.settings import AlertSettings, DatabaseSettings, Settings, load_settings
from tests.conftest import REPO, TEST_SIGNING_KEY, fresh_database
from tests.intake.test_spine import CITIZEN, COMPLAINTS, INFO, citizen_request, office, parsed
from tests.staff.test_staff_server import AGENT, staff_reply

# Real servers or system tools (not the fast suite); the walk uses the test database.
pytestmark = [pytest.mark.server, pytest.mark.db]

# Well below SpamAssassin's default of 5.0: a message that scores this much from its form
# alone has no margin left for what a receiving server adds (reputation, network tests).
MAX_SCORE = 2.0
SHIPPED_RULES = Path("/usr/share/spamassassin")
KINDS = (
    "acknowledgement",
    "acknowledgement_with_english",
    "complaint_acknowledgement",
    "notice",
    "forward",
    "held_notice",
    "staff_confirm",
    "staff_command_error",
    "reply",
    "hold_request",
    "reminder",
    "escalation",
    "digest",
    "brake_notice",
    "brake_end_notice",
    "failure_notice",
    "alert",
    "alert_end",
)
ADMIN = "exploitation@mri.gouv.qc.ca"
ENGLISH_CITIZEN = "john.smith@example.com"
COMPLAINANT = "marc.gagnon@example.net"
UNREACHABLE = "adresse.inconnue@example.org"  # not a sandbox user: the relay answers 550
ENGLISH_BODY = (
    "Hello, I would like to know how to apply for the grant. "
    "Could you please send me the forms? Thank you."
)
IDENTIFIER_HEADERS = ("message-id", "in-reply-to", "references")


@dataclass(frozen=True, slots=True)
class Sent:
    """One message as the SMTP server received it, with what mailbot's outbox says it is."""

    kind: str
    purpose: str
    raw: bytes


def _english_settings(settings: Settings) -> Settings:
    language = settings.language.model_copy(update={"english_policy": "detected_english"})
    return settings.model_copy(update={"language": language})


def _walk(sandbox: Sandbox, data_dir: Path, database_url: str) -> list[Sent]:
    """Drive mailbot through every kind of mail it sends; returns what the server received."""
    base = load_settings(REPO / "config" / "mailbot.toml", environ={})
    settings = _english_settings(sandbox_settings(base, sandbox, data_dir)).model_copy(
        update={"database": DatabaseSettings(url=database_url)}
    )

    def run_at(now: str, chosen: Settings = settings) -> None:
        environ = sandbox_environ(chosen, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
        app = build_app(chosen, FixedClock(parse_instant(now)), environ)
        try:
            report = run_pass(app)
            assert report.ok, f"{now}: {report.summary()}"
            if chosen.alerts.admins:  # the daemon's look after the pass: alerts
                Monitor(app).after_pass(report, 0.0, full=True)
        finally:
            app.engine.dispose()

    # Mon Nov 3: a request in French, one in English, a complaint.
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    english = citizen_request(
        "<req-en@example.com>",
        sender=ENGLISH_CITIZEN,
        subject="Information request",
        body=ENGLISH_BODY,
    )
    sandbox.deliver(INFO, english, received_at=office("2025-11-03T10:00"))
    complaint = citizen_request(
        "<complaint-1@example.net>",
        sender=COMPLAINANT,
        subject="Plainte",
        body="Je désire porter plainte au sujet du traitement de mon dossier.",
    ).replace(f"To: {INFO}".encode(), f"To: {COMPLAINTS}".encode())
    sandbox.deliver(COMPLAINTS, complaint, received_at=office("2025-11-03T10:00"))
    # A request from an address the relay refuses (550): its staff are told (failure notice).
    unreachable = citizen_request("<req-lost@example.org>", sender=UNREACHABLE)
    sandbox.deliver(INFO, unreachable, received_at=office("2025-11-03T10:00"))
    run_at("2025-11-03T10:01:00-05:00")

    notices = {str(parsed(raw)["Subject"])[:16]: raw for raw in sandbox.fetch_all(AGENT)}
    first, second = notices["[MRI-2025-00001]"], notices["[MRI-2025-00002]"]
    [acknowledgement] = [
        raw for raw in sandbox.fetch_all(CITIZEN) if b"MRI-2025-00001" in raw.split(b"\r\n\r\n")[0]
    ]
    # Tue Nov 4: staff answer, give a wrong command, send an uncertain reply, put the English
    # request on hold, and an unauthenticated reply is held; the citizen writes again.
    replies = [
        (first, "Bonjour Madame,\r\n\r\nLa bourse est offerte jusqu'au 1er mars.\r\n\r\nS. Lavoie"),
        (first, "#fermerr\r\nMerci de votre patience."),
        (first, "Bonjour, mes réponses sont en rouge dans le texte ci-dessous."),
        (second, "#attente : Il nous manque votre numéro de dossier."),
    ]
    for n, (notice, body) in enumerate(replies, start=1):
        raw = staff_reply(notice, body, message_id=f"<reply-{n}@mri.gouv.qc.ca>")
        sandbox.deliver(INFO, raw, received_at=office("2025-11-04T09:00"))
    unverified = staff_reply(second, "Voici la réponse.", auth="", message_id="<reply-9@x.ca>")
    sandbox.deliver(INFO, unverified, received_at=office("2025-11-04T09:00"))
    ack_id = str(parsed(acknowledgement)["Message-ID"])
    follow_up = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\n"
        "Subject: RE: Accusé de réception\r\nMessage-ID: <req-2@example.org>\r\n"
        f"In-Reply-To: {ack_id}\r\nReferences: <req-1@example.org> {ack_id}\r\n"
        "Date: Tue, 4 Nov 2025 10:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        "\r\nJ'ajoute une précision : ma fille commence en septembre.\r\n"
    ).encode()
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-04T09:01"))
    run_at("2025-11-04T09:05:00-05:00")

    # The complaint's reply is due Mon Nov 24: a reminder on Nov 19, an escalation on Nov 25.
    run_at("2025-11-19T08:45:00-05:00")
    run_at("2025-11-25T08:45:00-05:00")

    # A burst of requests engages the global brake (set very low here).
    for n, sender in enumerate((ENGLISH_CITIZEN, COMPLAINANT)):
        raw = citizen_request(f"<burst-{n}@example.org>", sender=sender)
        sandbox.deliver(INFO, raw, received_at=office("2025-11-25T09:00"))
    rules = settings.classification.model_copy(update={"burst_limit": 1})
    # The administrators are told too (an alert when the brake engages, one when it ends).
    sandbox.accept_mail_for(ADMIN)
    alerts = AlertSettings(admins=(ADMIN,))
    braked = settings.model_copy(update={"classification": rules, "alerts": alerts})
    run_at("2025-11-25T09:01:00-05:00", braked)
    # The next hour the withheld acknowledgement leaves and the pacing ends (a second notice).
    run_at("2025-11-25T10:05:00-05:00", braked)

    return _label(sandbox, settings)


def _label(sandbox: Sandbox, settings: Settings) -> list[Sent]:
    """Name each received message by its outbox row (found by Message-ID)."""
    assert sandbox.handler is not None and sandbox.handler.received is not None
    environ = sandbox_environ(settings, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
    app = build_app(settings, FixedClock(parse_instant("2025-11-25T10:00:00-05:00")), environ)
    try:
        with session_scope(app.engine) as session:
            rows = {row.message_id: row for row in session.exec(select(OutboxMessage)).all()}
            tickets = {t.id: t for t in session.exec(select(Ticket)).all()}
    finally:
        app.engine.dispose()
    sent = []
    for raw in sandbox.handler.received:
        row = rows[str(parsed(raw)["Message-ID"])]
        assert raw == row.raw, f"{row.purpose}: the server received other bytes than queued"
        kind = row.purpose
        if kind == "acknowledgement":
            ticket = tickets[row.ticket_id]
            if ticket.category == "complaint":
                kind = "complaint_acknowledgement"
            elif ticket.language == "en":
                kind = "acknowledgement_with_english"
        elif kind == "brake_notice" and str(parsed(raw)["Subject"]).startswith("Fin "):
            kind = "brake_end_notice"
        elif kind == "alert" and str(parsed(raw)["Subject"]).startswith("[mailbot] Rétabli"):
            kind = "alert_end"
        sent.append(Sent(kind=kind, purpose=row.purpose, raw=raw))
    assert len(sent) == sum(1 for row in rows.values() if row.state == "sent")
    return sent


@pytest.fixture(scope="module")
def sent_mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Sent]]:
    root = make_sandbox_dir("mailbot-deliverability-")
    sandbox = Sandbox(root=root)
    sandbox.start()
    try:
        assert sandbox.handler is not None
        sandbox.handler.received = []
        data_dir = tmp_path_factory.mktemp("deliverability") / "data"
        with fresh_database(data_dir / "mailbot.db") as url:
            yield _walk(sandbox, data_dir, url)
    finally:
        sandbox.stop()
        shutil.rmtree(root, ignore_errors=True)


def first_of_each_kind(sent: list[Sent]) -> dict[str, Sent]:
    found: dict[str, Sent] = {}
    for item in sent:
        found.setdefault(item.kind, item)
    return found


# --- RFC conformance -------------------------------------------------------------------------

_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")
_QP_ESCAPE = re.compile(rb"=(?![0-9A-F]{2})")


def header_problems(head: bytes) -> list[str]:
    """RFC 5322 and RFC 2047 problems of a header block (lines without their CRLF)."""
    problems = []
    lines = head.split(b"\r\n")
    names: list[bytes] = []
    for number, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if not line.strip():
                problems.append(f"header line {number}: whitespace only")
            continuation = True
        else:
            name, colon, _ = line.partition(b":")
            if not colon or not re.fullmatch(rb"[!-9;-~]+", name):
                problems.append(f"header line {number}: not a field: {line[:60]!r}")
            names.append(name.lower())
            continuation = False
        # Longer than 78 only when nothing could be folded: one lone token on the line.
        value = line.strip() if continuation else line.partition(b":")[2].strip()
        lone_token = len(value.split()) <= 1
        if len(line) > 998 or (len(line) > 78 and not lone_token):
            problems.append(f"header line {number} is {len(line)} characters: {line[:60]!r}")
        for word in _ENCODED_WORD.findall(line):
            if len(word) > 75:
                problems.append(f"encoded word of {len(word)} characters: {word[:40]!r}")
        if not continuation and names[-1] in (b"message-id", b"in-reply-to", b"references"):
            if not value:
                problems.append(f"{name.decode()} folded before its first identifier")
            if b"=?" in value:
                problems.append(f"{name.decode()} carries an encoded word")
    for required in (b"date", b"from", b"to", b"subject", b"message-id", b"mime-version"):
        if names.count(required) != 1:
            problems.append(f"{required.decode()} appears {names.count(required)} times")
    return problems


def part_problems(part: Message, where: str) -> list[str]:
    """RFC 2045 problems of one leaf part, read from its encoded body."""
    problems = []
    encoding = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
    body = part.get_payload(decode=False)
    assert isinstance(body, str)
    lines = body.encode("utf-8", "surrogateescape").split(b"\n")
    limit = {"quoted-printable": 76, "base64": 76}.get(encoding, 998)
    if encoding not in ("7bit", "quoted-printable", "base64"):
        problems.append(f"{where}: transfer encoding {encoding}")
    for number, line in enumerate(lines):
        line = line.rstrip(b"\r")
        if len(line) > limit:
            problems.append(f"{where} line {number}: {len(line)} characters ({encoding})")
        if encoding == "quoted-printable":
            if _QP_ESCAPE.search(line.rstrip(b"=") if line.endswith(b"=") else line):
                problems.append(f"{where} line {number}: a bare '=' in quoted-printable")
            if line.endswith((b" ", b"\t")):
                problems.append(f"{where} line {number}: trailing white space")
    if part.get_content_maintype() == "text" and part.get_param("charset") is None:
        problems.append(f"{where}: text without a charset")
    return problems


def structure_problems(message: EmailMessage) -> list[str]:
    """Defects the standard library found, and a MIME tree a mail client shows as intended."""
    problems = [f"defect: {defect!r}" for defect in message.defects]
    for name, value in message.items():
        problems += [f"defect in {name}: {defect!r}" for defect in getattr(value, "defects", ())]
    if message.get("MIME-Version") != "1.0":
        problems.append(f"MIME-Version {message.get('MIME-Version')!r}")
    leaves = []
    for number, part in enumerate(message.walk()):
        where = f"part {number} ({part.get_content_type()})"
        problems += [f"{where}: defect {defect!r}" for defect in part.defects]
        if part.is_multipart():
            children = [child.get_content_type() for child in part.iter_parts()]
            if part.get_content_type() == "multipart/alternative" and children[:1] != [
                "text/plain"
            ]:
                problems.append(f"{where}: alternatives {children}, plain text not first")
            continue
        leaves.append(part.get_content_type())
        problems += part_problems(part, where)
        if part.get_content_maintype() == "text":
            part.get_content()  # decodes, or raises
    if "text/html" in leaves and "text/plain" not in leaves:
        problems.append("HTML without a plain-text version")
    body = message.get_body(preferencelist=("plain",))
    if body is None:
        problems.append("no plain-text body")
    domain = parsed_domain(str(message.get("Message-ID", "")))
    if domain != "mri.gouv.qc.ca":
        problems.append(f"Message-ID domain {domain!r}")
    return problems


def parsed_domain(message_id: str) -> str:
    match = re.fullmatch(r"<[^<>@\s]+@([^<>@\s]+)>", message_id.strip())
    return match.group(1) if match else ""


def conformance_problems(raw: bytes) -> list[str]:
    problems = []
    if any(byte > 127 for byte in raw):
        problems.append("8-bit bytes: the message must be 7-bit")
    if re.search(rb"\r(?!\n)|(?<!\r)\n", raw):
        problems.append("a line does not end with CRLF")
    head, separator, _ = raw.partition(b"\r\n\r\n")
    if not separator:
        return [*problems, "no blank line after the header"]
    problems += header_problems(head)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    problems += structure_problems(message)
    return problems


def test_mailbot_sent_every_kind_of_mail(sent_mail: list[Sent]) -> None:
    assert sorted(first_of_each_kind(sent_mail)) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_message_of_a_kind_is_conformant_mime(sent_mail: list[Sent], kind: str) -> None:
    messages = [item for item in sent_mail if item.kind == kind]
    assert messages, f"no {kind} was sent"
    for item in messages:
        problems = conformance_problems(item.raw)
        assert problems == [], "\n".join([*problems, item.raw.decode("ascii", "replace")])


def test_the_conformance_check_catches_what_it_is_for() -> None:
    """The checks above would see a long quoted-printable line, a folded Message-ID, 8-bit
    text and HTML without plain text (a check that cannot fail proves nothing)."""
    good = (
        b"From: a@mri.gouv.qc.ca\r\nTo: b@example.org\r\nSubject: s\r\n"
        b"Date: Mon, 3 Nov 2025 10:00:00 -0500\r\nMessage-ID: <x@mri.gouv.qc.ca>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nBonjour =C3=A9t=C3=A9.\r\n"
    )
    assert conformance_problems(good) == []
    long_line = good.replace(b"Bonjour", b"B" * 80)
    assert any("quoted-printable" in p for p in conformance_problems(long_line))
    folded = good.replace(b"Message-ID: <x@", b"Message-ID:\r\n <x@")
    assert any("folded" in p for p in conformance_problems(folded))
    eight_bit = good.replace(b"Bonjour", "Été".encode())
    assert any("8-bit" in p for p in conformance_problems(eight_bit))
    html_only = good.replace(b"text/plain", b"text/html")
    assert "HTML without a plain-text version" in conformance_problems(html_only)


# --- SpamAssassin ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpamReport:
    score: float
    rules: tuple[tuple[str, float], ...]  # the rules that fired, with their points

    def describe(self) -> str:
        return f"{self.score:.1f} ({', '.join(f'{n} {p:+.1f}' for n, p in self.rules)})"


_STATUS = re.compile(r"^X-Spam-Status: (?:Yes|No), score=(-?[\d.]+)", re.MULTILINE)
_RULE_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z][A-Z0-9_]+)\s", re.MULTILINE)


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        pytest.fail("SpamAssassin is not installed: scripts/bootstrap installs it (apt-get)")
    if not (SHIPPED_RULES / "72_active.cf").exists():
        pytest.fail(f"SpamAssassin's shipped rules are missing from {SHIPPED_RULES}")
    return found


def spam_report(binary: str, raw: bytes, home: Path) -> SpamReport:
    """Score `raw` offline with the shipped rules only (no sa-update rules, no Bayes)."""
    result = subprocess.run(
        [
            binary,
            "--local",
            "--test-mode",
            "--nocreate-prefs",
            f"--configpath={SHIPPED_RULES}",
            "--cf=use_bayes 0",
            "--cf=bayes_auto_learn 0",
        ],
        input=raw,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
        check=False,
    )
    output = result.stdout.decode("utf-8", "replace")
    status = _STATUS.search(output)
    assert result.returncode == 0 and status, result.stderr.decode("utf-8", "replace")
    _, _, details = output.partition("Content analysis details:")
    rules = tuple((name, float(points)) for points, name in _RULE_LINE.findall(details))
    return SpamReport(score=float(status.group(1)), rules=rules)


@pytest.fixture(scope="module")
def spam_reports(
    sent_mail: list[Sent], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, SpamReport]:
    binary = spamassassin()
    home = tmp_path_factory.mktemp("spamassassin-home")
    kinds = first_of_each_kind(sent_mail)
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = dict(
            zip(
                kinds,
                pool.map(lambda item: spam_report(binary, item.raw, home), kinds.values()),
                strict=True,
            )
        )
    for kind, report in reports.items():
        print(f"spamassassin {kind:<30} {report.describe()}")
    return reports


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_scores_low_with_spamassassin(
    spam_reports: dict[str, SpamReport], kind: str
) -> None:
    assert kind in spam_reports, f"no {kind} was sent"
    report = spam_reports[kind]
    assert report.score <= MAX_SCORE, f"{kind}: {report.describe()}"


def test_spamassassin_scores_what_it_should(tmp_path: Path) -> None:
    """The scoring is live: a message missing its Date and Message-ID, with only a tiny HTML
    part, scores above the threshold."""
    junk = (
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: URGENT!!! FREE MONEY\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><a href='http://198.51.100.7/x'>CLICK HERE</a></body></html>\r\n"
    )
    report = spam_report(spamassassin(), junk, tmp_path)
    assert report.score > MAX_SCORE, report.describe()
