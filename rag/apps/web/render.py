"""What the chat page shows, made safe: answers and sources rendered from model and document text.

Everything that comes from a document or from the model is escaped here: the sources panel is
built with html.escape, and chat messages have every Markdown character escaped, so no markup,
link or remote image from a document can become active in the browser. No Gradio here.
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import quote

from rag.answer.citations import MARKER
from rag.errors import IndexMissingError, RagError
from rag.schema import Answer, Citation
from rag.text.sentences import ANSWER_ENDS, sentence_spans
from rag.text.support import shared, terms

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&:$@=\"'^])")
_ESCAPED_MARKER = re.compile(r"\\\[(\d{1,3})\\\]")


def escape_markdown(text: str) -> str:
    """Every ASCII punctuation character a Markdown or HTML parser could act on, backslash-escaped:
    the chat shows the text literally (no links, images, tags, autolinks or LaTeX)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def cite_id(turn: int, n: int) -> str:
    return f"rag-src-{turn}-{n}"


def render_answer(text: str, turn: int, citations: tuple[Citation, ...] = ()) -> str:
    """Chat message for an answer: escaped text, [n] markers turned into links to the sources panel."""
    sources = {c.n: c.source for c in citations}

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        title = escape(sources.get(n, f"source {n}"), quote=True)
        return f'<a class="rag-cite" href="#{cite_id(turn, n)}" title="{title}">[{n}]</a>'

    return _ESCAPED_MARKER.sub(link, escape_markdown(text))


def supporting_spans(passage: str, claims: list[str], lang: str) -> list[tuple[int, int]]:
    """Spans of the passage's sentences that best support the claims (the answer sentences citing
    it), scored as the engine scores support (rag.text.support); the whole passage when none clearly does."""
    segments = sentence_spans(passage)
    if not segments:
        return [(0, len(passage))]
    chosen: set[int] = set()
    for claim in claims:
        words = terms(MARKER.sub(" ", claim), lang)
        if not words:
            continue
        scores = [shared(words, passage[s:e], lang) / len(words) for s, e in segments]
        best = max(range(len(scores)), key=scores.__getitem__)
        if scores[best] >= 0.2:
            chosen.add(best)
    if not chosen:
        return [(0, len(passage))]
    return [segments[i] for i in sorted(chosen)]


def highlight(passage: str, spans: list[tuple[int, int]], offset: int = 0) -> str:
    """Escaped passage with the spans wrapped in <mark> (titled with their document position)."""
    out, pos = [], 0
    for s, e in spans:
        out.append(escape(passage[pos:s]))
        out.append(f'<mark title="characters {offset + s}–{offset + e}">{escape(passage[s:e])}</mark>')
        pos = e
    out.append(escape(passage[pos:]))
    return "".join(out)


def claims_for(answer_text: str, n: int) -> list[str]:
    return [answer_text[s:e] for s, e in sentence_spans(answer_text, ANSWER_ENDS) if f"[{n}]" in answer_text[s:e]]


def open_link(c: Citation) -> str:
    """A link that opens the cited file (a PDF at its page) through `rag serve`'s /source route,
    which serves indexed files only."""
    href = "/source/" + quote(c.source) + (f"#page={c.page}" if c.page else "")
    return f' <a class="rag-open" href="{escape(href, quote=True)}" target="_blank" rel="noopener">open</a>'


def render_sources(answer: Answer | None, turn: int) -> str:
    """The sources panel for one answer: each cited passage with file, position and the cited
    span highlighted; then the other retrieved passages, folded. Every document string is escaped."""
    if answer is None:
        return '<div class="rag-sources-empty">Sources of the latest answer appear here.</div>'
    parts = [f'<div class="rag-sources-q">Sources for: <q>{escape(answer.question)}</q></div>']
    if answer.standalone_question and answer.standalone_question != answer.question:
        parts.append('<details class="rag-standalone"><summary>Question as searched</summary>'
                     f"<p>{escape(answer.standalone_question)}</p></details>")
    if not answer.citations:
        parts.append('<div class="rag-sources-empty">No passage is cited in this answer.</div>')
    for c in answer.citations:
        spans = supporting_spans(c.text, claims_for(answer.text, c.n), answer.language)
        parts.append(
            f'<div class="rag-source" id="{cite_id(turn, c.n)}">'
            f'<div class="rag-source-head"><span class="rag-badge">[{c.n}]</span> '
            f'<span class="rag-file">{escape(c.location)}</span> '
            f'<span class="rag-pos">characters {c.start}–{c.end}</span>{open_link(c)}</div>'
            f'<div class="rag-passage">{highlight(c.text, spans, c.start)}</div></div>'
        )
    cited = {(c.source, c.start) for c in answer.citations}
    others = [h for h in answer.retrieved if (h.chunk.source, h.chunk.start) not in cited]
    if others:
        items = "".join(
            f'<div class="rag-other"><span class="rag-file">{escape(h.chunk.source)}</span> '
            f'<span class="rag-pos">characters {h.chunk.start}–{h.chunk.end}</span>'
            f'<div class="rag-passage">{escape(h.chunk.text)}</div></div>'
            for h in others
        )
        parts.append(f"<details><summary>Other passages given to the model ({len(others)})</summary>{items}</details>")
    return "".join(parts)


def user_message(error: Exception) -> str:
    """One sentence for the chat instead of a traceback."""
    if isinstance(error, RagError):
        text = str(error)
        if isinstance(error, IndexMissingError):
            text += "; in this chat you can also add documents or press Re-index in the Documents tab"
    else:
        text = f"the model failed ({type(error).__name__}: {error}); try again, or choose another model in Settings"
    return text[:1].upper() + text[1:]


def error_markdown(error: Exception) -> str:
    return "⚠️ " + escape_markdown(user_message(error))
