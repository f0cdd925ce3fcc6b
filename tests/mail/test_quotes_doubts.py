"""Replies whose cut is uncertain: an internal marker left above the cut, answers written
inline or below the quote, nothing but history; each doubt is named, never guessed away."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from mailbot.mail.quotes import CUT_RULES, DOUBT_RULES, ReplyText, extract_new_text
from tests.mail.test_quotes import MARKERS, OUTLOOK_FR

INTERNAL_MARKER_LEFT = """\
Bonjour Madame Tremblay, votre demande est acceptée.

Renseignements MRI a répondu le lundi :
Usage interne : répondez au-dessus de cette ligne.
Demande de Marie Tremblay.
"""

INLINE_REPLY = """\
Voici les réponses.

On Mon, Nov 3, 2025 at 10:00 AM MRI Information <renseignements@mri.gouv.qc.ca> wrote:
> Quelle est la date limite ?
Le 30 novembre.
> Faut-il un original ?
Non, une copie suffit.
"""

BOTTOM_POSTED = """\
On 2025-11-03 10:00, MRI Information wrote:
> Usage interne: reply above this line.
Hello, the form is fine.
"""

QUOTE_IN_THE_MIDDLE = """\
Bonjour,

> Pouvez-vous confirmer la date ?

Oui, le 20 novembre.
Sophie
"""

ANNOUNCED_INLINE = """\
Bonjour, mes réponses sont en rouge dans le texte ci-dessous.

De : Marie Tremblay <marie.tremblay@gmail.com>
Envoyé : 3 novembre 2025 10:00
À : Renseignements MRI
Objet : Questions
"""

NOTHING_BUT_HISTORY = """\
-----Message d'origine-----
De : Renseignements MRI
Envoyé : 3 novembre 2025 10:00
Objet : [MRI-2025-00042]
"""

UNCERTAIN_CASES = [
    pytest.param(
        INTERNAL_MARKER_LEFT,
        ReplyText(
            text=INTERNAL_MARKER_LEFT.rstrip(),
            certain=False,
            cut_by="",
            doubts=("internal_marker",),
        ),
        id="internal-marker-left-in-kept-text",
    ),
    pytest.param(
        INLINE_REPLY,
        ReplyText(
            text="Voici les réponses.",
            certain=False,
            cut_by="attribution",
            doubts=("inline_reply",),
        ),
        id="inline-reply-between-quotes",
    ),
    pytest.param(
        BOTTOM_POSTED,
        ReplyText(
            text="",
            certain=False,
            cut_by="attribution",
            doubts=("text_below_quote", "nothing_to_relay"),
        ),
        id="bottom-posted-reply-leaves-nothing-above",
    ),
    pytest.param(
        QUOTE_IN_THE_MIDDLE,
        ReplyText(
            text="Bonjour,",
            certain=False,
            cut_by="quoted_block",
            doubts=("text_below_quote",),
        ),
        id="quote-in-the-middle-without-header",
    ),
    pytest.param(
        ANNOUNCED_INLINE,
        ReplyText(
            text="Bonjour, mes réponses sont en rouge dans le texte ci-dessous.",
            certain=False,
            cut_by="outlook_header_block",
            doubts=("answers_announced_inline",),
        ),
        id="answers-announced-in-red",
    ),
    pytest.param(
        NOTHING_BUT_HISTORY,
        ReplyText(
            text="",
            certain=False,
            cut_by="original_message_separator",
            doubts=("nothing_to_relay",),
        ),
        id="empty-new-text",
    ),
    pytest.param(
        "> Quelle est la date ?\nLe 30.\n> Et le lieu ?\nQuébec.\n",
        ReplyText(
            text="",
            certain=False,
            cut_by="quoted_block",
            doubts=("inline_reply", "nothing_to_relay"),
        ),
        id="inline-reply-from-the-first-line",
    ),
]


@pytest.mark.parametrize(("body", "expected"), UNCERTAIN_CASES)
def test_extract_new_text_uncertain(body: str, expected: ReplyText) -> None:
    assert extract_new_text(body, internal_markers=MARKERS) == expected


def test_internal_markers_match_across_case_accents_and_line_breaks() -> None:
    body = "Merci.\nREFERENCE\ninterne : 42\n"
    assert extract_new_text(body, internal_markers=MARKERS).doubts == ("internal_marker",)
    assert extract_new_text(body).certain is True  # no markers configured


def test_a_marker_below_the_cut_is_expected_history() -> None:
    assert extract_new_text(OUTLOOK_FR, internal_markers=MARKERS).certain is True


def test_rule_names_are_unique() -> None:
    names = [rule.name for rule in CUT_RULES] + [rule.name for rule in DOUBT_RULES]
    assert len(names) == len(set(names))


def test_reply_text_is_frozen() -> None:
    reply = extract_new_text("Bonjour")
    with pytest.raises(FrozenInstanceError):
        reply.text = "autre"  # type: ignore[misc]
