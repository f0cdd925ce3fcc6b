"""French or English? An offline, deterministic guess from words and letters (pure).

Only two answers exist, and French is the default: the ministry always writes in French
(SERVICE-STANDARDS.md, "Language"), so a wrong "en" costs more than a wrong "fr". English
wins only with clearly more evidence than French; short, mixed or empty text is French.

Evidence, per language:
  - function words (articles, pronouns, prepositions, courtesy words), which carry most of
    the signal in short mail;
  - for French, elided forms (``j'ai``, ``l'``, ``qu'``) and accented letters, capped so that
    an English message about Montréal or Québec stays English;
  - common character trigrams that belong to one language and not the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Language = Literal["fr", "en"]

# Only the start of a message is read: enough for a verdict, bounded for hostile input.
MAX_CHARS = 4_000
# English must beat French by this factor, and reach this much evidence, to win.
ENGLISH_MARGIN = 1.5
ENGLISH_MINIMUM = 3.0
ENGLISH_MINIMUM_WORDS = 2

_WORD_WEIGHT = 2.0
_ELISION_WEIGHT = 1.5
_ACCENT_WEIGHT = 0.5
_ACCENT_CAP = 8
_TRIGRAM_WEIGHT = 0.25


def _listed(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words and trigrams that are common in both languages are left out: "a", "on", "son", "me",
# "an", "car", "information"; "_pr", "es_", "ons", "and" (quand, demande)...
_FRENCH_WORDS = _listed(
    """
    le la les de des du un une et est sont je tu il elle nous vous ils elles pour que qui
    en par se sa ses lui si oui svp quoi dans avec sur au aux cette ces mon ma mes ta tes
    votre vos notre nos leur leurs pas ne ou où mais donc être avoir ai avez avons suis
    était été fait faire peut pouvez puis voudrais souhaite aimerais merci bonjour bonsoir
    madame monsieur salutations cordialement veuillez agréer demande dossier réponse très
    aussi comme bien chez entre depuis sous lors selon déjà encore alors ainsi quand
    comment pourquoi lequel laquelle ceci cela ça ici chaque toute tous toutes autre même
    après avant jusqu concernant auprès afin à
    """
)
_ENGLISH_WORDS = _listed(
    """
    the and of to is are was were be been being have has had i you he she we they my your
    our their this that these those with from for not but or if at by about would could
    should will can may please thank thanks hello hi dear regards sincerely kind best
    there what which who whom when where why how into onto upon than then also very just
    all any some each other such only own same after before until because while since
    do does did done get got it its it's i'm i've i'd don't can't won't wish want need
    know let us him her them
    """
)
_FRENCH_TRIGRAMS = _listed(
    """
    la_ _et pou vou _je je_ une du_ aux ux_ eur ais ait oir ité _à_ _ét été té_ ez_ ai_
    ée_ eux
    """
)
_ENGLISH_TRIGRAMS = _listed(
    """
    _th the he_ ing ng_ to_ _of of_ ed_ _is _wh hat tha _yo you _wi wit ith th_ _ha or_
    ly_ _my _it uld _we ght igh wou ey_ ck_ ks_ ay_ ow_
    """
)

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_ELISION = re.compile(r"(?<![^\W\d_])(?:j|l|d|qu|n|c|s|m|t|jusqu|lorsqu|puisqu)['’][^\W\d_]", re.I)
_FRENCH_LETTERS = re.compile(r"[éèêëàâîïôûùüçœæ]", re.I)
_QUOTED_LINE = re.compile(r"^[ \t]*>.*$", re.M)
_URLISH = re.compile(r"\S+@\S+|https?://\S+|www\.\S+", re.I)


@dataclass(frozen=True, slots=True)
class LanguageScores:
    """The evidence behind a verdict, for tests and `mailbot show`."""

    french: float
    english: float
    english_words: int = 0  # trigrams alone never make a text English

    @property
    def language(self) -> Language:
        wins = (
            self.english_words >= ENGLISH_MINIMUM_WORDS
            and self.english >= ENGLISH_MINIMUM
            and self.english > self.french * ENGLISH_MARGIN
        )
        return "en" if wins else "fr"


def _trigrams(words: list[str]) -> list[str]:
    found: list[str] = []
    for word in words:
        padded = f"_{word}_"
        found.extend(padded[i : i + 3] for i in range(len(padded) - 2))
    return found


def score_language(text: str) -> LanguageScores:
    """Weighted French and English evidence in `text` (quoted lines and addresses ignored)."""
    sample = _URLISH.sub(" ", _QUOTED_LINE.sub(" ", text[:MAX_CHARS]))
    lowered = sample.lower()
    words = [word.replace("’", "'") for word in _WORD.findall(lowered)]
    # English contractions ("don't") are words of their own; French elisions ("qu'il") count
    # once as an elision and once for the word after the apostrophe.
    split_words = [part for word in words for part in word.split("'") if part]
    english_words = sum(word in _ENGLISH_WORDS for word in words)
    french = _WORD_WEIGHT * sum(word in _FRENCH_WORDS for word in split_words)
    english = _WORD_WEIGHT * english_words
    french += _ELISION_WEIGHT * len(_ELISION.findall(lowered))
    french += _ACCENT_WEIGHT * min(len(_FRENCH_LETTERS.findall(lowered)), _ACCENT_CAP)
    grams = _trigrams(split_words)
    french += _TRIGRAM_WEIGHT * sum(gram in _FRENCH_TRIGRAMS for gram in grams)
    english += _TRIGRAM_WEIGHT * sum(gram in _ENGLISH_TRIGRAMS for gram in grams)
    return LanguageScores(french=french, english=english, english_words=english_words)


def detect_language(text: str) -> Language:
    """ "en" only when English clearly outweighs French; "fr" otherwise, including when unsure."""
    return score_language(text).language
