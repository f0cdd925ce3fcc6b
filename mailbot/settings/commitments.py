"""The published commitments of the service declaration and how business days are counted
(pure)."""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import Field

from mailbot.settings.base import Frozen


class CommitmentSettings(Frozen):
    """One published commitment of the service declaration."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    label: str
    business_days: Annotated[int, Field(ge=0, le=365)]
    target: Annotated[float, Field(gt=0, le=1)]
    # What starts the clock: receipt of the request, or a date staff give (interview, committee).
    starts_at: Literal["receipt", "staff_date"] = "receipt"
    kind: Literal["acknowledgement", "reply", "result"] = "reply"
    # Counted "from the complete request": when staff declare the request incomplete, this
    # clock starts again from the receipt day of what completes it (docs/complete-request.md).
    from_complete_request: bool = False


DEFAULT_COMMITMENTS: tuple[CommitmentSettings, ...] = (
    CommitmentSettings(
        id="ack",
        label="Accusé de réception",
        business_days=2,
        target=0.95,
        kind="acknowledgement",
    ),
    CommitmentSettings(
        id="info_reply",
        label="Réponse à une demande de renseignements",
        business_days=10,
        target=0.90,
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="complaint_reply",
        label="Réponse à une plainte",
        business_days=15,
        target=0.85,
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="internship_ack",
        label="Accusé de réception d'une candidature de stage",
        business_days=2,
        target=0.95,
        kind="acknowledgement",
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="internship_result",
        label="Résultat de la sélection finale de stage",
        business_days=15,
        target=0.85,
        starts_at="staff_date",
        kind="result",
    ),
    CommitmentSettings(
        id="cooperation_ack",
        label="Accusé de réception d'un projet de coopération",
        business_days=2,
        target=0.95,
        kind="acknowledgement",
        from_complete_request=True,
    ),
    CommitmentSettings(
        id="cooperation_result",
        label="Résultat de l'évaluation d'un projet de coopération",
        business_days=30,
        target=0.80,
        starts_at="staff_date",
        kind="result",
    ),
)


class CalendarSettings(Frozen):
    """How business days are counted (see SERVICE-STANDARDS.md, "Counting business days")."""

    receipt_cutoff: time = time(16, 30)
    # The official yearly list wins: add or remove single dates, add extra closure days.
    add_holidays: tuple[date, ...] = ()
    remove_holidays: tuple[date, ...] = ()
    closure_days: tuple[date, ...] = ()
