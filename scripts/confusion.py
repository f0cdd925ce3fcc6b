"""Classify the labelled corpus and print the confusion table; exit 1 on any mislabel.

Usage: .venv/bin/python scripts/confusion.py [CORPUS_DIR]   (default: tests/corpus)

The corpus is a folder of .eml files and a labels.toml that gives, per file, the expected
kind (and category, language, ticket, rules...) and the test context: staff, tickets in the
database, messages already stored. Each message is classified the way the application does
it: `candidate_refs` first, then only the tickets it names are passed to `classify`.
tests/mail/test_corpus.py imports this module, so the test and the table never disagree.
"""

from __future__ import annotations

import sys
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from mailbot.intake.classify import classify  # noqa: E402
from mailbot.intake.thread_links import candidate_refs  # noqa: E402
from mailbot.intake.verdicts import ClassifyContext, Kind, TicketFacts, Verdict  # noqa: E402
from mailbot.mail.parse import InboundMail, parse_message  # noqa: E402
from mailbot.settings import ClassificationSettings, MailboxSettings  # noqa: E402

DEFAULT_CORPUS = REPO / "tests" / "corpus"
PERSON_KINDS = (Kind.NEW_REQUEST, Kind.FOLLOW_UP)


@dataclass(frozen=True, slots=True)
class Label:
    """What one corpus message must be classified as (see the header of labels.toml)."""

    file: str
    kind: Kind
    mailbox: str = "renseignements"
    category: str | None = None
    language: str | None = None
    ticket: str | None = None
    auto_answer: bool | None = None
    rules: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True, slots=True)
class Corpus:
    """The labelled messages and the world they are classified in."""

    directory: Path
    labels: Mapping[str, Label]
    signing_key: bytes
    message_id_domain: str
    ticket_prefix: str
    own_addresses: frozenset[str]
    staff_addresses: frozenset[str]
    staff_domains: frozenset[str]
    available_categories: frozenset[str]
    mailboxes: Mapping[str, MailboxSettings]
    tickets: Mapping[str, TicketFacts]
    known_message_ids: Mapping[str, str]

    def files(self) -> tuple[Path, ...]:
        return tuple(sorted(self.directory.glob("*.eml")))


@dataclass(frozen=True, slots=True)
class Result:
    label: Label
    verdict: Verdict
    problems: tuple[str, ...]


def _label(file: str, table: Mapping[str, Any]) -> Label:
    return Label(
        file=file,
        kind=Kind(table["kind"]),
        mailbox=table.get("mailbox", "renseignements"),
        category=table.get("category"),
        language=table.get("language"),
        ticket=table.get("ticket"),
        auto_answer=table.get("auto_answer"),
        rules=tuple(table.get("rules", ())),
        source=table.get("source", ""),
    )


def load_corpus(directory: Path = DEFAULT_CORPUS) -> Corpus:
    document = tomllib.loads((directory / "labels.toml").read_text(encoding="utf-8"))
    context = document["context"]
    mailboxes = {
        name: MailboxSettings(
            name=name,
            address=box["address"],
            display_name=name,
            login=box["address"],
            password_env="UNUSED",
            category=box["category"],
            commitments=(),
            staff=tuple(box.get("staff", ())),
            supervisors=tuple(box.get("supervisors", ())),
        )
        for name, box in context["mailboxes"].items()
    }
    tickets = {
        ref: TicketFacts(ref=ref, requester=facts["requester"], status=facts["status"])
        for ref, facts in context["tickets"].items()
    }
    return Corpus(
        directory=directory,
        labels={file: _label(file, table) for file, table in document["messages"].items()},
        signing_key=context["signing_key"].encode(),
        message_id_domain=context["message_id_domain"],
        ticket_prefix=context["ticket_prefix"],
        own_addresses=frozenset(context["own_addresses"]),
        staff_addresses=frozenset(context["staff_addresses"]),
        staff_domains=frozenset(context["staff_domains"]),
        available_categories=frozenset(context["available_categories"]),
        mailboxes=mailboxes,
        tickets=tickets,
        known_message_ids=dict(context.get("known_message_ids", {})),
    )


def context_for(mail: InboundMail, label: Label, corpus: Corpus) -> ClassifyContext:
    """The context the application would build: only the facts it would have looked up."""
    refs = candidate_refs(mail, corpus.signing_key, corpus.ticket_prefix)
    stored = corpus.known_message_ids
    known = {item: stored[item] for item in mail.thread_ids if item in stored}
    wanted = refs | set(known.values())
    return ClassifyContext(
        mailbox=corpus.mailboxes[label.mailbox],
        rules=ClassificationSettings(),
        own_addresses=corpus.own_addresses,
        message_id_domain=corpus.message_id_domain,
        staff_addresses=corpus.staff_addresses,
        staff_domains=corpus.staff_domains,
        signing_key=corpus.signing_key,
        tickets={ref: corpus.tickets[ref] for ref in wanted if ref in corpus.tickets},
        known_message_ids=known,
        available_categories=corpus.available_categories,
        notes_addresses=frozenset(box.notes_address for box in corpus.mailboxes.values()),
    )


def problems(label: Label, verdict: Verdict) -> tuple[str, ...]:
    """Every way `verdict` differs from `label`; empty when the message is labelled right."""
    found: list[str] = []

    def expect(what: str, expected: object, actual: object) -> None:
        if expected != actual:
            found.append(f"{what}: expected {expected!r}, got {actual!r}")

    expect("kind", label.kind, verdict.kind)
    expect("ticket", label.ticket, verdict.ticket_ref)
    if label.kind is Kind.NEW_REQUEST or label.category is not None:
        expect("category", label.category, verdict.category)
    if label.kind in PERSON_KINDS or label.language is not None:
        expect("language", label.language, verdict.language)
    if label.auto_answer is not None:
        expect("may_auto_answer", label.auto_answer, verdict.may_auto_answer)
    missing = [rule for rule in label.rules if rule not in verdict.rules]
    if missing:
        found.append(f"rules: expected {missing} among {list(verdict.rules)}")
    return tuple(found)


def classify_file(path: Path, corpus: Corpus) -> Result:
    label = corpus.labels[path.name]
    mail = parse_message(path.read_bytes())
    verdict = classify(mail, context_for(mail, label, corpus))
    return Result(label=label, verdict=verdict, problems=problems(label, verdict))


def coverage_problems(corpus: Corpus) -> tuple[str, ...]:
    """Files without a label and labels without a file."""
    files = {path.name for path in corpus.files()}
    unlabelled = sorted(files - set(corpus.labels))
    orphans = sorted(set(corpus.labels) - files)
    return tuple(
        [f"{name}: no label in labels.toml" for name in unlabelled]
        + [f"{name}: labelled, but there is no such file" for name in orphans]
    )


def confusion_table(results: Sequence[Result]) -> str:
    """Expected kind (rows) x predicted kind (columns), then per-kind counts."""
    kinds = list(Kind)
    short = {kind: kind.value for kind in kinds}
    cells = Counter((r.label.kind, r.verdict.kind) for r in results)
    width = max(len(name) for name in short.values())
    lines = ["expected \\ predicted"]
    header = " " * (width + 3) + " ".join(f"{i:>3}" for i in range(1, len(kinds) + 1))
    lines.append(header + "  total  wrong")
    for row, kind in enumerate(kinds, start=1):
        counts = [cells[(kind, other)] for other in kinds]
        total = sum(counts)
        wrong = sum(1 for r in results if r.label.kind is kind and r.problems)
        numbers = " ".join(f"{n:>3}" if n else "  ." for n in counts)
        lines.append(f"{short[kind]:<{width}} {row:>2} {numbers}  {total:>5}  {wrong:>5}")
    lines.append("")
    lines.append("columns: " + ", ".join(f"{i}={k.value}" for i, k in enumerate(kinds, 1)))
    by_kind = Counter(r.label.kind for r in results)
    lines.append("per kind: " + ", ".join(f"{k.value}={by_kind[k]}" for k in kinds))
    lines.append(f"messages: {len(results)}, mislabelled: {sum(1 for r in results if r.problems)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    corpus = load_corpus(Path(args[0]) if args else DEFAULT_CORPUS)
    errors = list(coverage_problems(corpus))
    results = [classify_file(p, corpus) for p in corpus.files() if p.name in corpus.labels]
    print(confusion_table(results))
    for result in results:
        errors.extend(f"{result.label.file}: {problem}" for problem in result.problems)
    if errors:
        print("\nMISLABELLED:")
        print("\n".join(f"  {line}" for line in errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
