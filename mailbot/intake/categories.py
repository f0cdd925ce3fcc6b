"""Categories of new requests: which queue a new request opens in (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from mailbot.intake.verdicts import ClassifyContext
from mailbot.mail.addresses import addresses_in
from mailbot.mail.parse import InboundMail
from mailbot.mail.text import fold
from mailbot.settings import Category, ClassificationSettings

# How much of the body the category phrases read: the request itself, not a quoted thread.
CATEGORY_TEXT_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """Moves a new request sent to the information mailbox to another queue that exists."""

    name: str
    category: Category
    phrases: Callable[[ClassificationSettings], tuple[str, ...]]
    reason: str


CATEGORY_RULES: tuple[CategoryRule, ...] = (
    CategoryRule(
        "complaint_phrase",
        "complaint",
        lambda rules: rules.complaint_phrases,
        "formulation de plainte : classé comme plainte",
    ),
    CategoryRule(
        "internship_phrase",
        "internship",
        lambda rules: rules.internship_phrases,
        "formulation de candidature de stage",
    ),
    CategoryRule(
        "cooperation_phrase",
        "cooperation",
        lambda rules: rules.cooperation_phrases,
        "formulation de projet de coopération",
    ),
)


@lru_cache(maxsize=32)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """Whole words, any spacing, accent- and case-insensitive (text is folded first)."""
    alternatives = [
        r"\s+".join(re.escape(word) for word in fold(phrase).split()) for phrase in phrases
    ]
    alternatives = [item for item in alternatives if item]
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


ADDRESSED_TO_COMPLAINTS = CategoryRule(
    "addressed_to_complaints",
    "complaint",
    lambda rules: (),
    "adressé aussi à la boîte des plaintes : classé comme plainte",
)


def categorise(
    mail: InboundMail, context: ClassifyContext
) -> tuple[Category, tuple[CategoryRule, ...]]:
    """The queue of a new request. A message the citizen addressed to the complaints mailbox
    too (To or Cc) is a complaint whichever copy is read first: one request, one ticket."""
    default = context.mailbox.category
    if default != "complaint" and context.complaint_addresses & addresses_in(
        " ".join((*mail.header_values("to"), *mail.header_values("cc")))
    ):
        return "complaint", (ADDRESSED_TO_COMPLAINTS,)
    if default != "information":
        return default, ()
    text = fold(f"{mail.subject}\n{mail.text[:CATEGORY_TEXT_CHARS]}")
    fired = []
    for rule in CATEGORY_RULES:
        if rule.category not in context.available_categories:
            continue
        pattern = _phrase_pattern(tuple(rule.phrases(context.rules)))
        if pattern is not None and pattern.search(text):
            fired.append(rule)
    return (fired[0].category if fired else default), tuple(fired)
