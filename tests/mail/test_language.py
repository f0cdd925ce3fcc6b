"""French or English, French when unsure: a table of texts and what they are."""

from __future__ import annotations

import pytest

from mailbot.mail.language import (
    ENGLISH_MARGIN,
    MAX_CHARS,
    LanguageScores,
    detect_language,
    score_language,
)

FRENCH = [
    "Bonjour, j'aimerais savoir comment obtenir une attestation. Merci!",
    "Je suis très mécontent du service reçu au bureau de Paris.",
    "Madame, Monsieur, veuillez agréer mes salutations distinguées.",
    "Est-ce que la Délégation peut certifier une copie de mon permis?",
    "Je serai absente du bureau jusqu'au 15 janvier.",
    "Voici le numéro de passeport demandé : GA123456. Merci.",
    "J'ai déposé ma demande il y a quatre mois et je n'ai reçu aucune nouvelle.",
    "RE : Votre demande MRI-2025-00042",
    "Demande d'information",
    # No accents at all, as typed on an English keyboard.
    "Bonjour, je voudrais savoir si le ministere offre de l'aide pour les sejours.",
]
ENGLISH = [
    "Hello, I would like information about the program. Thanks",
    "Hi, just following up on my request. Any news? Regards, John",
    "I am out of the office until November 17 with limited access to email.",
    "Could you please send the letter to my email address instead?",
    "Question about my file",
    "Hello there",
    # Quebec place names keep their accents in English mail.
    "I live in Montréal and I would like to know how the Québec office works for visas.",
    "We are moving from Dublin to Montréal next summer; which documents should we bring?",
]
UNSURE = [
    "",
    "   \n\t ",
    "OK",
    "Merci",
    "Thanks!",  # one English word is not enough
    "MRI-2025-00042",
    "Bonjour / Hello",  # a tie
    "12345 67890",
    "https://www.quebec.ca/gouvernement jean@example.org",
]


@pytest.mark.parametrize("text", FRENCH)
def test_french(text: str) -> None:
    assert detect_language(text) == "fr"


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert detect_language(text) == "en"


@pytest.mark.parametrize("text", UNSURE)
def test_french_when_unsure(text: str) -> None:
    assert detect_language(text) == "fr"


def test_bilingual_message_with_french_first_is_french() -> None:
    text = (
        "Bonjour, je voudrais savoir où en est mon dossier. Merci.\n"
        "Hello, I would like to know the status of my file. Thank you."
    )
    assert detect_language(text) == "fr"


def test_accents_count_for_french() -> None:
    plain, accented = score_language("reponse deja recue"), score_language("réponse déjà reçue")
    assert accented.french > plain.french
    assert accented.english == plain.english


def test_accents_are_capped_so_place_names_do_not_decide() -> None:
    names = "Montréal Québec Trois-Rivières Lévis "
    assert score_language(names * 20).french == score_language(names * 40).french
    assert score_language(names * 20).french > score_language(names).french


def test_elisions_count_for_french() -> None:
    assert (
        score_language("l'office d'Ottawa qu'ils").french > score_language("office Ottawa").french
    )


def test_english_contractions_count_as_words() -> None:
    scores = score_language("I don't know, it's late and I can't wait")
    assert scores.english_words >= 5
    assert scores.language == "en"


def test_quoted_lines_and_addresses_are_ignored() -> None:
    text = (
        "Thank you for your help, I will send it today.\n"
        "> Bonjour, nous avons bien reçu votre demande.\n"
        "> Merci de votre patience et à bientôt."
    )
    assert score_language(text).french == 0
    assert detect_language(text) == "en"
    assert score_language("marie.tremblay@gmail.com http://le.de.la.example").french == 0


def test_only_the_start_of_a_long_text_is_read() -> None:
    text = "Bonjour, merci pour votre réponse. " + "x " * MAX_CHARS + "the and of to with"
    assert score_language(text).english == 0


def test_english_must_clearly_outweigh_french() -> None:
    assert (
        LanguageScores(french=4.0, english=4.0 * ENGLISH_MARGIN, english_words=5).language == "fr"
    )
    assert LanguageScores(french=4.0, english=6.5, english_words=5).language == "en"
    assert LanguageScores(french=0.0, english=10.0, english_words=1).language == "fr"
    assert LanguageScores(french=0.0, english=2.0, english_words=2).language == "fr"


def test_trigrams_alone_never_make_english() -> None:
    text = "mixed boxed fixed waxed taxed " * 20
    scores = score_language(text)
    assert scores.english_words == 0
    assert scores.english > 0
    assert scores.language == "fr"


def test_deterministic() -> None:
    text = ENGLISH[0] + " " + FRENCH[0]
    assert score_language(text) == score_language(text)
