"""Evidence: the sentences a prompt is built from, and the checks an answer must pass against them.

A 0.5B model answers far better from a handful of relevant sentences than from whole passages
(measured: it restates the question or refuses when given four 160-token passages), and fewer
prompt tokens mean a shorter prefill. It is also poor at writing citation numbers, so citations are
not asked of it: each answer sentence is aligned to the context sentence that supports it.
"""

from __future__ import annotations

import re

from rag.retrieval.ranking import Sentence, continues, previous_sentence
from rag.schema import Hit
from rag.text.lexical import documents_language, stemmer, translations
from rag.text.sentences import ANSWER_ENDS, sentence_spans
from rag.text.support import COGNATE_PREFIX, cognates, names, shared, support, terms


def strongest(context: list[Sentence], words: set[str], novel: set[str], lang: str) -> Sentence | None:
    """The context sentence that best supports words (rag.text.support.support: what they add to the
    question, novel, counting double); None without context."""
    return max(context, key=lambda s: support(words, novel, s.text, lang), default=None)


def passage_numbers(hits: list[Hit], passages: list[Hit]) -> list[int]:
    """The [n] of each of hits among the prompt's passages, in the order of hits (those not among them left out)."""
    return [n for hit in hits for n, h in enumerate(passages, start=1) if h is hit]


def evidence_for(answer: str, context: list[Sentence], lang: str, question: str = "") -> list[Sentence]:
    """The context sentence that best supports each sentence of the answer, with the sentence going
    on from it when that one holds names or numbers the answer sentence brings."""
    found = []
    asked = terms(question, lang)
    for start, end in sentence_spans(answer, ANSWER_ENDS):
        words = terms(answer[start:end], lang)
        if not words:
            continue
        novel = words - asked
        best = strongest(context, words, novel, lang)
        if best is None:
            continue
        # An answer sentence joins a sentence with the one that goes on from it (a quotation's
        # attribution, a lower-case start: rag.retrieval.ranking.continues): "Fedorov said on Telegram
        # that…" is "« … »" and ", a déclaré Mykhailo Fedorov sur Telegram". The next sentence counts
        # when it brings names or numbers the best one lacks.
        lacking = {w for w in names(answer[start:end], lang) - asked if not shared({w}, best.text, lang)}
        after = lacking and next((s for s in context if s.hit.chunk.source == best.hit.chunk.source and continues(s)
                                  and (before := previous_sentence(s)) is not None and before.start == best.start), None)
        for s in (best, after if after and shared(lacking, after.text, lang) else None):
            if s is not None and s not in found:
                found.append(s)
    return found


# Share of the words an answer adds to the question that the context must hold: chosen on the four
# dev splits (0.4 to 0.8 swept; 0.6 before, docs/quality.md, ninth round).
GROUNDED_MIN_SHARE = 0.7


def is_grounded(answer: str, question: str, context: list[Sentence], lang: str, min_share: float = GROUNDED_MIN_SHARE) -> bool:
    """The answer adds something to the question, and most of what it adds is in the context.

    Catches the two failures of a small model: restating the question without the fact, and
    inventing a fact (a name, a number) that no sentence of the context contains."""
    new = terms(answer, lang) - terms(question, lang)
    if not new:
        return False
    # The sentences shown, not their whole passages: the model saw nothing else, so a word found
    # only elsewhere in a passage ("développer" three sentences away) vouches for nothing it says.
    known = set().union(*(terms(s.text, documents_language(lang)) for s in context)) if context else set()
    brought = names(answer, lang) - terms(question, lang)
    known = cognates(known)
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
        other = translations(w, lang)
        found[key] = (found.get(key, False) or key in known or bool((other | set(stem.stemWords(sorted(other)))) & known)
                      or (len(w) >= 4 and any(k.startswith(w) for k in known)))
    return sum(found.values()) / len(found) >= min_share


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
    best = strongest(context, words, novel, lang)
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
    return passage_numbers(hits, passages)


def _marker(numbers: list[int]) -> str:
    """Markers of passages cited together, as " [1][2]": the one form rag.answer.citations.clean_markers
    writes, each linked alone in the web chat."""
    return (" " + "".join(f"[{n}]" for n in numbers)) if numbers else ""


def _cited(sentence: str, numbers: list[int]) -> str:
    """sentence with its markers put before its final punctuation."""
    if not numbers:
        return sentence
    body = sentence.rstrip(".!? ")
    return f"{body}{_marker(numbers)}{sentence[len(body):].lstrip()}"


def best_passage(answer: str, context: list[Sentence], passages: list[Hit], lang: str, question: str = "") -> list[int]:
    """[n] of the passage whose sentence best supports the whole answer, when that sentence holds
    something the answer adds to the question; [] otherwise."""
    words = terms(answer, lang)
    novel = words - terms(question, lang)
    if not novel or not context:
        return []
    best = strongest(context, words, novel, lang)
    return passage_numbers([best.hit], passages)[:1] if shared(novel, best.text, lang) else []


def cite(answer: str, context: list[Sentence], passages: list[Hit], lang: str, question: str = "",
         whole: str | None = None, final: bool = True) -> str:
    """Put [n] before the end of each answer sentence that a context sentence supports; n numbers
    that sentence's passage. A sentence nothing supports stays uncited, unless no sentence of the
    answer is: then its last sentence cites the passage that best supports the whole answer
    (best_passage). An answer in another language than the documents' shares few words with any
    one sentence, though the checks found it grounded in them; it is still cited. StreamCiter cites
    sentence by sentence: `final` is False before the last, and `whole` is then the whole answer."""
    out, pos, spans = [], 0, sentence_spans(answer, ANSWER_ENDS)
    numbers = [supporting_passages(answer[a:b], context, passages, lang, question) for a, b in spans]
    # The marker goes on a sentence, not on a last fragment with no words ("…", "(", "---").
    if final and spans and not any(numbers) and terms(answer[spans[-1][0]:spans[-1][1]], lang):
        numbers[-1] = best_passage(answer if whole is None else whole, context, passages, lang, question)
    for (start, end), cited in zip(spans, numbers):
        out.append(answer[pos:start])
        pos = end
        out.append(_cited(answer[start:end], cited))
    out.append(answer[pos:])
    return "".join(out)


class StreamCiter:
    """cite() applied to a token stream, with the same result: text passes through at once, only
    what may still become a sentence's end (its final punctuation, the spaces, quotes and brackets
    after it) is held until the splitter (rag.text.sentences) has seen enough to say whether the
    sentence ends there, so its [n] can go before that punctuation."""

    # What may still turn out to end the sentence being written, at the end of the text so far.
    _UNDECIDED = re.compile(r"[.!? ]*(?:[.!?][\s\"'«“(\[»”’)\]]*)?[\s\"'«“(\[]*\Z")
    # A boundary is decided once a character past the spaces, quotes and brackets after it is known.
    _DECIDING = re.compile(r"[^\s\"'«“(\[»”’)\]]")

    def __init__(self, context: list[Sentence], passages: list[Hit], lang: str, question: str = ""):
        self.context, self.passages, self.lang, self.question = context, passages, lang, question
        self.text = ""  # the answer from the start of the sentence being written
        self.shown = 0  # characters of self.text already passed on
        self.answer = ""  # the whole answer so far, and whether a sentence of it was cited
        self.cited = False

    def _cite(self, text: str, final: bool) -> str:
        """What cite() makes of text, less what is already shown (never more than the words before
        a sentence's final punctuation, so it is a prefix of that)."""
        out = cite(text, self.context, self.passages, self.lang, self.question, self.answer, final and not self.cited)
        self.cited = self.cited or out != text
        return out[self.shown :]

    def feed(self, piece: str) -> str:
        self.text += piece
        self.answer += piece
        out = []
        while len(spans := sentence_spans(self.text, ANSWER_ENDS)) > 1 and self._DECIDING.search(self.text, spans[0][1]):
            end, following = spans[0][1], spans[1][0]
            out.append(self._cite(self.text[:end], False) + self.text[end:following])
            self.text, self.shown = self.text[following:], 0
        ready = len(self.text) - len(self._UNDECIDED.search(self.text).group(0))
        if ready > self.shown:
            out.append(self.text[self.shown : ready])
            self.shown = ready
        return "".join(out)

    def flush(self) -> str:
        # Cited without the whitespace it ends in, as the check cites the stripped answer (the same
        # text, so no needless Replace), and that whitespace given back after.
        body = self.text.rstrip()
        out = self._cite(body, True) + self.text[len(body):] if len(body) >= self.shown else self.text[self.shown:]
        self.text, self.shown, self.answer, self.cited = "", 0, "", False
        return out
