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


def test_a_language_beyond_the_ten_named_ones_is_detected_and_named():
    from rag.text.language import detect_language, language_name

    code = detect_language("Vilket kommando installerar ett paket i systemet?")
    assert code == "sv" and language_name(code) == "Swedish"


def test_the_short_question_set_is_mostly_right():
    import json
    from pathlib import Path

    from rag.text.language import detect_language

    lines = (Path(__file__).resolve().parents[1] / "eval" / "lang_questions.jsonl").read_text(encoding="utf-8").splitlines()
    qs = [json.loads(line) for line in lines if line.strip()]
    right = sum(detect_language(q["question"]) == q["lang"] for q in qs)
    assert len({q["lang"] for q in qs}) >= 8 and right >= 0.9 * len(qs)
