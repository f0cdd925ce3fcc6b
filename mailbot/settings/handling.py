"""How mail is handled: classification rules, the language policy, staff limits, canned
answers (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from mailbot.settings.base import Frozen


class LanguageSettings(Frozen):
    """French always; an English version after it only where the policy allows it."""

    english_policy: Literal["never", "detected_english"] = "never"


class ClassificationSettings(Frozen):
    """Named rules' parameters (mailbot/intake/rules.py, categories.py); every list is lower-case
    text."""

    # Robot senders never get an automatic answer (RELIABILITY.md); a regular expression
    # matched against the local part of the sender's address.
    robot_pattern: str = (
        r"^(mailer-daemon|postmaster|owner-.*|.*-request|.*-bounces?|bounces?(\+.*)?|"
        r"no-?reply.*|ne-?pas-?repondre.*|abuse|root|daemon|notifications?)$"
    )
    # Phrases that make a message sent to the information mailbox a complaint.
    complaint_phrases: tuple[str, ...] = (
        "plainte",
        "je porte plainte",
        "je désire porter plainte",
        "formuler une plainte",
        "insatisfait",
        "insatisfaite",
        "mécontent",
        "mécontente",
        "inacceptable",
        "complaint",
        "i wish to complain",
        "i want to complain",
        "file a complaint",
        "dissatisfied",
        "unacceptable",
    )
    internship_phrases: tuple[str, ...] = (
        "stage",
        "stagiaire",
        "candidature de stage",
        "internship",
        "intern application",
    )
    cooperation_phrases: tuple[str, ...] = (
        "appel de projets",
        "coopération",
        "solidarité internationale",
        "projet de coopération",
        "call for projects",
        "cooperation project",
    )
    # Automatic answers per address per office day, and the global brake.
    per_address_daily_limit: Annotated[int, Field(ge=0)] = 10
    burst_limit: Annotated[int, Field(ge=1)] = 100
    burst_window_minutes: Annotated[int, Field(ge=1)] = 10
    # A follow-up gets no new acknowledgement; at most this short notice.
    followup_notice: bool = False


class StaffSettings(Frozen):
    """Limits on what one person does by email (mailbot/staff/limits.py): each person may
    close, refer, merge and relay at most `actions_per_hour` times in any hour; past that,
    their further acts are held until a supervisor releases them (`#libérer ADRESSE`)."""

    actions_per_hour: Annotated[int, Field(ge=1, le=1000)] = 20


class AnswersSettings(Frozen):
    """Canned answers (mailbot/mail/canned.py): the folder of `NAME.fr.txt` / `NAME.en.txt`
    Jinja2 files the ministry maintains; none when unset."""

    dir: Path | None = None
