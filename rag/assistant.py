"""The engine behind every front end: retrieve, prompt, generate, check citations."""

from __future__ import annotations

import time
from typing import Iterator

from rag.citations import StreamCleaner, attribute, is_refusal, resolve
from rag.config import Settings
from rag.errors import InputError
from rag.followup import rewrite_followup
from rag.generation import Generator
from rag.language import detect_language
from rag.prompts import build_messages, refusal_text
from rag.retrieve import Retriever
from rag.schema import Answer

_CONTROL = dict.fromkeys(c for c in (*range(32), *range(127, 160)) if c not in (9, 10, 13))  # C0, DEL, C1


def clean_question(question: str) -> str:
    """Control characters dropped (they confuse tokenizers and terminals); must not be empty."""
    q = (question or "").encode("utf-8", "replace").decode("utf-8").translate(_CONTROL).strip()  # lone surrogates -> "?"
    if not q:
        raise InputError("the question is empty; type a question about your documents")
    return q


class Assistant:
    def __init__(self, retriever: Retriever, generator: Generator, settings: Settings, model_label: str | None = None):
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.model_label = model_label or generator.name

    def stream(self, question: str, top_k: int | None = None, temperature: float | None = None,
               lang: str | None = None, history: list[dict] | None = None) -> Iterator[str | Answer]:
        """Yields answer text pieces as they are generated, then the final Answer.

        history: earlier turns as {"role", "content"} messages; a follow-up question is first
        rewritten with them into a standalone question, which is what gets retrieved and answered.
        """
        t0 = time.perf_counter()
        question = clean_question(question)
        top_k = self.settings.top_k if top_k is None else top_k
        if top_k < 0:
            raise InputError("--top-k must be 0 or more")
        standalone, rewrite_s, asked_lang = question, 0.0, None
        if history:
            standalone, asked_lang = rewrite_followup(question, history, self.generator)
            rewrite_s = time.perf_counter() - t0
        t_search = time.perf_counter()
        lang = lang or asked_lang or detect_language(question)
        hits = self.retriever.search(standalone, top_k)
        retrieval_ms = (time.perf_counter() - t_search) * 1000
        corpus_lang = self.retriever.data.manifest.language
        timings = {"retrieval_ms": round(retrieval_ms, 2)}
        if history:
            timings["rewrite_s"] = round(rewrite_s, 4)
        rewritten = standalone if history else None

        if not hits:
            # Nothing to ground an answer on: say so without asking the model to improvise.
            text = refusal_text(lang)
            timings.update(ttft_s=round(time.perf_counter() - t0, 4), total_s=round(time.perf_counter() - t0, 4),
                           prompt_tokens=0, completion_tokens=0, prefill_tps=0.0, decode_tps=0.0)
            yield text
            yield Answer(question, text, True, (), tuple(hits), self.model_label, timings, lang, rewritten)
            return

        messages, passages = build_messages(
            standalone, hits, lang, self.generator.count_tokens, self.generator.n_ctx, self.settings.max_answer_tokens)
        cleaner = StreamCleaner(len(passages))
        first_visible = None
        for piece in self.generator.stream(messages, self.settings.max_answer_tokens,
                                           self.settings.temperature if temperature is None else temperature):
            out = cleaner.feed(piece)
            if out:
                first_visible = first_visible or time.perf_counter()
                yield out
        tail = cleaner.flush()
        if tail:
            yield tail
        stats = self.generator.last_stats
        raw = cleaner.raw.strip()
        refused = not raw or is_refusal(raw)
        if refused:
            text, citations = refusal_text(lang), ()
            if not cleaner.started or not raw:
                yield text  # the sentinel was held back; show the plain-language refusal instead
        else:
            from rag.citations import clean_markers

            text = attribute(clean_markers(raw, len(passages)), passages, corpus_lang)
            citations = resolve(text, passages)
        total = time.perf_counter() - t0
        timings.update(
            ttft_s=round(rewrite_s + retrieval_ms / 1000 + stats.ttft_s, 4),
            total_s=round(total, 4),
            prompt_tokens=stats.prompt_tokens,
            cached_prompt_tokens=stats.cached_tokens,
            completion_tokens=stats.completion_tokens,
            prefill_tps=round(stats.prefill_tps, 2),
            decode_tps=round(stats.decode_tps, 2),
            llama=stats.llama,
        )
        yield Answer(question, text, refused, citations, tuple(passages), self.model_label, timings, lang, rewritten)

    def ask(self, question: str, **kwargs) -> Answer:
        answer = None
        for item in self.stream(question, **kwargs):
            if isinstance(item, Answer):
                answer = item
        return answer


def build_assistant(settings: Settings, model: str | None = None) -> Assistant:
    """The one place that builds the real models."""
    from rag.embedders import make_embedder
    from rag.generation import LlamaGenerator
    from rag.models import resolve_model

    spec = model or settings.model
    path = resolve_model(spec, settings.cache_dir)
    generator = LlamaGenerator(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads,
                               n_batch=settings.n_batch, flash_attn=settings.flash_attn,
                               prompt_cache_dir=settings.cache_dir / "prompt-cache")
    retriever = Retriever(settings.index_dir, make_embedder(settings.embedder, settings.n_threads), settings.fusion_candidates)
    return Assistant(retriever, generator, settings, model_label=path.name)
