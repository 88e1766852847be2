"""Compound questions: "Which company signed, and what does the deal cover?" asks two things.

Measured on the project's eval set with the 0.5B model: asked both at once, it answers the first
half and drops the second. The engine answers each part in turn instead and joins the answers.
A short later part leans on the first ("…, and on which platform?"): it is asked with the first
part as its topic. The model's own follow-up rewrite (rag.answer.followup) was tried for this and, on
these parts, never produced a usable question; the composition is deterministic and costs nothing.

The split is grammatical, never topical: a coordinating conjunction followed by a new interrogative
clause ("…, and on which platform?", "… et en quelle année …", "…, et lequel avec … ?"), or an
imperative's second object ("Name the bombs … and the calibre of the shells …").

A question about each of several documents ("… cités respectivement dans les deux articles", "in
each report") is one question per document: retrieval over the whole corpus gives its passages to
the document that matches best and the other one's answer never reaches the prompt. It is asked of
each document in turn, without the words that point at the documents.
"""

from __future__ import annotations

import dataclasses
import re

from rag.answer.citations import MARKER
from rag.generation.prompts import part_refusal, refusal_text
from rag.schema import Answer, Hit
from rag.text.lexical import content_words

# Interrogatives that open a clause, and the prepositions that may come before them.
_WH = {
    "en": r"what|which|who|whom|whose|when|where|why|how",
    "fr": r"quel|quelle|quels|quelles|qui|quoi|quand|où|comment|pourquoi|combien|lequel|laquelle|lesquels|lesquelles",
}
_PREP = {
    "en": r"on|in|at|from|for|with|by|to|of|since|until|under|through",
    "fr": r"en|à|au|aux|par|pour|avec|dans|sur|de|d['’]|depuis|sous|chez|vers|contre",
}
_CONJ = {"en": r"and|or", "fr": r"et|ou"}
# The first part must say something on its own ("Who and when?" is one question about one event);
# a later one may lean on it ("…, and by whom?"): it is asked with the first as its topic.
MIN_FIRST_WORDS = 3
MIN_LATER_WORDS = 2
# A later part shorter than this names no topic of its own ("Lequel avec les États-Unis ?").
SELF_CONTAINED_WORDS = 6


def _pattern(lang: str) -> re.Pattern | None:
    if lang not in _WH:
        return None
    return re.compile(
        rf"\s*[,;]?\s+(?:{_CONJ[lang]})\s+(?=(?:(?:{_PREP[lang]})\s*)?(?:{_WH[lang]})\b)", re.IGNORECASE)


def _as_question(text: str, asked: str, mark: str = "?") -> str:
    """text as a sentence ending with mark, or with " ?" where `asked` ends so (French typography
    keeps its space before "?")."""
    mark = " ?" if re.search(r"\s\?\s*$", asked) else mark
    text = text.strip().rstrip("?.!,;: ").strip()
    return f"{text[:1].upper()}{text[1:]}{mark}"


# An imperative asking for two things: "Name the bombs … and the calibre of the shells …" is "Name
# the bombs …" and "Name the calibre …". Each object must name its thing with words of its own: in
# "Give the date and the place of the conference" "of the conference" belongs to both, and it stays whole.
_IMPERATIVE = {
    "en": re.compile(r"^\s*(name|list|give|state|cite|identify|describe)\s+", re.IGNORECASE),
    "fr": re.compile(r"^\s*(nommez|citez|donnez|indiquez|précisez|décrivez)\s+", re.IGNORECASE),
}
_SECOND_OBJECT = {
    "en": re.compile(r"\s*,?\s+and\s+(?=(?:the|its|their|his|her)\s)", re.IGNORECASE),
    "fr": re.compile(r"\s*,?\s+et\s+(?=(?:le|la|les|l['’]|son|sa|ses|leur|leurs)\b)", re.IGNORECASE),
}
MIN_OBJECT_WORDS = 3  # content words of each object


def _imperative_objects(text: str, lang: str) -> list[str] | None:
    """The imperative once per object ("Name A." / "Name B."), or None when it asks for one thing."""
    verb = _IMPERATIVE.get(lang) and _IMPERATIVE[lang].match(text)
    if not verb:
        return None
    objects = _SECOND_OBJECT[lang].split(text[verb.end():])
    if len(objects) < 2 or min(len(content_words(o, lang)) for o in objects) < MIN_OBJECT_WORDS:
        return None
    end = text.rstrip()[-1:]  # an imperative may end with a full stop, or nothing
    return [_as_question(f"{verb.group(1)} {o}", text, end if end and end in "?.!" else "") for o in objects]


def split_compound(question: str, lang: str) -> list[str]:
    """The question's parts, each a question of its own; [question] when it asks one thing."""
    pattern = _pattern(lang)
    text = question.strip()
    if pattern is None:
        return [question]
    objects = _imperative_objects(text, lang)
    if objects:
        return objects
    parts, pos = [], 0
    for m in pattern.finditer(text):
        parts.append(text[pos:m.start()])
        pos = m.end()
    parts.append(text[pos:])
    words = [_words(p) for p in parts]
    if len(parts) < 2 or words[0] < MIN_FIRST_WORDS or min(words[1:]) < MIN_LATER_WORDS:
        return [question]
    return [_as_question(p, text) for p in parts]


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def standalone_part(parts: list[str], i: int) -> str:
    """Part i as a question that can be searched and answered alone: a short later part is asked
    with the first part as its topic ("Which minister announced the deal — on which platform?")."""
    part = parts[i]
    if i == 0 or _words(part) >= SELF_CONTAINED_WORDS:
        return part
    topic = parts[0].rstrip("?!. ").rstrip()
    return f"{topic} — {part[:1].lower()}{part[1:]}"


# "in both articles", "dans chacun des documents", "respectivement": the question wants an answer from each.
_EACH = {
    "en": r",?\s*\brespectively\b|\s*,?\s*\b(?:according to|in|from|across)\s+(?:(?:both|the two|all|all the|these|the|each of the)\s+"
          r"(?:\w+\s+)?(?:articles|documents|texts|reports|files|sources|stories)|each\s+(?:\w+\s+)?(?:article|document|text|report|file|source|story))\b",
    "fr": r",?\s*\brespectivement\b|\s*,?\s*(?:\bd['’]après|\bselon|\bdans|\bde)\s+(?:(?:les deux|chacun des|chacune des|ces|les|tous les|toutes les)\s+"
          r"(?:\w+\s+)?(?:articles|documents|textes|dépêches|rapports|fichiers|sources)|chaque\s+(?:\w+\s+)?(?:article|document|texte|dépêche|rapport|fichier|source))\b",
}


# A choice question: "Which happens later: A, or B?", "Lequel est le plus ancien, A ou B ?". The
# alternatives follow a colon or a comma, so "production conjointe ou échange de technologies"
# inside a question is no choice.
_OR = {"en": re.compile(r"\s*,?\s+or\s+", re.IGNORECASE), "fr": re.compile(r"\s*,?\s+ou\s+", re.IGNORECASE)}
MIN_ALTERNATIVE_WORDS = 2  # content words of each alternative


def alternatives(question: str, lang: str) -> list[str]:
    """The things a choice question weighs ("Which happens later: A, or B? Give both years." ->
    [A, B]); [] for any other question."""
    if lang not in _OR:
        return []
    first = re.split(r"(?<=\?)\s+", question.strip())[0]  # the question, not "Give both years."
    if not first.endswith("?"):
        return []
    pieces = _OR[lang].split(first.rstrip("? "))
    if len(pieces) != 2 or not re.search(r"[:,;]", pieces[0]):
        return []
    choice = [re.split(r"[:,;]\s*", pieces[0])[-1].strip(), pieces[1].strip()]
    return choice if min(len(content_words(c, lang)) for c in choice) >= MIN_ALTERNATIVE_WORDS else []


def per_document(question: str, lang: str) -> str | None:
    """The question without the words asking it of each document, or None when it does not."""
    if lang not in _EACH:
        return None
    stripped, n = re.subn(_EACH[lang], "", question, flags=re.IGNORECASE)
    if not n or _words(stripped) < MIN_FIRST_WORDS:
        return None
    stripped = re.sub(r"^\s*,\s*", "", stripped)
    return _as_question(stripped, question)


def join_answers(parts: list[str], answers: list[Answer], lang: str) -> tuple[str, bool, list[Hit]]:
    """One answer from the answers to a question's parts: (text, refused, numbered passages). Each
    part's [n] markers are renumbered into one list of passages; a part the documents do not answer
    says so by name, so the user sees which half is missing."""
    passages: list[Hit] = []
    numbered: dict[str, int] = {}  # chunk id -> its number in the joined answer
    pieces = []
    for part, answer in zip(parts, answers):
        if answer.refused:
            pieces.append(part_refusal(lang, part))
            continue
        number = {}
        for n, hit in enumerate(answer.retrieved, start=1):
            if hit.chunk.id not in numbered:
                passages.append(hit)
                numbered[hit.chunk.id] = len(passages)
            number[n] = numbered[hit.chunk.id]
        text = MARKER.sub(lambda m: "[" + ", ".join(str(number.get(int(x), x)) for x in re.findall(r"\d+", m.group(1))) + "]",
                          answer.text)
        if text not in pieces:  # two parts answered by the same quote: said once
            pieces.append(text)
    if all(a.refused for a in answers):
        return refusal_text(lang), True, [h for a in answers for h in a.retrieved]
    return " ".join(pieces), False, [dataclasses.replace(h, rank=r) for r, h in enumerate(passages, start=1)]
