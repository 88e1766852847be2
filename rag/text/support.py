"""The one support scorer: how much of a question or an answer sentence a piece of text holds, as
stemmed content words, names and numbers, cognates and translations, in any of the stemmer languages."""

from __future__ import annotations

import re

from rag.text.lexical import (
    content_words,
    documents_language,
    fold,
    stemmer,
    stopwords,
    tokenize,
    translations,
)

# Words sharing their first five letters count as the same: an answer in English about French
# documents says "tripled", "production", "defence" where they say "triplé", "production", "défense".
COGNATE_PREFIX = 5

_NUMBER_OR_NAME = re.compile(r"\b(?:\d[\d.,]*|[A-ZÀ-Ý][\w-]*[A-Z0-9][\w-]*|[A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-ZÀ-Ý]?[a-zà-ÿ]+)*)\b")

def states_numbers(question: str, text: str, lang: str) -> bool:
    """text holds every number of the question (a year, a calibre): "combien … en 2024" is not
    answered by a sentence about 2023."""
    numbers = {w for w in names(question, lang) if w[:1].isdigit()}
    return shared(numbers, text, lang) == len(numbers)

def names(text: str, lang: str) -> set[str]:
    """Folded names and numbers (capitalised words that are not stop words, like "Le" opening a sentence)."""
    stops = stopwords(lang)
    return {w for w in (fold(m) for m in _NUMBER_OR_NAME.findall(text)) if w not in stops}

def terms(text: str, lang: str) -> set[str]:
    """Content words, stemmed for the corpus language, plus raw folded names and numbers so that an
    answer in another language still matches the entities it shares with the documents."""
    return set(tokenize(text, lang)) | names(text, lang)

def cognates(words: set[str]) -> set[str]:
    return words | {w[:COGNATE_PREFIX] for w in words if len(w) >= COGNATE_PREFIX}

def coverage(question: str, text: str, lang: str) -> float:
    """Share of the question's content words found in text, as their stem, their folded form or a
    cognate (first five letters). Each word counts once: "France" is one word, not its name and
    its stem, so names do not outweigh the verb that says what is asked."""
    words = content_words(question, lang)
    stem = stemmer(lang)
    # A word's translations count, stemmed and exactly (lexical.translations: "maker" is found as
    # "fabricant", "sixfold" as "six", "two" as "deux" or "2", "March" as "mars").
    units = {s: ({s, w}, set(stem.stemWords(sorted(translations(w, lang))))) for w, s in zip(words, stem.stemWords(words))}.values()
    if not units:
        return 0.0
    known = cognates(terms(text, documents_language(lang)))
    return sum(1 for forms, translations in units
               if any(w in known or w[:COGNATE_PREFIX] in known for w in forms) or translations & known) / len(units)

def shared(words: set[str], text: str, lang: str) -> int:
    """How many of words text contains, cognates included (text read in the documents' language)."""
    known = cognates(terms(text, documents_language(lang)))
    return sum(1 for w in words if w in known or w[:COGNATE_PREFIX] in known)

def support(words: set[str], novel: set[str], text: str, lang: str) -> float:
    """How well text supports a sentence: its terms shared, what the sentence adds to the question
    counting double (that is the part a citation must vouch for)."""
    return shared(words, text, lang) + 2 * shared(novel, text, lang)
