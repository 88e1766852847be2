"""Per-language resources from maintained libraries, chosen by a language code; none are written here.

Stop words: bm25s's list where it has one (the NLTK-style lists the BM25 index was built with), else
stopwords-iso's (58 languages; its JSON is read directly, its module needs pkg_resources). Stemming:
PyStemmer's Snowball stemmers (about 30 languages). A language neither covers gets no stop words and
no stemming: its words are still matched as they are written, folded.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from pathlib import Path

# bm25s's stop-word lists by the language code the detector gives.
_BM25S_LISTS = {"en": "STOPWORDS_EN", "fr": "STOPWORDS_FRENCH", "de": "STOPWORDS_GERMAN", "es": "STOPWORDS_SPANISH",
                "it": "STOPWORDS_ITALIAN", "pt": "STOPWORDS_PORTUGUESE", "nl": "STOPWORDS_DUTCH", "da": "STOPWORDS_DANISH",
                "no": "STOPWORDS_NORWEGIAN", "sv": "STOPWORDS_SWEDISH", "ru": "STOPWORDS_RUSSIAN", "tr": "STOPWORDS_TURKISH",
                "zh": "STOPWORDS_CHINESE", "ko": "STOPWORDS_KOREAN"}


@functools.lru_cache(maxsize=1)
def _stopwords_iso() -> dict[str, list[str]]:
    try:
        path = Path(metadata.distribution("stopwordsiso").locate_file("stopwordsiso/stopwords-iso.json"))
        return json.loads(path.read_text(encoding="utf-8"))
    except (metadata.PackageNotFoundError, OSError, ValueError):
        return {}


@functools.lru_cache(maxsize=None)
def stopword_list(lang: str) -> tuple[str, ...]:
    """The stop words of a language (ISO 639-1), unfolded; () for a language no library covers."""
    import bm25s.stopwords as sw

    name = _BM25S_LISTS.get(lang)
    if name and hasattr(sw, name):
        return tuple(getattr(sw, name))
    return tuple(_stopwords_iso().get(lang, ()))


def stopword_languages() -> tuple[str, ...]:
    """Every language code that has stop words here."""
    return tuple(sorted(set(_BM25S_LISTS) | set(_stopwords_iso())))


class _Unstemmed:
    """A stemmer for a language Snowball does not cover: words stay as they are."""

    def stemWord(self, word: str) -> str:  # noqa: N802 - PyStemmer's names
        return word

    def stemWords(self, words):  # noqa: N802
        return list(words)


@functools.lru_cache(maxsize=None)
def snowball(lang: str):
    """PyStemmer's Snowball stemmer of a language (ISO 639-1), or one that leaves words as they are."""
    import Stemmer

    from rag.text.language import language_name

    name = language_name(lang, default="").lower()
    return Stemmer.Stemmer(name) if name in Stemmer.algorithms() else _Unstemmed()


@functools.lru_cache(maxsize=None)
def function_words(lang: str) -> frozenset[str]:
    """The folded stop words of both libraries for a language: bm25s's lists lack the interrogatives
    ("wer", "cuántos") that stopwords-iso's hold. For reading how a question asks, not for search."""
    from rag.text.values import fold

    return frozenset(fold(w) for w in stopword_list(lang) + tuple(_stopwords_iso().get(lang, ())))
