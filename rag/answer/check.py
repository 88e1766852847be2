"""The answer check: is the model's answer about the question and borne out by the sentences it was
given? If not, the best of those sentences is quoted instead, or the assistant says the documents
do not answer.

A 0.5B model answers what the documents do not say with what they do say: a true sentence that is
not about the question, a fact of the wrong kind ("France" for a budget), or a fact told with the
words of another sentence. Each rule below catches one of these, measured with `rag eval` (README).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from rag.answer.answer_types import brings_kind, common_words, expected_kind, facts, new_facts, predicate
from rag.answer.citations import is_refusal
from rag.answer.evidence import cite, evidence_for, is_grounded
from rag.answer.translate import kept_tokens
from rag.errors import ConfigError
from rag.generation.prompts import Prompt, quote_lead, refusal_text
from rag.retrieval.ranking import (
    MIN_SENTENCE_CHARS,
    Sentence,
    continues,
    is_heading,
    previous_sentence,
    quotation,
    table_header,
    table_rows,
    with_previous,
)
from rag.schema import CELL_SEPARATOR
from rag.text.language import detect_language
from rag.text.lexical import lemmas, stemmer, text_languages, tokenize
from rag.text.support import coverage, names, shared, states_numbers, terms

# The best sentence is quoted in place of an ungrounded answer only when it holds at least this share
# of the question's terms; below it, the documents most likely do not answer and the assistant says so.
QUOTE_MIN_COVERAGE = 0.34
# A table cell of at most this many words is a bare value, read by its column's header.
BARE_CELL_WORDS = 3
# A grounded answer must also rest on sentences that are about the question: true facts from the
# documents given in answer to something they do not address ("France" for a football final) are
# the small model's usual way of answering the unanswerable. "About the question" is relative: at
# least this share of the best context sentence's coverage (an English question about French text
# shares few words with any of it, even where it answers); the same share sets the bar a quote must
# clear (Reading.quote_about). Under it a fixed floor: a sentence covering less of the question is about
# something else, whatever the best one covers. Both chosen by sweeps on the four dev splits
# (docs/quality.md, ninth round).
ANSWER_RELATIVE_COVERAGE = 0.8
ANSWER_MIN_COVERAGE = 0.4
# ...and on a sentence ranked nearly as high as the best one given (rag.answer.evidence.rank_sentences: terms
# shared and dense similarity): the small model often answers from the second or third sentence
# shown, a true fact about something near the question ("la ministre a participé à la conférence"
# for "quelle agence assistait à la conférence").
ANSWER_RELATIVE_SCORE = 0.9
# How many of the best-ranked sentences may be quoted: the first one often names the subject while
# the next holds the asked-for date or number ("The initiative aims at…" / "It will start in March").
QUOTE_CANDIDATES = 3
# Share of the question's names and numbers the passages must mention for a quote to be about it
# (half, not all: "Kyiv" in a question is "Kiev" in a French text).
QUOTE_MIN_NAMES = 0.5


# Every check the model's answer must pass, by name: `rag eval --checks` (RAG_CHECKS) switches each
# off to measure what it does (docs/quality.md has the ablation numbers). "quote" is the fallback
# that quotes the best sentence when the answer fails; without it a failed answer is refused.
# "about" (the answer's sentences cover the question) and "numbers" (they hold the question's
# numbers) were removed: alone they changed no answer on the dev splits.
CHECKS = ("grounded", "kind", "rank", "predicate", "quote", "judge")


def enabled_checks(spec: str) -> frozenset[str]:
    """The checks a spec switches on: "all", "none", "grounded,kind" or "all,-kind"."""
    on: set[str] = set()
    for item in (x.strip() for x in (spec or "all").split(",") if x.strip()):
        name = item.lstrip("-+")
        if name in ("all", "none"):
            on = set(CHECKS) if name == "all" else set()
        elif name not in CHECKS:
            raise ConfigError(f"unknown answer check {name!r} in RAG_CHECKS/--checks; known: all, none, {', '.join(CHECKS)}")
        elif item.startswith("-"):
            on.discard(name)
        else:
            on.add(name)
    return frozenset(on)


class Verdict(NamedTuple):
    text: str
    refused: bool
    outcome: str  # "direct" (the model's own answer, kept), "quote" or "refusal"
    decided_by: str | None  # the check that turned the model's answer down; "model" when it refused itself
    failed: tuple[str, ...] = ()  # every switched-on check the model's answer failed (for ablations)
    quoted: tuple[str, int] | None = None  # a quote's own words and its passage's number, as the documents say it


def check(question: str, raw: str, prompt: Prompt, lang: str, corpus_lang: str,
          checks: frozenset[str] | tuple[str, ...] = CHECKS, translation: str | None = None,
          translate: Callable[[str], str | None] | None = None,
          titles: Callable[[str], frozenset[str]] | None = None) -> Verdict:
    """The answer to show, whether it is a refusal, and how it was made.

    A grounded answer that rests on the sentences most about the question and brings a fact of
    the kind asked for (a date for "when", a number for "how many": rag.answer.answer_types) is kept
    and cited. Otherwise the best of the top sentences that covers most of the question and
    holds such a fact is quoted; failing that, a plain refusal. `translation` is the question in the
    documents' language (rag.answer.translate), when it was asked in another; `translate`, when
    given, turns a quote in another language than the question's into the question's (None when
    its translation is unusable: the original is quoted); `titles`, a document's section titles
    by its source, so a table of contents' line naming another section is not quoted."""
    if is_refusal(raw):
        return Verdict(refusal_text(lang), True, "refusal", "model")
    reading = Reading(question, prompt, lang, corpus_lang, translation, titles)
    failed = reading.failed_checks(raw, frozenset(checks)) if raw else ("empty",)
    if not failed:
        return Verdict(cite(raw, prompt.context, prompt.passages, reading.spec, question), False, "direct", None)
    return reading.instead(failed, frozenset(checks), translate)


def overruled(question: str, prompt: Prompt, lang: str, corpus_lang: str, checks: frozenset[str],
              translation: str | None = None, titles: Callable[[str], frozenset[str]] | None = None) -> Verdict:
    """What an answer the checks passed gets when the judge (rag.answer.judge) turns it down: the quote
    a failed answer gets, or a refusal."""
    return Reading(question, prompt, lang, corpus_lang, translation, titles).instead(("judge",), checks)


def translated(verdict: Verdict, lang: str, translate: Callable[[str], str | None]) -> Verdict:
    """A quote in another language than the question's, shown in the question's (its [n] still cites
    the original passage); the verdict as it is when it is no quote, the quote is in the question's
    language, or its translation is unusable (translate gives None)."""
    if verdict.quoted is None:
        return verdict
    text, n = verdict.quoted
    words = translate(text) if detect_language(text, default=lang) != lang else None
    return verdict._replace(text=f"{quote_lead(lang, translated=True)} « {words} » [{n}]") if words else verdict


class Reading:
    """What the check knows of a question and the sentences it was answered from."""

    def __init__(self, question: str, prompt: Prompt, lang: str, corpus_lang: str, translation: str | None = None,
                 titles: Callable[[str], frozenset[str]] | None = None):
        # The question's and the answer's words are read without the stop words of their own language
        # as well as the documents' ("Die" opening a German answer about English pages is no name).
        self.question, self.prompt, self.langs = question, prompt, (lang, corpus_lang)
        self.spec = text_languages(corpus_lang, lang)  # as the assistant's StreamCiter cites while streaming
        # How much of the question a sentence holds is read in the question's words and in its
        # translation into the documents' language, whichever the sentence shares more of: an
        # English question shares few words with German text even where the text answers it.
        self.wordings = (question,) + ((translation,) if translation and translation != question else ())
        self.kind = expected_kind(question)
        self.covered = {id(s): self.covers(s.text) for s in prompt.context}
        best_covers = max(self.covered.values(), default=0.0)
        # Copying a true sentence that is not about the question is the small model's usual way of
        # answering what the documents do not say: the answer's own sentences must be about as much
        # about the question as the best sentence it was given.
        self.about = max(ANSWER_MIN_COVERAGE, ANSWER_RELATIVE_COVERAGE * best_covers)
        self.quote_about = max(QUOTE_MIN_COVERAGE, ANSWER_RELATIVE_COVERAGE * best_covers)
        self.passages = " ".join(h.chunk.text for h in prompt.passages)
        self.common = common_words(self.passages) if self.kind == "name" else frozenset()
        self.said = predicate(question)  # "Qui dirige X ?": the passages must say "dirige" of someone
        self.best_score = max((s.score for s in prompt.context), default=0.0)
        self.scores = {(s.hit.chunk.source, s.start): s.score for s in prompt.context}
        self.titles = titles

    def names_a_section(self, s: Sentence) -> bool:
        """The sentence is the title of a section of its document: a line of a table of contents or
        a list of links, which names where an answer is, not the answer. A segment too short to be a
        sentence runs on into the line after it (rag.retrieval.ranking.run_on): "Contents" before the
        first entry, "3." before a title, is no part of the title."""
        if self.titles is None:
            return False
        text, titles = " ".join(s.text.split()), self.titles(s.hit.chunk.source)
        return text in titles or any(len(text) - len(t) <= MIN_SENTENCE_CHARS and text.endswith(" " + t) for t in titles)

    def covers(self, text: str) -> float:
        return max(coverage(wording, text, self.spec) for wording in self.wordings)

    def states_predicate(self, text: str) -> bool:
        """text says what a who-question says of the person: the word, a cognate, a shared lemma or
        the same stem in each one's language ("signed" and "signé" are both "sign")."""
        return (self.said is None or shared({self.said}, text, self.spec) > 0
                or bool(lemmas(self.said, self.langs) & lemmas(text, self.langs))
                or stemmer(self.langs[0]).stemWord(self.said) in tokenize(text, self.spec))

    def read(self, s: Sentence) -> str:
        """A sentence continuing the one before ("« … » , a déclaré Mykhailo Fedorov sur Telegram")
        is read with it; any other stands alone ("La France a annoncé en 2025…" after the sentence
        on the invasion does not answer when the invasion began)."""
        return with_previous(s) if continues(s) else s.text

    def in_asked_column(self, s: Sentence, text: str) -> bool:
        """A value text brings from a table row is in a column whose header names what is asked: a
        package table's size column gives no port ("samba | … | 4110 | …" under "… | Size | …").
        True when s is no row under a header, the cells do not line up, or no value is asked for."""
        header = table_header(s) if self.kind in ("number", "money", "date") else ""
        cells, heads = s.text.split(CELL_SEPARATOR), header.split(CELL_SEPARATOR)
        if not header or len(cells) != len(heads):
            return True
        found = new_facts(self.question, text, self.kind, self.langs) & facts(s.text, self.kind, self.langs)
        # A value inside a cell's own sentence is read like any sentence's (the kind check's `placed`);
        # a bare value ("4110", "993 tcp") means what its column's header says.
        if not found:
            return True
        read = [cell for cell, head in zip(cells, heads) if len(cell.split()) > BARE_CELL_WORDS or self.covers(head) > 0]
        return any(found & facts(cell, self.kind, self.langs) for cell in read)

    def table_read(self, s: Sentence) -> tuple[str, Sentence] | None:
        """When s is a table's title or the table's first row after it (rag.retrieval.ranking.
        table_rows) and a row covers some of the question: the quote of the title, the first row and
        the row that covers most (each once), and that row. None otherwise."""
        title, rows = s, table_rows(s)
        if not rows and (before := previous_sentence(s)) is not None:
            title, rows = before, table_rows(before)
        covers = [self.covers(r.text) for r in rows]
        if not rows or max(covers) <= 0:
            return None
        # The first row is most often the header, which shares the question's words and answers none:
        # it is the row quoted only when no other covers any of the question.
        best = max(range(1, len(rows)), key=covers.__getitem__, default=0)
        if covers[best] <= 0:
            best = 0
        lead = f"{title.text} {rows[0].text}"
        if best == 0:
            return lead, rows[0]
        return f"{lead}{' … ' if best > 1 else ' '}{rows[best].text}", rows[best]

    def gives_asked(self, s: Sentence) -> bool:
        """s holds a fact of the kind asked for, and from a table, in the column the question names."""
        return brings_kind(self.question, s.text, self.kind, common=self.common, langs=self.langs) \
            and self.in_asked_column(s, s.text)

    def rank(self, s: Sentence) -> float:
        """A continuing sentence that brings the asked-for fact ranks as the one before it, which says
        what it is about. Without a kind of fact to check, nothing ties it to the question."""
        before = previous_sentence(s) if self.kind is not None and continues(s) else None
        return max(s.score, self.scores.get((before.hit.chunk.source, before.start), 0.0) if before else 0.0)

    def failed_checks(self, raw: str, checks: frozenset[str] = frozenset(CHECKS)) -> tuple[str, ...]:
        """Every check (of those switched on) the answer fails; () when it passes them all. All are
        run, not only up to the first failure, so one eval run tells what dropping each would do.

        The answer is grounded, about the question, ranked high, and brings the fact asked for
        from a sentence that is about the question too: "12 400" from the 2023 sentence told with
        the words of the 2024 one is a made-up fact."""
        evidence = evidence_for(raw, self.prompt.context, self.spec, self.question)
        around = " ".join(with_previous(s) for s in evidence)
        tests = {
            # Why each exists, and its ablation on the dev splits: docs/quality.md.
            # kind: a fact of the kind asked for (a count for "how many"), from a sentence about the question
            # and, in a table, from a column whose header names what is asked.
            "kind": lambda: self.kind is None or any(
                brings_kind(self.question, raw, self.kind, within=s.text, common=self.common, langs=self.langs)
                and self.in_asked_column(s, raw)
                and max(self.covered[id(s)], self.covers(self.read(s))) >= self.about for s in evidence),
            # rank: the small model answers from a lower-ranked sentence near the question, not from the best.
            "rank": lambda: any(self.rank(s) >= ANSWER_RELATIVE_SCORE * self.best_score for s in evidence),
            # grounded: the answer adds something, and the names, numbers and words it adds are in the context.
            "grounded": lambda: is_grounded(raw, self.question, self.prompt.context, self.spec),
            # predicate: a who-question's verb is said of the person named ("who heads" wants "heads").
            "predicate": lambda: self.states_predicate(around),
        }
        return tuple(name for name, passes in tests.items() if name in checks and not passes())

    def instead(self, failed: tuple[str, ...], checks: frozenset[str],
                translate: Callable[[str], str | None] | None = None) -> Verdict:
        """The verdict on an answer that failed: the best sentence quoted, or a refusal."""
        lang = self.langs[0]
        quote = self.quote() if "quote" in checks else None
        if quote is None:
            return Verdict(refusal_text(lang), True, "refusal", failed[0], failed)
        text, n = quote
        verdict = Verdict(f"{quote_lead(lang)} « {text} » [{n}]", False, "quote", failed[0], failed, quote)
        return translated(verdict, lang, translate) if translate is not None else verdict

    def accepts(self, raw: str) -> bool:
        return not self.failed_checks(raw)

    def quote(self) -> tuple[str, int] | None:
        """(sentences to quote, their passage number): of the best-ranked sentences that hold a fact
        of the kind asked for and cover enough of the question, the one covering most, one bringing a
        number, path or identifier first."""
        # A question about something the passages never name ("la capitale de l'Australie") gets no
        # quote, however many of its common words a sentence shares ("d'une importance capitale").
        asked = names(self.question, self.spec)
        if asked and shared(asked, self.passages, self.spec) < QUOTE_MIN_NAMES * len(asked):
            return None
        quotes = []  # (coverage, text, passage number), best ranked first
        for best in sorted(self.prompt.context, key=lambda s: -s.score)[:QUOTE_CANDIDATES]:
            # A heading names what its section answers; quoted, it answers nothing (an FAQ's heading
            # is the question itself). It stays in the model's context, where it says what follows.
            if is_heading(best) or self.names_a_section(best):
                continue
            # A table's title, or its first row, names what the rows tell, not what one of them says: the
            # row covering most of the question is quoted after them (alone, without its column names, the
            # row answers as little). When no row passes, the sentence is weighed like any other.
            table = self.table_read(best)
            if table is not None and self.gives_asked(table[1]):
                text = table[0]
            else:
                if not self.gives_asked(best):
                    continue
                # Below the bar alone, the sentence before may say what this one is about ("Elle sera…").
                text = with_previous(best) if self.covered[id(best)] < self.quote_about else best.text
                # A count belongs to the noun it counts: "combien d'obus" is not answered by "six" in
                # the next sentence when the sentence before names the shells with no number. (A name
                # may: "Le ministre a annoncé…" / "…, a déclaré Mykhailo Fedorov".)
                if self.kind == "number" and text != best.text and not brings_kind(self.question, text, self.kind, common=self.common, langs=self.langs):
                    continue
                text = text[: -len(best.text)] + quotation(best)  # a quotation is quoted to its end
            covers = self.covers(text)
            # Like an answer (is_grounded), a quote must add something to the question: a sentence of
            # the question's own words (a table of contents, a caption) tells the user nothing.
            said = terms(text, self.spec)
            if shared(said, " ".join(self.wordings), self.spec) == len(said):
                continue
            if covers >= self.quote_about and states_numbers(self.question, text, self.spec) and self.states_predicate(text):
                n = next(i for i, h in enumerate(self.prompt.passages, start=1) if h is best.hit)
                quotes.append((covers, text, n))
        if not quotes:
            return None
        # A quote that brings a number, path, option or identifier the question does not write is
        # preferred to one covering more of the question with none (a sentence announcing "the
        # following settings:" against one naming /etc/foo.conf): told by shape, in every language.
        # Dev splits +2 right, 0 wrong; test +3, 0 wrong (docs/quality.md, "Sixth round").
        written = kept_tokens(self.question)
        _, text, n = max(quotes, key=lambda q: (bool(kept_tokens(q[1]) - written), q[0]))  # of equals, the best ranked
        return text, n
