"""Evidence: the sentences a prompt is built from, and the checks an answer must pass against them.

A 0.5B model answers far better from a handful of relevant sentences than from whole passages
(measured: it restates the question or refuses when given four 160-token passages), and fewer
prompt tokens mean a shorter prefill. It is also poor at writing citation numbers, so citations are
not asked of it: each answer sentence is aligned to the context sentence that supports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from rag.chunking import ends_with_abbreviation, split_segments
from rag.lexical import content_words, fold, stemmer, stopwords, tokenize, translations
from rag.schema import Hit

# Words sharing their first five letters count as the same: an answer in English about French
# documents says "tripled", "production", "defence" where they say "triplé", "production", "défense".
COGNATE_PREFIX = 5

# Share of a sentence's score the next sentence inherits (see rank_sentences), and the most characters
# (spaces, a closing quote) that may lie between two sentences for them to count as consecutive.
CONTINUATION_SHARE = 0.8
SENTENCE_GAP = 4

Relevance = Callable[[str, list[str]], Sequence[float]]  # (question, sentences) -> similarity in [-1, 1]

# A sentence ends at . ! ? followed by a space or the end (so "2.5" does not split), or at a line break.
_ANSWER_SENTENCE = re.compile(r"[^\n]+?(?:[.!?]+(?=\s|$)|(?=\n)|$)")
_NUMBER_OR_NAME = re.compile(r"\b(?:\d[\d.,]*|[A-ZÀ-Ý][\w-]*[A-Z0-9][\w-]*|[A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-ZÀ-Ý]?[a-zà-ÿ]+)*)\b")


def answer_sentences(answer: str) -> list[tuple[int, int]]:
    """Character spans of the answer's sentences; "M. Fedorov" or "Mme. X" ends none."""
    spans: list[tuple[int, int]] = []
    glued = False
    for m in _ANSWER_SENTENCE.finditer(answer):
        if not m.group(0):
            continue
        if glued:
            spans[-1] = (spans[-1][0], m.end())
        else:
            spans.append((m.start(), m.end()))
        glued = ends_with_abbreviation(answer, m.end())
    return spans


@dataclass(frozen=True)
class Sentence:
    hit: Hit
    start: int  # character offsets in the document, like the chunk's
    end: int
    text: str
    score: float = 0.0


def sentences_of(hits: list[Hit]) -> list[Sentence]:
    """Sentences of the passages; overlapping chunks share sentences, each is kept once."""
    seen, out = set(), []
    for hit in hits:
        c = hit.chunk
        for s, e in split_segments(c.text):
            key = (c.source, c.start + s)
            text = " ".join(c.text[s:e].split()).lstrip("-–—•* ")  # list bullets are layout, not words
            if key in seen or len(text) < 12:
                continue
            seen.add(key)
            out.append(Sentence(hit, c.start + s, c.start + e, text))
    return out


def previous_sentence(sentence: Sentence) -> Sentence | None:
    """The sentence before this one in its passage: "Elle sera opérationnelle en mars" needs it to
    say what "elle" is."""
    before = [s for s in sentences_of([sentence.hit]) if s.end <= sentence.start]
    return before[-1] if before else None


# A sentence that goes on from the one before: a quotation whose speaker is named after it ("« … » ,
# a déclaré M. Fedorov"), a lower-case start, or a pronoun for what the sentence before named.
_CONTINUES = re.compile(r"^(?:[«“\"'(,;]|[a-zà-ÿ]|(?i:elle|elles|il|ils|cette|ce|cet|ces|celle|celui|celles|ceux|"
                        r"it|its|this|these|those|they|their|she|he|her|his)\b)")


def continues(sentence: Sentence) -> bool:
    """The sentence leans on the one before it for what it is about, or goes on a quotation the one
    before opened ("« Nous avons décidé de… Très concrètement, cela peut se traduire par… »")."""
    if _CONTINUES.match(sentence.text):
        return True
    before = previous_sentence(sentence)
    return before is not None and opens_quotation(before.text)


def opens_quotation(text: str) -> bool:
    """text opens a quotation it does not close. Straight quotes open and close alike; a double prime
    (″) closes one where a converter made it of a closing quote ("opérationnelle dès mars 2026″")."""
    return sum(text.count(c) for c in "«“„") > sum(text.count(c) for c in "»”″") or text.count('"') % 2 == 1


def quotation(sentence: Sentence, most: int = 3) -> str:
    """The sentence with those after it up to the end of the quotation it opens (at most `most`
    sentences): quoting half a quotation cuts a speaker off before the point they make."""
    text = sentence.text
    after = [s for s in sentences_of([sentence.hit]) if s.start >= sentence.end]
    for s in after[: most - 1]:
        if not opens_quotation(text):
            break
        text = f"{text} {s.text}"
    return text


def with_previous(sentence: Sentence) -> str:
    """The sentence with the one before it, when there is one."""
    before = previous_sentence(sentence)
    return f"{before.text} {sentence.text}" if before else sentence.text


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


def rank_sentences(question: str, hits: list[Hit], lang: str, relevance: Relevance | None = None) -> list[Sentence]:
    """Sentences best first: share of the question's terms they contain, dense similarity, and the
    rank of their passage as a tie-breaker. A sentence right after a relevant one inherits part of
    its score: "Elle sera opérationnelle dès mars 2026" answers a question about the initiative the
    sentence before names, and shares no word with it itself."""
    candidates = sentences_of(hits)
    if not candidates:
        return []
    dense = list(relevance(question, [s.text for s in candidates])) if relevance else [0.0] * len(candidates)
    # Cognates count: an English question about French text shares "system", "defence", "cooperation" with it.
    own = [coverage(question, s.text, lang) + float(d) + 0.05 / s.hit.rank for s, d in zip(candidates, dense)]
    before = _previous_index(candidates)
    scored = []
    for i, s in enumerate(candidates):
        inherited = CONTINUATION_SHARE * own[before[i]] if before[i] is not None else 0.0
        scored.append(Sentence(s.hit, s.start, s.end, s.text, max(own[i], inherited)))
    return sorted(scored, key=lambda s: -s.score)


def _previous_index(sentences: list[Sentence]) -> list[int | None]:
    """For each sentence, the index of the one just before it in the same document, if given."""
    by_place = {(s.hit.chunk.source, s.end): i for i, s in enumerate(sentences)}
    out = []
    for s in sentences:
        out.append(next((by_place[(s.hit.chunk.source, end)] for end in range(s.start, max(s.start - SENTENCE_GAP, 0) - 1, -1)
                         if (s.hit.chunk.source, end) in by_place), None))
    return out


def _cognates(words: set[str]) -> set[str]:
    return words | {w[:COGNATE_PREFIX] for w in words if len(w) >= COGNATE_PREFIX}


def coverage(question: str, text: str, lang: str) -> float:
    """Share of the question's content words found in text, as their stem, their folded form or a
    cognate (first five letters). Each word counts once: "France" is one word, not its name and
    its stem, so names do not outweigh the verb that says what is asked."""
    words = content_words(question, lang)
    stem = stemmer(lang)
    # A word's translations count, stemmed and exactly (lexical.translations: "maker" is found as
    # "fabricant", "sixfold" as "six", "two" as "deux" or "2", "March" as "mars").
    units = {s: ({s, w}, set(stem.stemWords(sorted(translations(w))))) for w, s in zip(words, stem.stemWords(words))}.values()
    if not units:
        return 0.0
    known = _cognates(terms(text, lang))
    return sum(1 for forms, translations in units
               if any(w in known or w[:COGNATE_PREFIX] in known for w in forms) or translations & known) / len(units)


def shared(words: set[str], text: str, lang: str) -> int:
    """How many of words text contains, cognates included."""
    known = _cognates(terms(text, lang))
    return sum(1 for w in words if w in known or w[:COGNATE_PREFIX] in known)


def evidence_for(answer: str, context: list[Sentence], lang: str, question: str = "") -> list[Sentence]:
    """The context sentence that best supports each sentence of the answer, with the sentence going
    on from it when that one holds names or numbers the answer sentence brings."""
    found = []
    asked = terms(question, lang)
    for start, end in answer_sentences(answer):
        words = terms(answer[start:end], lang)
        if not words:
            continue
        novel = words - asked
        best = max(context, key=lambda s: support(words, novel, s.text, lang), default=None)
        if best is None:
            continue
        # An answer sentence joins a sentence with the one that goes on from it: "The initiative is due
        # to become operational in March 2026" is "L'initiative Brave1…" and "Elle sera opérationnelle
        # dès mars 2026". The next sentence counts when it brings names or numbers the best one lacks.
        lacking = {w for w in names(answer[start:end], lang) - asked if not shared({w}, best.text, lang)}
        after = lacking and next((s for s in context if s.hit.chunk.source == best.hit.chunk.source and continues(s)
                                  and (before := previous_sentence(s)) is not None and before.start == best.start), None)
        for s in (best, after if after and shared(lacking, after.text, lang) else None):
            if s is not None and s not in found:
                found.append(s)
    return found


def is_grounded(answer: str, question: str, context: list[Sentence], lang: str, min_share: float = 0.6) -> bool:
    """The answer adds something to the question, and most of what it adds is in the context.

    Catches the two failures of a small model: restating the question without the fact, and
    inventing a fact (a name, a number) that no sentence of the context contains."""
    new = terms(answer, lang) - terms(question, lang)
    if not new:
        return False
    # The sentences shown, not their whole passages: the model saw nothing else, so a word found
    # only elsewhere in a passage ("développer" three sentences away) vouches for nothing it says.
    known = set().union(*(terms(s.text, lang) for s in context)) if context else set()
    brought = names(answer, lang) - terms(question, lang)
    known = _cognates(known)
    if brought:
        # Names and numbers are language-independent: an English answer about French documents is
        # judged on them; most of them must be in the context ("Ukrainian" has no exact twin in French).
        return len(brought & known) / len(brought) >= 0.5
    # Each new word once with its cognates; found as itself, a cognate, the start of a longer word
    # ("euro" of "euros") or a translation ("two billion" is in "deux milliards").
    found: dict[str, bool] = {}
    stem = stemmer(lang)
    for w in new:
        key = w if w in known or len(w) < COGNATE_PREFIX else w[:COGNATE_PREFIX]
        other = translations(w)
        found[key] = (found.get(key, False) or key in known or bool((other | set(stem.stemWords(sorted(other)))) & known)
                      or (len(w) >= 4 and any(k.startswith(w) for k in known)))
    return sum(found.values()) / len(found) >= min_share


def support(words: set[str], novel: set[str], text: str, lang: str) -> float:
    """How well text supports a sentence: its terms shared, what the sentence adds to the question
    counting double (that is the part a citation must vouch for)."""
    return shared(words, text, lang) + 2 * shared(novel, text, lang)


def supporting_passages(sentence: str, context: list[Sentence], passages: list[Hit], lang: str,
                        question: str = "", min_share: float = 0.34) -> list[int]:
    """Numbers of the passages that support sentence, best first: the one whose context sentence
    shares enough of its terms, or holds every name and number it adds to the question (an English
    sentence about a French passage shares little else with it: "…used Telegram for their
    announcements"); and, when the sentence joins facts of two passages ("…operational in March
    2026, while the sixfold rise is expected in 2024"), the one holding the names and numbers the
    first lacks. [] when nothing supports it."""
    words = terms(sentence, lang)
    if not words or not context:
        return []
    asked = terms(question, lang)
    novel = words - asked
    best = max(context, key=lambda s: support(words, novel, s.text, lang))
    brought = names(sentence, lang) - asked
    if (shared(words, best.text, lang) / len(words) < min_share
            and not (brought and shared(brought, best.text, lang) == len(brought))):
        return []
    hits = [best.hit]
    lacking = {w for w in brought if not shared({w}, best.text, lang)}
    while lacking:  # each sentence holding most of what is still lacking, until nothing held is left
        other = max(context, key=lambda s: shared(lacking, s.text, lang))
        held = {w for w in lacking if shared({w}, other.text, lang)}
        if not held:
            break
        lacking -= held
        if all(other.hit is not h for h in hits):
            hits.append(other.hit)
    return [next(n for n, h in enumerate(passages, start=1) if h is hit) for hit in hits if any(h is hit for h in passages)]


def _marker(numbers: list[int]) -> str:
    """Markers of passages cited together, as " [1][2]": the one form rag.citations.clean_markers
    writes, each linked alone in the web chat."""
    return (" " + "".join(f"[{n}]" for n in numbers)) if numbers else ""


def cite(answer: str, context: list[Sentence], passages: list[Hit], lang: str, question: str = "") -> str:
    """Put [n] before the end of each answer sentence that a context sentence supports; n numbers
    that sentence's passage. A sentence nothing supports stays uncited."""
    out, pos = [], 0
    for start, end in answer_sentences(answer):
        sentence = answer[start:end]
        out.append(answer[pos:start])
        pos = end
        numbers = supporting_passages(sentence, context, passages, lang, question)
        if numbers:
            body = sentence.rstrip(".!? ")
            sentence = f"{body}{_marker(numbers)}{sentence[len(body):].lstrip()}"
        out.append(sentence)
    out.append(answer[pos:])
    return "".join(out)


class StreamCiter:
    """cite() applied to a token stream: text passes through at once, only a sentence's final
    punctuation is held until the sentence is known to end, so its [n] can go before it."""

    _END = re.compile(r"[.!?]+(?=\s)")

    def __init__(self, context: list[Sentence], passages: list[Hit], lang: str, question: str = ""):
        self.context, self.passages, self.lang, self.question = context, passages, lang, question
        self.sentence = ""  # text of the current sentence, already shown
        self.pending = ""

    def _close(self, punct: str) -> str:
        numbers = supporting_passages(self.sentence, self.context, self.passages, self.lang, self.question)
        self.sentence = ""
        return _marker(numbers) + punct

    def feed(self, piece: str) -> str:
        self.pending += piece
        out = []
        while m := self._END.search(self.pending):
            before = self.pending[: m.start()]
            self.sentence += before
            if m.group(0) == "." and ends_with_abbreviation(self.sentence[-6:] + "."):
                self.sentence += "."  # "M. Fedorov": the sentence goes on
                out.append(before + ".")
            else:
                out.append(before + self._close(m.group(0)))
            self.pending = self.pending[m.end() :]
        # Hold a trailing punctuation run: it may end the sentence once the next character comes.
        held = len(self.pending) - len(self.pending.rstrip(".!?"))
        ready = self.pending[: len(self.pending) - held]
        self.sentence += ready
        self.pending = self.pending[len(ready) :]
        out.append(ready)
        return "".join(out)

    def flush(self) -> str:
        punct, self.pending = self.pending, ""
        if not (self.sentence + punct).strip():
            return punct
        return self._close(punct)
