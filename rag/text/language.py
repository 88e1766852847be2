"""Which language a question is written in, so the answer can be written in the same one."""

from __future__ import annotations

import functools
import re

NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
         "nl": "Dutch", "uk": "Ukrainian", "ru": "Russian", "pl": "Polish"}


@functools.lru_cache(maxsize=1)
def _detector():
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, c.upper()) for c in NAMES]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


# Below this confidence lingua is guessing from a few letters ("Qui dirige le cluster ?" came out
# Dutch, "Combien de drones ?" Spanish): the language with the most function words decides.
SURE = 0.5


@functools.lru_cache(maxsize=1)
def _function_words() -> dict[str, frozenset[str]]:
    from rag.text.lexical import fold, stopword_lists

    return {lang: frozenset(fold(w) for w in (*words, *_INTERROGATIVES[lang].split()))
            for lang, words in stopword_lists().items()}


# bm25s's lists lack most question words, which a question nearly always has.
_INTERROGATIVES = {
    "en": "what which who whom whose when where why how",
    "fr": "quel quelle quels quelles lequel laquelle lesquels lesquelles qui que quoi quand où comment pourquoi combien",
    "de": "wer wen wem wessen was wann wo wohin woher warum wie welche welcher welches wieviel",
    "es": "qué quién quiénes cuál cuáles cuándo dónde cómo cuánto cuánta cuántos cuántas por",
    "it": "chi che cosa quale quali quando dove come quanto quanta quanti quante perché",
    "pt": "quem que qual quais quando onde como quanto quanta quantos quantas porque",
    "nl": "wie wat wanneer waar waarom hoe welke welk hoeveel",
}


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639-1 code of the text's language among NAMES; `default` when no letters.

    A short question is mostly content words shared across languages ("budget", "cluster"), which
    is all a letter-statistics detector sees; its function words ("qui", "est", "le") are not."""
    from rag.text.lexical import fold

    letters = re.sub(r"[\W\d_]+", " ", text).strip()
    if not letters:
        return default
    values = _detector().compute_language_confidence_values(letters[:2000])
    if not values or values[0].value <= 0:
        return default
    confidence = {v.language.iso_code_639_1.name.lower(): v.value for v in values}
    best = max(confidence, key=confidence.get)
    if confidence[best] >= SURE:
        return best
    words = [fold(w) for w in letters.split()]
    lists = _function_words()
    counts = {lang: sum(w in lists.get(lang, ()) for w in words) for lang in confidence}
    return max(confidence, key=lambda lang: (counts[lang], confidence[lang]))


def language_name(code: str) -> str:
    return NAMES.get(code, "English")
