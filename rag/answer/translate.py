"""Cross-lingual retrieval: a question asked in another language than the documents' is also
searched in the documents' language, translated by the same local model.

The bundled embedder is English-centric and BM25 matches words, so "Which package provides…?" over
German pages finds little; the documents' own words do. The translation is used for retrieval only:
the answer is still written in the question's language, and the passages are cited as they are.
"""

from __future__ import annotations

from rag.generation.llama import Generator
from rag.text.language import language_name

MAX_TRANSLATION_TOKENS = 80

TRANSLATE_SYSTEM = ("You translate questions. Reply with the translated question only, on one line: keep names, "
                    "commands, file names and numbers exactly as they are, and never answer the question.")


def translation_messages(question: str, target_lang: str) -> list[dict]:
    return [{"role": "system", "content": TRANSLATE_SYSTEM},
            {"role": "user", "content": f"Translate into {language_name(target_lang)}:\n{question}"}]


def translate_question(question: str, target_lang: str, generator: Generator) -> str | None:
    """The question in target_lang, or None when the model's reply is unusable (empty, or far longer
    than a translation of it could be: an answer, not a translation)."""
    raw = "".join(generator.stream(translation_messages(question, target_lang), MAX_TRANSLATION_TOKENS, 0.0))
    line = next((l.strip().strip("\"'“”«»`") for l in raw.splitlines() if l.strip()), "")
    if not line or len(line) > 3 * len(question) + 20:
        return None
    return line


def search_query(question: str, translation: str | None) -> str:
    """What is searched: the question and its translation together, so names and commands the
    question shares with the documents count once in each wording, and neither wording is lost."""
    return f"{question}\n{translation}" if translation and translation != question else question
