"""Canned answers: the ministry's prepared texts, one Jinja2 file per name and language in the
folder `[answers] dir` names (`passeport.fr.txt`, `passeport.en.txt`).

`load_answers` reads and checks the folder once, at start-up: a file whose name does not fit,
an English text without its French one, or a template that does not compile or render with
sample values is a `ConfigError` naming the file (`mailbot check` says which; exit 2).
Rendering is pure: the templates run in Jinja2's sandbox, and the ticket's values (the
citizen's name, the subject) are only ever variables, never template source.

Variables a canned answer may use: ``ref``, ``name`` (the citizen's name, may be empty),
``subject``, ``receipt_date``, ``due_date`` (may be empty), ``today``, ``queue`` (the queue's
name as the citizen sees it) and ``organisation``. Dates come worded in the file's language
("lundi 3 novembre 2025", "Monday, November 3, 2025"), by the macros of `templates/_dates.j2`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

import jinja2
import jinja2.sandbox

from mailbot.errors import ConfigError
from mailbot.settings import Settings

log = logging.getLogger(__name__)

LANGUAGES = ("fr", "en")
_FILE_NAME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]{0,63})\.(?P<language>fr|en)\.txt$")
_SAMPLE = {
    "ref": "MRI-2025-00001",
    "name": "Josée Tremblay",
    "subject": "Demande de renseignements",
    "queue": "Renseignements",
    "organisation": "Ministère",
}
_SAMPLE_DAY = date(2025, 11, 3)


class TicketForAnswers(Protocol):
    """What a canned answer may say about a ticket (`db.ticket_rows.TicketRow` has it all)."""

    @property
    def ref(self) -> str: ...
    @property
    def mailbox(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def requester_name(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def receipt_date(self) -> date: ...
    @property
    def due_date(self) -> date | None: ...
    @property
    def english_allowed(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class AnswerText:
    """One canned answer rendered for one ticket: French, and English when allowed and
    written."""

    french: str
    english: str | None


@dataclass(frozen=True, slots=True)
class CannedAnswers:
    """The canned answers found at start-up, by name then language."""

    folder: Path | None = None
    templates: Mapping[str, Mapping[str, jinja2.Template]] = field(default_factory=dict)
    dates: jinja2.Template | None = None  # templates/_dates.j2, for the date wording

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.templates))

    def languages(self, name: str) -> tuple[str, ...]:
        return tuple(language for language in LANGUAGES if language in self.templates[name])

    def render(self, name: str, values: Mapping[str, object], *, english: bool) -> AnswerText:
        """Answer `name` with `values` (see `ticket_values`); KeyError for an unknown name."""
        found = self.templates[name]
        french = found["fr"].render(self._worded(values, "fr")).strip()
        english_text = None
        if english and "en" in found:
            english_text = found["en"].render(self._worded(values, "en")).strip()
        return AnswerText(french=french, english=english_text)

    def _worded(self, values: Mapping[str, object], language: str) -> dict[str, object]:
        """`values` with each date worded in `language` ("" for none)."""
        worded: dict[str, object] = {}
        for key, value in values.items():
            if isinstance(value, date) or (value is None and key.endswith("date")):
                worded[key] = self._date(value, language)
            else:
                worded[key] = value
        return worded

    def _date(self, day: date | None, language: str) -> str:
        if day is None:
            return ""
        if self.dates is None:
            return day.isoformat()
        macro = getattr(self.dates.module, f"date_{language}")
        return str(macro(day)).strip()


def ticket_values(settings: Settings, ticket: TicketForAnswers, today: date) -> dict[str, object]:
    """What a canned answer may say about `ticket` (its dates as dates, worded later)."""
    queue = settings.queue_for(ticket.category, ticket.mailbox)
    return {
        "ref": ticket.ref,
        "name": ticket.requester_name,
        "subject": ticket.subject,
        "receipt_date": ticket.receipt_date,
        "due_date": ticket.due_date,
        "today": today,
        "queue": queue.display_name,
        "organisation": settings.organisation.name,
    }


def may_write_english(settings: Settings, ticket: TicketForAnswers) -> bool:
    """An English version follows the French one where the ticket's language rules allow it:
    the policy trusts detected English, or staff recorded a legal basis (`#anglais :`)."""
    detected = settings.language.english_policy == "detected_english" and ticket.language == "en"
    return detected or ticket.english_allowed


def load_answers(folder: Path | None, templates_dir: Path | None = None) -> CannedAnswers:
    """Read and check every canned answer in `folder` (none when `folder` is None)."""
    dates = _date_macros(templates_dir)
    if folder is None:
        return CannedAnswers(dates=dates)
    if not folder.is_dir():
        raise ConfigError(f"[answers] dir {folder}: not a folder")
    environment = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    found: dict[str, dict[str, jinja2.Template]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".txt" or path.name.startswith("."):
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ConfigError(
                f"[answers] {path}: a canned answer is named NAME.fr.txt or NAME.en.txt "
                "(lower-case letters without accents, digits, '-' and '_')"
            )
        try:
            template = environment.get_template(path.name)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"[answers] {path}: {_describe(exc)}") from exc
        found.setdefault(match.group("name"), {})[match.group("language")] = template
    answers = CannedAnswers(folder=folder, templates=found, dates=dates)
    sample = {**_SAMPLE, "receipt_date": _SAMPLE_DAY, "due_date": _SAMPLE_DAY, "today": _SAMPLE_DAY}
    for name, languages in found.items():
        if "fr" not in languages:
            raise ConfigError(
                f"[answers] {folder / (name + '.en.txt')}: no French text {name}.fr.txt "
                "(French always comes first)"
            )
        for language, template in languages.items():
            try:
                template.render(answers._worded(sample, language))
            except jinja2.TemplateError as exc:
                where = folder / f"{name}.{language}.txt"
                raise ConfigError(f"[answers] {where}: {_describe(exc)}") from exc
    log.info("%d canned answer(s) in %s", len(found), folder)
    return answers


def _describe(exc: jinja2.TemplateError) -> str:
    line = getattr(exc, "lineno", None)
    return f"line {line}: {exc.message}" if line else str(exc.message or exc)


def _date_macros(templates_dir: Path | None) -> jinja2.Template | None:
    if templates_dir is None or not (templates_dir / "_dates.j2").exists():
        return None
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)), autoescape=False
    )
    return environment.get_template("_dates.j2")
