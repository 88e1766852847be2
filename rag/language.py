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


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639-1 code of the text's language among NAMES; `default` when unsure or no letters."""
    letters = re.sub(r"[\W\d_]+", " ", text).strip()
    if not letters:
        return default
    lang = _detector().detect_language_of(letters[:2000])
    if lang is None:
        return default
    return lang.iso_code_639_1.name.lower()


def language_name(code: str) -> str:
    return NAMES.get(code, "English")
