"""Retention, legal hold, erasure, the access trail and the complete access request, against
the real servers: tickets built across several years with `--now`, then every text and binary
column of every table (and, on SQLite, the database file's bytes) searched for what must be
gone."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import mailbot.db.models  # noqa: F401  (registers the tables)
from mailbot.cli import main
from mailbot.db.store import make_engine
from mailbot.ops.passes import run_pass
from mailbot.privacy.retention import run_retention
from mailbot.sandbox.cli import sandbox_environ
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import RetentionPeriod, RetentionSettings, Settings
from tests.conftest import TEST_SIGNING_KEY, AppFactory, write_sandbox_config
from tests.intake.test_spine import COMPLAINTS, INFO, office, parsed, text_of
from tests.staff.test_staff_server import PASSING

AGENT = "agent.info@mri.gouv.qc.ca"
COMPLAINTS_AGENT = "agent.plaintes@mri.gouv.qc.ca"
PDF = b"%PDF-1.4 la piece jointe d'Alice\n%%EOF\n"


class Person:
    """A citizen whose every trace the tests look for."""

    def __init__(self, key: str, name: str, to: str) -> None:
        self.address = f"{key}@example.org"
        self.name = name
        self.subject = f"Demande {key} Zeta"
        self.body = f"Bonjour, voici ma situation {key}-corps-unique."
        self.to = to
        self.message_id = f"<{key}-1@example.org>"

    @property
    def strings(self) -> tuple[str, ...]:
        return (self.address, self.name, self.subject, self.body)

    def request(self, attachment: bytes | None = None) -> bytes:
        head = (
            f"From: {self.name} <{self.address}>\r\n"
            f"To: {self.to}\r\n"
            f"Subject: {self.subject}\r\n"
            f"Message-ID: {self.message_id}\r\n"
            "Date: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
            "MIME-Version: 1.0\r\n"
        )
        text = f"{self.body}\r\n"
        if attachment is None:
            return (
                head + "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n" + text
            ).encode()
        import base64

        encoded = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
        return (
            head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + text + "--b1\r\n"
            'Content-Type: application/pdf; name="releve.pdf"\r\n'
            'Content-Disposition: attachment; filename="releve.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + encoded + "--b1--\r\n"
        ).encode()


ALICE = Person("alice.gagnon", "Alice Gagnon", INFO)  # information: closed, schedule applies
BRUNO = Person("bruno.cote", "Bruno Côté", COMPLAINTS)  # complaint: a longer schedule
CHLOE = Person("chloe.roy", "Chloé Roy", INFO)  # closed, under legal hold
DENIS = Person("denis.ouellet", "Denis Ouellet", INFO)  # never closed

SCHEDULE = RetentionSettings(
    raw_days=365,
    anonymise_days=730,
    queues=(("plaintes", RetentionPeriod(raw_days=730, anonymise_days=1095)),),
)


def staff_reply(notice: bytes, body: str, sender: str, to: str, message_id: str) -> bytes:
    """What the agent's mail client sends when replying to the notice with `body`."""
    original = parsed(notice)
    reply_to = str(original["Message-ID"])
    return (
        f"{PASSING}"
        f"From: Agent <{sender}>\r\nTo: {to}\r\nSubject: RE: {original['Subject']}\r\n"
        f"Message-ID: {message_id}\r\nIn-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n"
        "Date: Tue, 4 Nov 2025 09:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n\r\n-----Message d'origine-----\r\nDe : mailbot <{to}>\r\n"
        f"Objet : {original['Subject']}\r\n\r\n{text_of(original)}\r\n"
    ).encode()


def notice_for(sandbox: Sandbox, staff: str, ref: str) -> bytes:
    [notice] = [
        n
        for n in sandbox.fetch_all(staff)
        if str(parsed(n)["Subject"]).startswith(f"[{ref}] Nouvelle")
    ]
    return notice


def ref_of(engine: Engine, person: Person) -> str:
    with engine.connect() as connection:
        ref: str = connection.execute(
            sa.text("SELECT ref FROM ticket WHERE requester = :a"), {"a": person.address}
        ).scalar_one()
    return ref


def traces(engine: Engine, strings: tuple[str, ...]) -> dict[str, list[str]]:
    """Every text and binary column of every table, searched for `strings` (case-blind):
    which table.column holds which string."""
    found: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            columns = [c for c in table.columns if _is_text_or_bytes(c.type)]
            assert table.name == "alembic_version" or columns or table.name in SILENT
            for row in connection.execute(sa.select(*columns)).all() if columns else []:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = (
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    ).lower()
                    for wanted in strings:
                        if wanted.lower() in text:
                            found.setdefault(f"{table.name}.{column.name}", []).append(wanted)
    return found


def found(engine: Engine, person: Person) -> set[str]:
    """Which of the person's strings are still somewhere in the database."""
    return {wanted for held in traces(engine, person.strings).values() for wanted in held}


def _is_text_or_bytes(kind: sa.types.TypeEngine[object]) -> bool:
    inner = kind.impl if isinstance(kind, sa.types.TypeDecorator) else kind
    return isinstance(inner, sa.String | sa.LargeBinary)


# Tables with no text or binary column (nothing personal can sit in them).
SILENT = frozenset({"ticket_deadline", "ticket_counter", "imap_checkpoint"})


def raw_left(engine: Engine, ref: str) -> int:
    """Messages of the ticket whose bytes are still there (received and sent, not pending)."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM inbound_message i JOIN ticket t "
                    "ON i.ticket_id = t.id WHERE t.ref = :r AND length(i.raw) > 0) + "
                    "(SELECT count(*) FROM outbox o JOIN ticket t ON o.ticket_id = t.id "
                    "WHERE t.ref = :r AND length(o.raw) > 0)"
                ),
                {"r": ref},
            ).scalar_one()
        )


class Cli:
    """`mailbot --config FILE ...` in-process, with the environment the sandbox needs."""

    def __init__(
        self,
        config: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        settings: Settings,
    ) -> None:
        self.config, self.capsys = config, capsys
        for name, value in sandbox_environ(settings, {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MAILBOT_SIGNING_KEY", TEST_SIGNING_KEY)
        monkeypatch.setenv("MAILBOT_DATABASE_URL", settings.database_url)

    def __call__(self, now: datetime | str, *args: str, expect: int = 0) -> str:
        self.capsys.readouterr()
        when = now if isinstance(now, str) else now.isoformat()
        code = main(["--config", str(self.config), "--actor", "auditrice", "--now", when, *args])
        out, err = self.capsys.readouterr()
        assert code == expect, err
        return out

    def json(self, now: datetime | str, *args: str) -> object:
        return json.loads(self(now, *args, "--json"))


@pytest.fixture
def retention_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retention": SCHEDULE})


@pytest.fixture
def cli(
    sandbox: Sandbox,
    tmp_path: Path,
    retention_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    config = write_sandbox_config(
        tmp_path / "mailbot.toml",
        sandbox,
        tmp_path / "data",
        retention={
            "raw_days": 365,
            "anonymise_days": 730,
            "queues": {"plaintes": {"raw_days": 730, "anonymise_days": 1095}},
        },
    )
    return Cli(config, capsys, monkeypatch, retention_settings)


def cli_runs(cli: Cli, now: str) -> list[tuple[object, bool]]:
    """The command line's retention runs: (tickets anonymised, finished) each."""
    history = cli.json(now, "retention", "history")
    assert isinstance(history, list)
    return [(h["anonymised"], bool(h["finished_at"])) for h in history if h["trigger"] == "cli"]


def open_and_close(
    sandbox: Sandbox, make_app: AppFactory, custom: Settings, people: list[Person]
) -> dict[str, str]:
    """Each person's request on 2025-11-03; all but DENIS closed by their agent by email on
    2025-11-04 at 09:05, CHLOE's placed under legal hold in the same reply."""
    sandbox.accept_mail_for(*(person.address for person in people))
    for person in people:
        attachment = PDF if person is ALICE else None
        sandbox.deliver(
            person.to, person.request(attachment), received_at=office("2025-11-03T10:00")
        )
    app = make_app("2025-11-03T10:01:00-05:00", custom)
    run_pass(app)
    refs = {person.address: ref_of(app.engine, person) for person in people}
    for n, person in enumerate(people):
        if person is DENIS:
            continue
        staff = COMPLAINTS_AGENT if person.to == COMPLAINTS else AGENT
        body = "#fermer"
        if person is CHLOE:
            body = "#fermer\n#conservation légale : dossier judiciaire 500-17-000001-255"
        notice = notice_for(sandbox, staff, refs[person.address])
        sandbox.deliver(
            person.to,
            staff_reply(notice, body, staff, person.to, f"<close-{n}@mri.gouv.qc.ca>"),
            received_at=office("2025-11-04T09:00"),
        )
    run_pass(make_app("2025-11-04T09:05:00-05:00", custom))
    return refs


CLOSED = office("2025-11-04T09:05").astimezone(UTC)  # days are 24 hours: no DST shift
REPORT = ("report", "--since", "2025-11-01", "--until", "2025-11-30", "--format", "json")
REPORT_AT = "2025-12-01T12:00:00-05:00"


def test_the_schedule_destroys_then_anonymises_exactly_when_it_says_in_every_table(
    sandbox: Sandbox,
    make_app: AppFactory,
    retention_settings: Settings,
    cli: Cli,
    tmp_path: Path,
) -> None:
    people = [ALICE, BRUNO, CHLOE, DENIS]
    refs = open_and_close(sandbox, make_app, retention_settings, people)
    a, b, c, d = (refs[p.address] for p in people)
    engine = make_engine(retention_settings.database_url)
    report_before = cli(REPORT_AT, *REPORT)
    export = cli.json("2025-12-01T12:00:00-05:00", "show", c)
    assert isinstance(export, dict)
    assert export["legal_hold"]["reason"] == "dossier judiciaire 500-17-000001-255"
    assert export["status"] == "closed" and export["anonymised_at"] is None
    assert all(raw_left(engine, ref) > 0 for ref in (a, b, c, d))

    # One second before a year after closing: nothing is due.
    early = cli.json(CLOSED + timedelta(days=365, seconds=-1), "retention", "run")
    assert isinstance(early, dict)
    assert (early["raw_destroyed"], early["anonymised"], early["dry_run"]) == ([], [], False)
    # A year after closing: the information ticket's messages go, nothing else.
    dry = cli.json(CLOSED + timedelta(days=365), "retention", "run", "--dry-run")
    assert isinstance(dry, dict) and dry["raw_destroyed"] == [a] and raw_left(engine, a) > 0
    year = cli.json(CLOSED + timedelta(days=365), "retention", "run")
    assert isinstance(year, dict) and (year["raw_destroyed"], year["anonymised"]) == ([a], [])
    assert raw_left(engine, a) == 0
    assert [raw_left(engine, ref) > 0 for ref in (b, c, d)] == [True, True, True]
    assert ALICE.address in found(engine, ALICE)  # not anonymised yet

    # Two years: the information ticket anonymised; the complaint's messages destroyed.
    just_before = cli.json(CLOSED + timedelta(days=730, seconds=-1), "retention", "run")
    assert isinstance(just_before, dict) and just_before["anonymised"] == []
    two = cli.json(CLOSED + timedelta(days=730), "retention", "run")
    assert isinstance(two, dict)
    assert (two["anonymised"], two["raw_destroyed"]) == ([a], [b])
    assert traces(engine, ALICE.strings) == {}
    assert raw_left(engine, b) == 0
    assert BRUNO.address in found(engine, BRUNO)

    # Three years: the complaint anonymised; the held ticket and the open one untouched.
    three = cli.json(CLOSED + timedelta(days=1095), "retention", "run")
    assert isinstance(three, dict) and three["anonymised"] == [b]
    assert traces(engine, BRUNO.strings) == {}
    for person in (CHLOE, DENIS):
        assert set(traces(engine, person.strings)["ticket.requester"]) == {person.address}
    assert raw_left(engine, c) > 0 and raw_left(engine, d) > 0

    # The legal hold released: the ticket is due again by the same rules.
    cli(CLOSED + timedelta(days=1100), "legal-hold", c, "--release")
    shown = cli.json(CLOSED + timedelta(days=1100), "show", c)
    assert isinstance(shown, dict) and shown["legal_hold"] is None
    after_release = cli.json(CLOSED + timedelta(days=1101), "retention", "run")
    assert isinstance(after_release, dict) and after_release["anonymised"] == [c]
    assert traces(engine, CHLOE.strings) == {}
    anonymised = cli.json(CLOSED + timedelta(days=1101), "show", c)
    assert isinstance(anonymised, dict)
    assert (
        anonymised["anonymised_at"] == (CLOSED + timedelta(days=1101)).astimezone(UTC).isoformat()
    )
    assert anonymised["requester"] == "anonymised" and anonymised["subject"] == ""
    assert DENIS.address in found(engine, DENIS)
    assert raw_left(engine, d) > 0  # never closed: kept

    # The published figures have not moved.
    assert cli(REPORT_AT, *REPORT) == report_before

    # Each run is recorded: when, how many, which references.
    history = cli.json(CLOSED + timedelta(days=1101), "retention", "history")
    assert isinstance(history, list)
    done = [(h["raw_destroyed"], h["anonymised"], h["refs"]) for h in history if not h["dry_run"]]
    assert (1, 0, [f"raw:{a}"]) in done and (1, 1, [f"anonymised:{a}", f"raw:{b}"]) in done
    assert all(h["finished_at"] for h in history)

    # The access trail: who showed what, the staff commands by email, the hold and the runs.
    trail = cli.json(CLOSED + timedelta(days=1101), "audit", c)
    assert isinstance(trail, list)
    assert [(e["actor"], e["action"]) for e in trail] == [
        (AGENT, "staff_close"),
        (AGENT, "staff_legal_hold"),
        ("auditrice", "show"),
        ("auditrice", "legal_hold_release"),
        ("auditrice", "show"),
        ("auditrice", "show"),
    ]
    everything = cli.json(CLOSED, "audit")
    assert isinstance(everything, list)
    runs = [e for e in everything if e["action"] == "retention_run"]
    assert len(runs) == len([h for h in history if not h["dry_run"]])
    assert [e["actor"] for e in runs].count("auditrice") == 6  # the others: the daemon's

    if engine.dialect.name == "sqlite":
        database = Path(retention_settings.database_url.removeprefix("sqlite:///"))
        engine.dispose()
        contents = b"".join(
            path.read_bytes()
            for path in (database, database.with_name(database.name + "-wal"))
            if path.exists()
        ).lower()
        for person in (ALICE, BRUNO, CHLOE):
            for wanted in person.strings:
                assert wanted.lower().encode() not in contents, (person.name, wanted)
        assert DENIS.address.encode() in contents  # the search does find what is there
    engine.dispose()


def test_a_run_killed_halfway_resumes_without_harm(
    sandbox: Sandbox, make_app: AppFactory, retention_settings: Settings, cli: Cli
) -> None:
    people = [Person(f"p{n}.lavoie", f"Personne {n} Lavoie", INFO) for n in range(5)]
    refs = open_and_close(sandbox, make_app, retention_settings, people)
    small = retention_settings.model_copy(
        update={"retention": SCHEDULE.model_copy(update={"batch_size": 2})}
    )
    later = (CLOSED + timedelta(days=800)).isoformat()

    class Killed(Exception):
        pass

    def kill_after_first(batches: int) -> None:
        if batches == 1:
            raise Killed

    with pytest.raises(Killed):
        run_retention(
            make_app(later, small), trigger="cli", actor="test", after_batch=kill_after_first
        )
    engine = make_engine(small.database_url)
    with engine.connect() as connection:
        done = connection.execute(
            sa.text("SELECT ref, anonymised_at FROM ticket WHERE anonymised_at IS NOT NULL")
        ).all()
        [run] = connection.execute(
            sa.text("SELECT finished_at, anonymised, refs FROM retention_run WHERE trigger = 'cli'")
        ).all()
    assert len(done) == 2 and run.finished_at is None and run.anonymised == 2
    assert run.refs.split() == [f"anonymised:{ref}" for ref, _ in done]

    resumed = run_retention(make_app(later, small), trigger="cli", actor="test")

    assert sorted(resumed.anonymised + [ref for ref, _ in done]) == sorted(refs.values())
    with engine.connect() as connection:
        again: dict[str, object] = dict(
            connection.execute(
                sa.text("SELECT ref, anonymised_at FROM ticket WHERE ref IN :refs").bindparams(
                    sa.bindparam("refs", expanding=True)
                ),
                {"refs": [ref for ref, _ in done]},
            ).all()
        )
    assert again == dict(done)  # the first two were not done twice
    for person in people:
        assert traces(engine, person.strings) == {}
    assert cli_runs(cli, later) == [(2, False), (3, True)]
    engine.dispose()


def test_the_access_request_gives_the_original_messages_and_attachments(
    sandbox: Sandbox,
    make_app: AppFactory,
    retention_settings: Settings,
    cli: Cli,
    tmp_path: Path,
) -> None:
    refs = open_and_close(sandbox, make_app, retention_settings, [ALICE])
    ref = refs[ALICE.address]
    archive_path = tmp_path / "acces.zip"

    out = cli(
        "2025-12-01T10:00:00-05:00",
        "export",
        "--requester",
        ALICE.address.upper(),
        "--messages",
        str(archive_path),
    )

    index = json.loads(out)
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        assert json.loads(archive.read("index.json")) == index
        [ticket] = index["tickets"]
        [received] = ticket["messages_received"]
        original = archive.read(received["file"])
        assert original == ALICE.request(PDF)  # the bytes as the citizen sent them
        assert archive.read(f"{ref}/received-001/01-releve.pdf") == PDF
        sent = [m["file"] for m in ticket["messages_sent"]]
        assert sent and all(name in names for name in sent)
        ack = archive.read(sent[0])
        assert ALICE.address.encode() in ack and b"Message-ID" in ack
    trail = cli.json("2025-12-01T10:00:00-05:00", "audit", "--since", "2025-12-01")
    assert isinstance(trail, list)
    [entry] = [e for e in trail if e["action"] == "export"]
    assert entry["actor"] == "auditrice" and ref in entry["detail"]
    assert ALICE.address not in json.dumps(trail)  # the trail holds references only

    # After anonymisation the person's address finds nothing.
    cli(CLOSED + timedelta(days=731), "retention", "run")
    empty = json.loads(cli(CLOSED + timedelta(days=731), "export", "--requester", ALICE.address))
    assert empty["tickets"] == []


def test_erasure_on_request_spares_the_legal_hold_and_is_in_the_trail(
    sandbox: Sandbox, make_app: AppFactory, retention_settings: Settings, cli: Cli
) -> None:
    twice = Person("eve.morin", "Ève Morin", INFO)
    refs = open_and_close(sandbox, make_app, retention_settings, [twice, DENIS])
    ref = refs[twice.address]
    at = "2025-11-10T10:00:00-05:00"
    cli(at, "legal-hold", refs[DENIS.address], "--reason", "demande d'accès 2025-041")

    erased = cli.json(at, "erase", "--requester", twice.address, "--reason", "demande 2025-077")
    held = main(
        [
            "--config",
            str(cli.config),
            "--now",
            at,
            "erase",
            "--requester",
            DENIS.address,
            "--reason",
            "demande 2025-078",
        ]
    )

    engine = make_engine(retention_settings.database_url)
    assert isinstance(erased, dict) and erased["anonymised"] == [ref]
    assert traces(engine, twice.strings) == {}
    assert held == 1  # reported: under legal hold, nothing done
    assert DENIS.address in traces(engine, DENIS.strings)["ticket.requester"]
    trail = cli.json(at, "audit")
    assert isinstance(trail, list)
    actions = {(e["action"], e["ref"]) for e in trail}
    assert ("erase", ref) in actions and ("erase_refused", refs[DENIS.address]) in actions
    history = cli.json(at, "retention", "history")
    assert isinstance(history, list)
    erasures = [
        (h["trigger"], h["anonymised"], h["refs"]) for h in history if h["trigger"] == "erase"
    ]
    assert erasures == [("erase", 1, [f"anonymised:{ref}"]), ("erase", 0, [])]
    engine.dispose()


def test_the_daemon_runs_retention_once_a_business_day_from_its_time(
    sandbox: Sandbox, make_app: AppFactory, retention_settings: Settings
) -> None:
    refs = open_and_close(sandbox, make_app, retention_settings, [ALICE])
    # 2027-11-05 is a Friday; the run time is 02:00 office time.
    before = run_pass(make_app("2027-11-05T01:59:00-04:00", retention_settings))
    first = run_pass(make_app("2027-11-05T02:00:00-04:00", retention_settings))
    second = run_pass(make_app("2027-11-05T09:00:00-04:00", retention_settings))
    saturday = run_pass(make_app("2027-11-06T09:00:00-04:00", retention_settings))
    monday = run_pass(make_app("2027-11-08T09:00:00-05:00", retention_settings))

    assert "retention_anonymised" not in before.outcomes
    assert first.outcomes["retention_anonymised"] == 1
    engine = make_engine(retention_settings.database_url)
    with engine.connect() as connection:
        runs = connection.execute(
            sa.text("SELECT trigger, started_at FROM retention_run ORDER BY id")
        ).all()
    later = [r.trigger for r in runs if str(r.started_at) >= "2027"]
    assert later == ["daemon", "daemon"]  # Friday 02:00, then Monday
    assert refs and second.ok and saturday.ok and monday.ok
    engine.dispose()


def test_export_bytes_survive_a_zip_round_trip() -> None:
    from mailbot.privacy.export import attachments

    raw = ALICE.request(PDF)
    assert attachments(raw) == [("01-releve.pdf", PDF)]
    assert attachments(ALICE.request()) == []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.eml", raw)
    assert zipfile.ZipFile(buffer).read("a.eml") == raw


def test_listing_is_in_the_trail_and_a_legal_hold_is_released_by_email(
    sandbox: Sandbox, make_app: AppFactory, retention_settings: Settings, cli: Cli
) -> None:
    refs = open_and_close(sandbox, make_app, retention_settings, [CHLOE])
    ref = refs[CHLOE.address]
    listed = cli.json("2025-11-05T10:00:00-05:00", "tickets")
    cli("2025-11-05T10:00:00-05:00", "quarantine", "list")
    assert isinstance(listed, list) and [t["ref"] for t in listed] == [ref]

    notice = notice_for(sandbox, AGENT, ref)
    release = staff_reply(notice, "#End legal hold", AGENT, INFO, "<release-1@mri.gouv.qc.ca>")
    sandbox.deliver(INFO, release, received_at=office("2027-01-05T09:00"))
    run_pass(make_app("2027-01-05T09:05:00-05:00", retention_settings))

    shown = cli.json("2027-01-05T10:00:00-05:00", "show", ref)
    assert isinstance(shown, dict) and shown["legal_hold"] is None
    assert "legal_hold_released" in [e["kind"] for e in shown["events"]]
    trail = cli.json("2027-01-05T10:00:00-05:00", "audit", "--since", "2025-11-05")
    assert isinstance(trail, list)
    assert [(e["actor"], e["action"], e["ref"]) for e in trail] == [
        ("auditrice", "tickets", None),
        ("auditrice", "quarantine_list", None),
        (AGENT, "staff_legal_release", ref),
        ("mailbot", "retention_run", None),
        ("auditrice", "show", ref),
    ]
    # Released more than a year after closing, the ticket's messages were due at once: the
    # daemon's daily run, in the same pass, destroyed them; anonymising waits its turn.
    assert shown["raw_destroyed_at"] == "2027-01-05T14:05:00+00:00"
    assert shown["anonymised_at"] is None and shown["requester"] == CHLOE.address
    text = cli("2027-01-05T10:00:00-05:00", "show", ref)
    assert "raw destroyed:   2027-01-05 09:05" in text and "legal hold:" not in text
    header, *lines, zone = cli("2027-01-05T10:00:00-05:00", "audit", ref).splitlines()
    assert header.split()[:2] == ["when", "who"] and zone.startswith("(times are office time")
    assert [line.split()[2:4] for line in lines] == [
        [AGENT, "staff_close"],
        [AGENT, "staff_legal_hold"],
        [AGENT, "staff_legal_release"],
        ["auditrice", "show"],
        ["auditrice", "show"],
    ]
    history = cli("2027-01-05T10:00:00-05:00", "retention", "history").splitlines()
    # unlinked: the supervisor's two digests of November 2025, more than a year old.
    assert history[-1].split()[3:7] == ["daemon", "raw=1", "anonymised=0", "unlinked=2"]
    engine = make_engine(retention_settings.database_url)
    with engine.connect() as connection:
        unlinked = connection.execute(
            sa.text("SELECT purpose, length(raw) FROM outbox WHERE ticket_id IS NULL")
        ).all()
    engine.dispose()
    # The two of 2025 emptied; today's digest (2027-01-05), not a year old, kept.
    assert sorted(length > 0 for purpose, length in unlinked if purpose == "digest") == [
        False,
        False,
        True,
    ]


KILL_AFTER_FIRST_BATCH = """
import os, signal, sys
from pathlib import Path
from mailbot.clock import FixedClock, parse_instant
from mailbot.app import build_app
from mailbot.privacy.retention import run_retention
from mailbot.settings import load_settings

settings = load_settings(Path(sys.argv[1]), os.environ)
app = build_app(settings, FixedClock(parse_instant(sys.argv[2])))

def kill(batches: int) -> None:
    if batches == 1:
        os.kill(os.getpid(), signal.SIGKILL)

run_retention(app, trigger="cli", actor="test", after_batch=kill)
"""


def test_a_run_killed_by_sigkill_after_a_batch_is_finished_by_the_next(
    sandbox: Sandbox,
    make_app: AppFactory,
    retention_settings: Settings,
    cli: Cli,
    tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import sys

    people = [Person(f"k{n}.bouchard", f"Kim {n} Bouchard", INFO) for n in range(3)]
    refs = open_and_close(sandbox, make_app, retention_settings, people)
    config = write_sandbox_config(
        tmp_path / "small.toml",
        sandbox,
        tmp_path / "data",
        retention={"raw_days": 365, "anonymise_days": 730, "batch_size": 2},
    )
    later = (CLOSED + timedelta(days=800)).isoformat()
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_FIRST_BATCH, str(config), later],
        env=dict(os.environ),  # the cli fixture set the passwords, key and database
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    engine = make_engine(retention_settings.database_url)
    with engine.connect() as connection:
        halfway = connection.execute(
            sa.text("SELECT count(*) FROM ticket WHERE anonymised_at IS NOT NULL")
        ).scalar_one()
    assert halfway == 2

    resumed = cli.json(later, "retention", "run")

    assert isinstance(resumed, dict) and len(resumed["anonymised"]) == 1
    for person in people:
        assert traces(engine, person.strings) == {}
    assert cli_runs(cli, later) == [(2, False), (1, True)]
    history = cli.json(later, "retention", "history")
    assert isinstance(history, list)
    assert sorted(ref for h in history for ref in h["refs"]) == sorted(
        f"anonymised:{ref}" for ref in refs.values()
    )
    engine.dispose()
