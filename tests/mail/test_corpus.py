"""Every message of tests/corpus gets the label labels.toml gives it.

The loading and checking code is scripts/confusion.py's, so the confusion table printed for
people and this test can never disagree.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from mailbot.intake.categories import CATEGORY_RULES
from mailbot.intake.rules import RULES
from mailbot.intake.verdicts import Kind

REPO = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO / "tests" / "corpus"


def _load_confusion() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "corpus_confusion", REPO / "scripts" / "confusion.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


confusion = _load_confusion()
CORPUS = confusion.load_corpus(CORPUS_DIR)
FILES = CORPUS.files()

# Rules the corpus cannot show, and why; tests/intake/test_classify.py covers them.
NOT_IN_CORPUS = {
    "cooperation_phrase": "the corpus context has no cooperation queue",
    "several_tickets": "no realistic message names two of the corpus tickets",
}


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_message_gets_its_label(path: Path) -> None:
    result = confusion.classify_file(path, CORPUS)
    assert result.problems == (), "\n".join(result.problems)


def test_every_file_is_labelled_and_every_label_has_a_file() -> None:
    assert confusion.coverage_problems(CORPUS) == ()


def test_corpus_size_and_kinds() -> None:
    counts = Counter(label.kind for label in CORPUS.labels.values())
    assert sum(counts.values()) >= 60
    assert set(counts) == set(Kind), f"kinds without a sample: {set(Kind) - set(counts)}"
    assert counts[Kind.NEW_REQUEST] >= 15
    assert counts[Kind.FOLLOW_UP] >= 8
    assert counts[Kind.AUTO_REPLY] >= 5
    assert counts[Kind.BOUNCE] >= 5


def test_both_languages_and_both_mailboxes_are_represented() -> None:
    labels = CORPUS.labels.values()
    new_requests = [label for label in labels if label.kind is Kind.NEW_REQUEST]
    assert {label.language for label in new_requests} == {"fr", "en"}
    assert {label.category for label in new_requests} >= {"information", "complaint"}
    assert {label.mailbox for label in labels} == {"renseignements", "plaintes"}


def test_every_rule_fires_somewhere_in_the_corpus() -> None:
    fired: set[str] = set()
    for path in FILES:
        fired.update(confusion.classify_file(path, CORPUS).verdict.rules)
    names = {rule.name for rule in RULES} | {rule.name for rule in CATEGORY_RULES}
    assert names - fired == set(NOT_IN_CORPUS)


def test_copied_samples_name_their_source() -> None:
    notice = (CORPUS_DIR / "THIRD_PARTY.md").read_text(encoding="utf-8")
    for label in CORPUS.labels.values():
        if label.file.startswith("mimekit_"):
            assert "(MIT)" in label.source
            assert label.file in notice


def test_confusion_script_prints_the_table_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert confusion.main([str(CORPUS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "expected \\ predicted" in out
    assert f"messages: {len(FILES)}, mislabelled: 0" in out


def test_confusion_script_fails_on_a_mislabelled_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(CORPUS_DIR / "fr_gmail_new_request.eml", tmp_path)
    shutil.copy(CORPUS_DIR / "bounce_qmail_failure_notice.eml", tmp_path)
    labels = (CORPUS_DIR / "labels.toml").read_text(encoding="utf-8")
    context = labels[: labels.index("# --- New requests")]
    (tmp_path / "labels.toml").write_text(
        context
        + '[messages."fr_gmail_new_request.eml"]\n'
        + 'kind = "follow_up"\nlanguage = "fr"\n'
        + '[messages."bounce_qmail_failure_notice.eml"]\nkind = "bounce"\n'
        + 'ticket = "MRI-2025-00071"\n'
        + '[messages."missing.eml"]\nkind = "robot"\n',
        encoding="utf-8",
    )
    assert confusion.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "fr_gmail_new_request.eml: kind: expected <Kind.FOLLOW_UP" in out
    assert "missing.eml: labelled, but there is no such file" in out
    assert "bounce_qmail_failure_notice.eml:" not in out.split("MISLABELLED:")[1]
