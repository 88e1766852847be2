"""The question's language decides the answer's: short questions are where a detector guesses."""

import pytest

from rag.text.language import detect_language


@pytest.mark.parametrize("lang, question", [
    # Each of these came out in another language from letter statistics alone (Dutch, English,
    # Spanish, Portuguese, Dutch, German): their function words decide.
    ("fr", "Qui dirige le cluster ?"), ("fr", "Quel est le budget du cluster Brave1 ?"), ("fr", "Combien de drones ?"),
    ("fr", "Qui est Umerov ?"), ("it", "Chi dirige il cluster?"), ("pt", "Quem dirige o cluster?"),
    ("en", "Who leads the cluster?"), ("en", "What is the budget?"), ("de", "Wer leitet das Cluster?"),
    ("es", "¿Cuántos drones hay?"), ("nl", "Wie leidt het cluster?"),
    ("fr", "Quelle ministre française des Armées s'est rendue en Ukraine avant l'annonce de la lettre d'intention ?"),
])
def test_the_language_of_a_question(lang, question):
    assert detect_language(question) == lang


def test_no_letters_is_the_default():
    assert detect_language("2024 ?!", default="fr") == "fr"
