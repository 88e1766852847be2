"""Sentence-level retrieval: the sentences of the retrieved passages, ranked by how much of the question
they hold, so the model reads a handful of relevant sentences instead of whole passages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from rag.schema import SECTION_SEPARATOR, Hit, is_row, permalink_sign
from rag.text.sentences import sentence_spans
from rag.text.support import coverage

# Share of a sentence's score the next sentence inherits (see rank_sentences), and the most characters
# (spaces, a closing quote) that may lie between two sentences for them to count as consecutive.
CONTINUATION_SHARE = 0.8

SENTENCE_GAP = 4
# Shorter segments are no sentence to rank or quote on their own (a bullet, a section number, a cell on a
# line of its own, as PDFs give tables; a table row under this length too): see run_on.
MIN_SENTENCE_CHARS = 12

Relevance = Callable[[str, list[str]], Sequence[float]]  # (question, sentences) -> similarity in [-1, 1]

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
        for s, e in run_on(c.text, sentence_spans(c.text)):
            key = (c.source, c.start + s)
            text = sentence_text(c.text[s:e])
            if key in seen or len(text) < MIN_SENTENCE_CHARS:
                continue
            seen.add(key)
            out.append(Sentence(hit, c.start + s, c.start + e, text))
    return out

_BULLET = re.compile(r"^[-–—•*]+\s+")


def sentence_text(raw: str) -> str:
    """A segment as a sentence: whitespace collapsed, a list bullet dropped (layout, not words); a
    leading dash that is part of a word stays ("--purge", "-rw-r--r--", "-5")."""
    return _BULLET.sub("", " ".join(raw.split()))

def run_on(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans, a segment shorter than a sentence (MIN_SENTENCE_CHARS) running on into the next ones
    until the whole is as long: a table the loader gave a line a cell ("9" "SIGKILL" "terminate the
    process", as PDFs do), and what follows a colon ("coding:" "cp1252 -*-"). Dropped, they took the
    asked-for number or name with them; run on, the row is one sentence (docs/quality.md, "Eleventh
    round"). A short last segment stays short. (A row of " | " cells under this length runs on into
    the next row too: keeping it whole was measured, dev +4, test -2, "Eighteenth round".)"""
    out, start = [], None
    for s, e in spans:
        start = s if start is None else start
        if len(sentence_text(text[start:e])) >= MIN_SENTENCE_CHARS:
            out.append((start, e))
            start = None
    if start is not None:
        out.append((start, spans[-1][1]))
    return out

def _without_permalink(line: str) -> tuple[str, ...]:
    """The line, and the line without a trailing sign of one or two characters that could be a
    heading's permalink (rag.schema.permalink_sign): the loaders leave it out of labels."""
    head = line[:-2].rstrip() if len(line) > 2 and permalink_sign(line[-2:]) else None
    one = line[:-1].rstrip() if len(line) > 1 and permalink_sign(line[-1:]) else None
    return tuple(dict.fromkeys(x for x in (line, one, head) if x))


def is_heading(sentence: Sentence) -> bool:
    """The sentence lies in the heading its chunk starts with: a heading starts a chunk, and the
    chunk's section label ends with its title. A label, known from the document's structure in any
    language ("12.1.1. POSIX shells" is split at its numbering's full stop: each part is in the line)."""
    chunk = sentence.hit.chunk
    if not chunk.section:
        return False
    first = chunk.text.split("\n", 1)[0]
    line = " ".join(first.strip().strip("#").split())  # a Markdown heading's "## " is no part of its title
    label = " ".join(chunk.section.split())
    # The title is the label's last part; compared on the whole label, a title holding " > " still matches.
    # The line may end in the heading's permalink sign, which the label leaves out ("Installing¶").
    titled = bool(line) and any(label == shown or label.endswith(SECTION_SEPARATOR + shown)
                                or label.endswith("…") and shown.startswith(label.rsplit(SECTION_SEPARATOR, 1)[-1][:-1])
                                for shown in _without_permalink(line))
    # A sentence running on past the line (a lower-case body line joined to the heading) is no heading.
    return titled and sentence.end <= chunk.start + len(first)


def previous_sentence(sentence: Sentence) -> Sentence | None:
    """The sentence before this one in its passage: ", a déclaré Mykhailo Fedorov sur Telegram" needs
    it to say what was declared."""
    before = [s for s in sentences_of([sentence.hit]) if s.end <= sentence.start]
    return before[-1] if before else None

# A sentence that goes on from the one before starts with a quotation mark or a bracket, a comma or
# a semicolon ("« … » , a déclaré M. Fedorov"), or a lower-case letter of any script. (A list of English
# and French pronouns beside these changed no answer on the eight held-out splits: docs/quality.md.)
_CONTINUES_SIGNS = "«“\"'(,;"

def continues(sentence: Sentence) -> bool:
    """The sentence leans on the one before it for what it is about, or goes on a quotation the one
    before opened ("« Nous avons décidé de… Très concrètement, cela peut se traduire par… »")."""
    first = sentence.text[:1]
    if first in _CONTINUES_SIGNS or first.islower():
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

def rank_sentences(question: str, hits: list[Hit], lang: str, relevance: Relevance | None = None) -> list[Sentence]:
    """Sentences best first: share of the question's terms they contain, dense similarity, and the
    rank of their passage as a tie-breaker. A sentence right after a relevant one inherits part of
    its score: "Elle sera opérationnelle dès mars 2026" answers a question about the initiative the
    sentence before names, and shares no word with it itself."""
    candidates = sentences_of(hits)
    if not candidates:
        return []
    # A table's row is read with its header: "imap2 | 143 | imaps | 993" holds the asked-for service,
    # "… | Port | … | Port" says what its numbers are (docs/quality.md, "Eighteenth round").
    texts = [f"{h} {s.text}" if (h := table_header(s)) else s.text for s in candidates]
    dense = list(relevance(question, texts)) if relevance else [0.0] * len(candidates)
    # Cognates count: an English question about French text shares "system", "defence", "cooperation" with it.
    own = [coverage(question, t, lang) + float(d) + 0.05 / s.hit.rank for s, t, d in zip(candidates, texts, dense)]
    before = _previous_index(candidates)
    scored = []
    for i, s in enumerate(candidates):
        inherited = CONTINUATION_SHARE * own[before[i]] if before[i] is not None else 0.0
        scored.append(Sentence(s.hit, s.start, s.end, s.text, max(own[i], inherited)))
    return sorted(scored, key=lambda s: -s.score)

def table_header(sentence: Sentence) -> str:
    """The first row of the table a row belongs to, when its passage holds it and it is another row
    (rows are lines of cells, rag.schema.is_row, blank lines between them): what its columns are."""
    text, at = sentence.hit.chunk.text, sentence.start - sentence.hit.chunk.start
    line_start = text.rfind("\n", 0, at) + 1
    if not is_row(text[line_start:].split("\n", 1)[0]):
        return ""
    header = ""
    for line in reversed(text[:line_start].split("\n")):
        if is_row(line):
            header = line
        elif line.strip():
            break
    return header.strip()


def table_rows(title: Sentence) -> list[Sentence]:
    """The rows of the table a sentence introduces, first row first, as far as its passage holds them;
    [] when it introduces none. It does when it ends a line that is no row and the passage's next
    line is a table's first row: the table's title or the sentence announcing it ("Table 5.3. Old and
    new commands"), which names what the rows below tell, in any language. Each row is a whole line
    (a row's cell may hold a full stop or a colon, where sentences end)."""
    chunk = title.hit.chunk
    text, end = chunk.text, title.end - chunk.start
    at = text.find("\n", end)
    if text[end : len(text) if at == -1 else at].strip() or is_row(text[text.rfind("\n", 0, end) + 1 : end]):
        return []
    rows = []
    while at != -1:
        start = at + 1
        at = text.find("\n", start)
        line = text[start : len(text) if at == -1 else at]
        if not line.strip():
            continue
        if not is_row(line):
            break
        rows.append(Sentence(title.hit, chunk.start + start, chunk.start + start + len(line), " ".join(line.split())))
    return rows


def introduces_table(sentence: Sentence) -> bool:
    """The sentence is a table's title or announces it (table_rows)."""
    return bool(table_rows(sentence))


def _previous_index(sentences: list[Sentence]) -> list[int | None]:
    """For each sentence, the index of the one just before it in the same document, if given."""
    by_place = {(s.hit.chunk.source, s.end): i for i, s in enumerate(sentences)}
    out = []
    for s in sentences:
        out.append(next((by_place[(s.hit.chunk.source, end)] for end in range(s.start, max(s.start - SENTENCE_GAP, 0) - 1, -1)
                         if (s.hit.chunk.source, end) in by_place), None))
    return out
