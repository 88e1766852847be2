"""Cross-lingual retrieval: a question asked in another language than the documents' is also
searched in the documents' language, translated by the same local model. And a quote shown in
place of a failed answer (rag.answer.check) is translated into the question's language, when it
is in another one; its [n] still cites the original passage.

The bundled embedder is English-centric and BM25 matches words, so "Which package provides…?" over
German pages finds little; the documents' own words do. The translation is used for retrieval only:
the answer is still written in the question's language, and the passages are cited as they are.
"""

from __future__ import annotations

import re

from rag.generation.llama import Generator
from rag.text.language import detect_language, language_name, reads_as

MAX_TRANSLATION_TOKENS = 80

TRANSLATE_SYSTEM = ("You translate questions. Reply with the translated question only, on one line: keep names, "
                    "commands, file names and numbers exactly as they are, and never answer the question.")


def translated_lines(text: str, target_lang: str, system: str, max_tokens: int, generator: Generator) -> list[str]:
    """The model's translation of text into target_lang, as its non-empty lines, stripped."""
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": f"Translate into {language_name(target_lang)}:\n{text}"}]
    raw = "".join(generator.stream(messages, max_tokens, 0.0))
    return [l.strip() for l in raw.splitlines() if l.strip()]


def _unquoted(text: str) -> str:
    return text.strip().strip("\"'“”«»`").strip()


def translate_question(question: str, target_lang: str, generator: Generator) -> str | None:
    """The question in target_lang, or None when the model's reply is unusable (empty, or far longer
    than a translation of it could be: an answer, not a translation)."""
    lines = translated_lines(question, target_lang, TRANSLATE_SYSTEM, MAX_TRANSLATION_TOKENS, generator)
    line = _unquoted(lines[0]) if lines else ""
    if not line or len(line) > 3 * len(question) + 20:
        return None
    return line


def search_query(question: str, translation: str | None) -> str:
    """What is searched: the question and its translation together, so names and commands the
    question shares with the documents count once in each wording, and neither wording is lost."""
    return f"{question}\n{translation}" if translation and translation != question else question


QUOTE_TRANSLATE_SYSTEM = ("You translate text quoted from documents. Reply with the translation only: keep names, "
                          "commands, file names and numbers exactly as they are, add nothing and leave nothing out.")
# A translation between the languages served here is within about a third of the original's length:
# one under a third or over twice as long (plus room for a short quote) left out or added a sentence.
QUOTE_MIN_RATIO, QUOTE_MAX_RATIO, QUOTE_SLACK = 1 / 3, 2.0, 20
QUOTE_MAX_TOKENS = 240
# What a translation must keep exactly, in any language: tokens holding a digit (numbers, versions,
# dates), a symbol inside or before them (paths, options, file names, e-mail: /etc/x.conf, --force,
# user@host, a_b), or a capital after their first letter (acronyms and product names: GNOME, systemd's
# "PostgreSQL", "iPhone"). A capital first letter is no sign of a name in German, where every noun has
# one, so a plain capitalised word is left to the model.
_KEPT = re.compile(r"[^\s«»\"“”„'()\[\],;!?]*(?:\d|[/_=@~$]|\w\.\w|(?<![\w-])--?\w|\w[A-Z])[^\s«»\"“”„'()\[\],;!?]*")
# A word written against an opening bracket is code in any language: a call or a signature
# ("sorted(", "issubclass(a, b)"), a manual page ("ls(1)"). A translation keeps it too; the quote
# choice (rag.answer.check) does not count it as new information, which measured no better there.
_CALL = re.compile(r"(?<![\w.-])[^\W\d][\w.-]*(?=\()")


def kept_tokens(text: str) -> set[str]:
    """The tokens of text a translation must hold unchanged (see _KEPT), trailing dots dropped."""
    return {m.rstrip(".:") for m in _KEPT.findall(text) if m.rstrip(".:")}


def _values(text: str, lang: str) -> set[str]:
    """The numbers, dates and scales text states, each by its value whatever the words (rag.text.values):
    "deux milliards" and "two billion" both state 2 and 10^9, "mars" and "March" the third month."""
    from rag.answer.answer_types import facts

    return facts(text, "number", (lang,)) | facts(text, "date", (lang,))


def usable_translation(original: str, translation: str, lang: str) -> bool:
    """A translation can be shown for original: in lang, of a translation's length, holding every
    number, command, path and acronym of the original as written, and stating the same numbers,
    scales and dates as the original does in words ("deux milliards" is not "two million")."""
    if not translation or not QUOTE_MIN_RATIO * len(original) <= len(translation) <= QUOTE_MAX_RATIO * len(original) + QUOTE_SLACK:
        return False
    if not reads_as(translation, lang, original):  # an echo of the original, or another language
        return False
    if _values(original, detect_language(original, default=lang)) != _values(translation, lang):
        return False
    return all(token in translation for token in kept_tokens(original) | set(_CALL.findall(original)))


def translate_quote(text: str, target_lang: str, generator: Generator) -> str | None:
    """The quoted text in target_lang, or None when the model's reply is unusable (usable_translation)."""
    budget = min(QUOTE_MAX_TOKENS, 2 * generator.count_tokens(text) + 20)
    line = _unquoted(" ".join(translated_lines(text, target_lang, QUOTE_TRANSLATE_SYSTEM, budget, generator)))
    return line if usable_translation(text, line, target_lang) else None
