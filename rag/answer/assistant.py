"""The engine behind every front end: retrieve, prompt, generate, check the answer (rag.answer.check), cite."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator

from rag.answer.check import Verdict, check, enabled_checks, overruled, translated
from rag.answer.citations import StreamCleaner, clean_markers, resolve
from rag.answer.compound import alternatives, join_answers, per_document, split_compound, standalone_part
from rag.answer.evidence import StreamCiter
from rag.answer.followup import rewrite_followup
from rag.answer.judge import answer_judged, judged
from rag.answer.translate import search_query, translate_question, translate_quote
from rag.config import Settings
from rag.errors import IndexCorruptError, InputError, ModelError, RagError
from rag.generation.llama import Generator
from rag.generation.prompts import SYSTEM_PROMPT, Prompt, build_prompt, refusal_text
from rag.retrieval.embedders import EmbeddingMemo
from rag.retrieval.search import Retriever
from rag.schema import Answer, Hit
from rag.text.language import detect_language
from rag.text.lexical import text_languages

log = logging.getLogger(__name__)

# Checks the second model's answer is spared: `rank` and `kind` are there for the small model's habits
# (answering from a lower-ranked sentence near the question, or with a fact of another kind); of the
# 1.5B's answers they turned down, more were right than the quotes they left (docs/quality.md, "Tenth
# round": without rank dev +3/-0, test +5/-2; without kind too, dev direct +4 and test +1/-0).
SECOND_WAIVED = frozenset({"rank", "kind"})

# Files a question about each document is asked of, at most (each costs one answer's time).
MAX_DOCUMENTS = 3
# Texts whose embedding the engine keeps for sentence ranking (384 floats each: about 30 MB).
VECTOR_MEMO = 20_000


class Replace(str):
    """Yielded by Assistant.stream when the checked answer differs from the streamed text: the
    front end replaces what it showed with this."""


_CONTROL = dict.fromkeys(c for c in (*range(32), *range(127, 160)) if c not in (9, 10, 13))  # C0, DEL, C1


def clean_question(question: str) -> str:
    """Control characters dropped (they confuse tokenizers and terminals); must not be empty."""
    q = (question or "").encode("utf-8", "replace").decode("utf-8").translate(_CONTROL).strip()  # lone surrogates -> "?"
    if not q:
        raise InputError("the question is empty; type a question about your documents")
    return q


class Assistant:
    def __init__(self, retriever: Retriever, generator: Generator, settings: Settings, model_label: str | None = None,
                 second: Generator | None = None):
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.model_label = model_label or generator.name
        # Asked again when the generator's answer fails the checks (second_opinion); None: no one.
        self.second = second
        self._second_failed = False  # its failure to load is logged once
        # Sentence vectors by text (see relevance); the retriever's embedder, read when embedding.
        self._sentences = EmbeddingMemo(lambda texts: self.retriever.embedder.embed(texts), VECTOR_MEMO)

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
        lang = lang or asked_lang or detect_language(question)
        rewritten = standalone if history else None
        parts = split_compound(standalone, lang)
        if len(parts) > 1:
            asked = [(part, standalone_part(parts, i), None) for i, part in enumerate(parts)]
            yield from self._answer_parts(question, asked, lang, top_k, temperature, t0, rewritten)
            return
        each = per_document(standalone, lang) if top_k > 0 else None
        sources = self._sources(each, top_k) if each else []
        if len(sources) > 1:
            asked = [(f"{each} ({Path(source).name})", each, source) for source in sources]
            yield from self._answer_parts(question, asked, lang, top_k, temperature, t0, rewritten)
            return
        yield from self._answer(question, standalone, lang, top_k, temperature, t0, rewrite_s, rewritten)

    def _sources(self, question: str, top_k: int) -> list[str]:
        """The files a question about each document is asked of: those of its best passages."""
        hits = self.retriever.search(question, top_k * 2)
        return list(dict.fromkeys(h.chunk.source for h in hits))[:MAX_DOCUMENTS]

    def _answer(self, question: str, standalone: str, lang: str, top_k: int, temperature: float | None,
                t0: float, rewrite_s: float = 0.0, rewritten: str | None = None,
                source: str | None = None) -> Iterator[str | Answer]:
        """stream() for one standalone question (about one file, given a source): retrieve, prompt,
        generate, check, cite."""
        t_search = time.perf_counter()
        query, translation = self.search_query(standalone, lang)
        translate_s = time.perf_counter() - t_search if translation else 0.0
        hits = self.retriever.search(query, top_k, source)
        retrieval_ms = (time.perf_counter() - t_search) * 1000
        corpus_lang = self.retriever.data.manifest.language
        timings = {"retrieval_ms": round(retrieval_ms, 2)}
        if translation:
            timings.update(translate_s=round(translate_s, 4), translation=translation)
        if rewritten is not None:
            timings["rewrite_s"] = round(rewrite_s, 4)

        if not hits:
            # Nothing to ground an answer on: say so without asking the model to improvise.
            text = refusal_text(lang)
            timings.update(ttft_s=round(time.perf_counter() - t0, 4), total_s=round(time.perf_counter() - t0, 4),
                           prompt_tokens=0, completion_tokens=0, prefill_tps=0.0, decode_tps=0.0)
            yield text
            yield Answer(question, text, True, (), tuple(hits), self.model_label, timings, lang, rewritten,
                         "refusal", "no_passages")
            return

        prompt = self.prompt_for(standalone, hits, lang, corpus_lang, query)
        # The model is not asked for [n] markers (rag.generation.prompts says why): any it writes are dropped,
        # and each sentence gets the marker of the passage that supports it as it streams.
        cleaner = StreamCleaner(0)
        # Cited as the check cites (rag.answer.check.Reading): the answer's words without the stop words of its language.
        citer = StreamCiter(prompt.context, prompt.passages, text_languages(corpus_lang, lang), standalone)
        streamed = []
        try:
            for piece in self.generator.stream(prompt.messages, self.settings.max_answer_tokens,
                                               self.settings.temperature if temperature is None else temperature):
                out = citer.feed(cleaner.feed(piece))
                if out:
                    streamed.append(out)
                    yield out
        except RagError:
            raise
        except Exception as e:  # a native or library failure: one sentence for the user, not a traceback
            raise ModelError(f"the model failed while answering ({type(e).__name__}: {e}); "
                             "try again or choose another --model") from e
        tail = citer.feed(cleaner.flush()) + citer.flush()
        if tail:
            streamed.append(tail)
            yield tail
        stats = self.generator.last_stats
        checks, raw = enabled_checks(self.settings.checks), clean_markers(cleaner.raw, 0).strip()
        verdict = check(standalone, raw, prompt, lang, corpus_lang, checks, translation, None, self.retriever.section_titles)
        label, shown = self.model_label, "".join(streamed).strip()
        judge = self.second if self.second is not None and self.second.name != label and not self._second_failed else None
        if self.settings.judge_answers and verdict.outcome == "direct" and "judge" in checks and judge is not None:
            # The larger model reads whether the passages the answer cites say it; if not, it is failed (judge.py).
            verdict = answer_judged(verdict, judge, standalone, raw, prompt, timings, lambda: overruled(
                standalone, prompt, lang, corpus_lang, checks, translation, self.retriever.section_titles))
        if verdict.outcome == "quote" and self.second is not None and self.second.name != label:
            # The quote is shown while the second model answers (seconds on a CPU); its answer replaces it.
            yield Replace(verdict.text)
            shown = verdict.text
            t_second = time.perf_counter()
            second = self.second_opinion(standalone, prompt, lang, corpus_lang, translation, temperature)
            timings["second_s"] = round(time.perf_counter() - t_second, 4)
            timings["second_used"] = second is not None
            if second is not None:
                # decided_by and failed still name the checks the first model's answer failed (ablations);
                # the counters below stay the first model's: its answer's cost was paid too.
                verdict, label = second._replace(decided_by=verdict.decided_by, failed=verdict.failed), self.second.name
                own = self.second.last_stats
                timings.update(second_prompt_tokens=own.prompt_tokens, second_completion_tokens=own.completion_tokens)
        if verdict.outcome == "quote" and self.second and not self._second_failed and "judge" in checks:
            # The larger model, loaded now, reads whether the quote answers (the first, if it is that model's file).
            verdict = judged(verdict, self.second if self.second.name != self.model_label else self.generator,
                             standalone, prompt, lang, timings)
        if verdict.outcome == "quote" and self.settings.translate_quotes:
            # Translated once it stands: a quote the second model's answer replaces is not worth seconds.
            t_quote = time.perf_counter()
            verdict = translated(verdict, lang, self._quote_translator(lang))
            timings["quote_s"] = round(time.perf_counter() - t_quote, 4)  # the quote's translation
        text, refused = verdict.text, verdict.refused
        if text != shown:
            # The evidence check replaced what was streamed: front ends show Answer.text as final.
            yield Replace(text)
        citations = () if refused else resolve(text, prompt.passages)
        passages = prompt.passages
        total = time.perf_counter() - t0
        timings.update(
            ttft_s=round(rewrite_s + retrieval_ms / 1000 + stats.ttft_s, 4),
            total_s=round(total, 4),
            prompt_tokens=stats.prompt_tokens,
            cached_prompt_tokens=stats.cached_tokens,
            restored_prompt_tokens=stats.restored_tokens,
            restored_from=stats.restored_from,
            completion_tokens=stats.completion_tokens,
            model_ttft_s=round(stats.ttft_s, 4),
            decode_tokens=stats.decode_tokens,
            decode_s=round(stats.decode_s, 4),
            prefill_tps=round(stats.prefill_tps, 2),
            decode_tps=round(stats.decode_tps, 2),
            llama=stats.llama,
        )
        yield Answer(question, text, refused, citations, tuple(passages), label, timings, lang, rewritten,
                     verdict.outcome, verdict.decided_by, verdict.failed)

    def prompt_for(self, question: str, hits: list[Hit], lang: str, corpus_lang: str, query: str) -> Prompt:
        """The model's prompt for a standalone question over its passages (also scripts/context_stats.py)."""
        # A choice question ("which happens later, A or B?") is about two things, and the sentences on
        # the one it words less like the documents score far below the best: the score floor would
        # cut exactly the fact the comparison needs, so it asks for the most sentences whatever their score.
        min_share = 0.0 if alternatives(question, lang) else self.settings.context_min_share
        return build_prompt(question, hits, lang, self.generator.count_tokens, self.generator.n_ctx,
                            self.settings.max_answer_tokens, relevance=self.relevance, corpus_lang=corpus_lang,
                            max_sentences=self.settings.context_sentences, min_share=min_share, search_text=query)

    def second_opinion(self, question: str, prompt: Prompt, lang: str, corpus_lang: str, translation: str | None,
                       temperature: float | None) -> Verdict | None:
        """The second model's answer to the same prompt when it passes the checks (SECOND_WAIVED aside),
        else None: the quote stands, as it does when the model cannot be loaded. Asked in place of
        quotes only: a quote is safe, not good; asked where the checks refused, it invented answers
        (docs/quality.md, "Tenth round")."""
        try:
            reply = "".join(self.second.stream(prompt.messages, self.settings.max_answer_tokens,
                                               self.settings.temperature if temperature is None else temperature))
        except Exception as e:  # noqa: BLE001 - the quote is still an answer
            if not self._second_failed:
                log.warning("the second model %s is not used: %s", self.second.name, e)
                self._second_failed = True
            return None
        checks = enabled_checks(self.settings.checks) - SECOND_WAIVED
        verdict = check(question, clean_markers(reply, 0).strip(), prompt, lang, corpus_lang, checks, translation,
                        None, self.retriever.section_titles)
        return verdict if verdict.outcome == "direct" else None

    def _answer_parts(self, question: str, asked: list[tuple[str, str, str | None]], lang: str, top_k: int,
                      temperature: float | None, t0: float, rewritten: str | None) -> Iterator[str | Answer]:
        """stream() for a question asked in parts (rag.answer.compound): each (part, standalone question,
        source file or None) answered in turn, the answers joined over one numbering of the
        passages. The first part streams as it is generated, so the first token comes as fast as
        for any question."""
        answers: list[Answer] = []
        parts = [part for part, _, _ in asked]
        shown = ""
        for i, (part, standalone, source) in enumerate(asked):
            for item in self._answer(part, standalone, lang, top_k, temperature, time.perf_counter(), 0.0,
                                     standalone if standalone != part else None, source):
                if isinstance(item, Answer):
                    answers.append(item)
                elif i == 0:
                    shown = str(item) if isinstance(item, Replace) else shown + item
                    yield item
        text, refused, passages = join_answers(parts, answers, lang)
        if text.startswith(shown.strip()):
            yield text[len(shown.strip()):]
        else:
            yield Replace(text)
        citations = () if refused else resolve(text, passages)
        # Time to first token is the first part's; the generator's counters are the last part's answering
        # call's (rag bench reads them from here); each part's own timings are kept beside them.
        # The second model's keys are the last part's alone: summed over all parts below (each part's stay in "parts").
        last = {k: v for k, v in answers[-1].timings.items() if not k.startswith("second_")}
        timings = {**last, "ttft_s": answers[0].timings["ttft_s"],
                   "retrieval_ms": round(sum(a.timings.get("retrieval_ms", 0.0) for a in answers), 2),
                   "total_s": round(time.perf_counter() - t0, 4), "parts": [a.timings for a in answers]}
        if any("second_s" in a.timings for a in answers):  # the second model's time and use over all parts
            timings["second_s"] = round(sum(a.timings.get("second_s", 0.0) for a in answers), 4)
            timings["second_used"] = any(a.timings.get("second_used") for a in answers)
        outcomes = {a.outcome for a in answers if not a.refused}
        outcome = "refusal" if refused else "direct" if outcomes == {"direct"} else "quote"
        label = " + ".join(dict.fromkeys(a.model for a in answers))  # both models' names when each wrote a part
        yield Answer(question, text, refused, citations, tuple(passages), label, timings, lang,
                     rewritten or " | ".join(a.standalone_question or a.question for a in answers),
                     outcome, next((a.decided_by for a in answers if a.decided_by), None),
                     tuple(dict.fromkeys(c for a in answers for c in a.checks_failed)))

    def search_query(self, question: str, lang: str) -> tuple[str, str | None]:
        """(text to search, the question's translation into the documents' language or None)."""
        corpus_lang = self.retriever.data.manifest.language
        if not self.settings.translate_queries or not corpus_lang or lang == corpus_lang:
            return question, None
        try:
            translation = translate_question(question, corpus_lang, self.generator)
        except Exception:  # noqa: BLE001 - the translation only widens the search; answering reports a model failure itself
            return question, None
        return search_query(question, translation), translation

    def _quote_translator(self, lang: str):
        """A quote's translation into lang, or None when unusable or failed: by the second model when
        there is one (the 0.5B's translations can say the opposite of the original; docs/quality.md,
        "Seventh round" and "Tenth round"), else by the answering model."""
        def translate(text: str) -> str | None:
            translator = self.second if self.second is not None and not self._second_failed else self.generator
            try:
                return translate_quote(text, lang, translator)
            except Exception:  # noqa: BLE001 - the original quote is still a right answer
                return None
        return translate

    def relevance(self, question: str, texts: list[str]) -> list[float]:
        """Dense similarity of the question to each text, with the index's own embedder.

        Vectors are memoised by text: the same passages come back question after question, and
        embedding their sentences again cost about 0.2 s of every time to first token."""
        q = self.retriever.query_vector(question)  # the vector the search just used
        sims = [float(v @ q) for v in self._sentences.vectors(texts)]
        if not getattr(self.retriever.embedder, "centred", False):
            return sims
        # An embedder whose unrelated texts score high (multilingual e5: about 0.8) says so (`centred`):
        # its similarity counts above what any passage of the index gets, as a share of what is left up
        # to 1, and never below 0 (the ranking's scores are not negative). The ranking adds it to a
        # share of the question's words, which a constant 0.8 had outweighed (docs/quality.md: dev +16/-7
        # answers with e5). MiniLM's raw similarity, which the ranking was tuned with, stays as it is:
        # the same shift for it measured dev -2, test +1.
        base = min(self.retriever.unrelated_similarity(q), 0.99)
        return [max(0.0, (s - base) / (1.0 - base)) for s in sims]

    def ask(self, question: str, **kwargs) -> Answer:
        answer = None
        for item in self.stream(question, **kwargs):
            if isinstance(item, Answer):
                answer = item
        return answer


def build_assistant(settings: Settings, model: str | None = None) -> Assistant:
    """The one place that builds the real models."""
    from rag.generation.base import DeferredGenerator
    from rag.generation.llama import LlamaGenerator
    from rag.generation.models import model_label, preset_installed, resolve_model
    from rag.ingest.milvus_store import VectorStore
    from rag.retrieval.remote import embedder_for_index

    spec = model or settings.model
    retriever = Retriever(settings.index_dir, embedder_for_index(settings), settings.fusion_candidates,
                          store=VectorStore.from_settings(settings))
    if settings.llm_url:  # a model server instead of the in-process model (docs/serving.md)
        from rag.generation.remote import remote_generator, remote_second

        remote = remote_generator(settings, spec)
        return Assistant(retriever, remote, settings, model_label=remote.label, second=remote_second(settings, remote))

    def llama(spec: str) -> LlamaGenerator:
        path = resolve_model(spec, settings.cache_dir, requantize=settings.requantize)
        return LlamaGenerator(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads,
                              n_batch=settings.n_batch, flash_attn=settings.flash_attn,
                              prompt_cache_dir=settings.cache_dir / "prompt-cache",
                              lookup_tokens=lookup_tokens(spec, settings.lookup_tokens), turns_dir=settings.cache_dir)

    generator = llama(spec)
    second, deferred = settings.second_model, None
    name = model_label(second, settings.requantize) if second else ""
    if second and name != generator.name and preset_installed(second):
        deferred = DeferredGenerator(name, lambda: llama(second))
    return Assistant(retriever, generator, settings, model_label=generator.name, second=deferred)


def lookup_tokens(spec: str, setting: int) -> int:
    """Prompt-lookup guesses for this model: the setting, or the preset's measured choice when -1."""
    from rag.generation.models import PRESETS

    if setting >= 0:
        return setting
    return PRESETS[spec].lookup_tokens if spec in PRESETS else 0


def _has_index(index_dir: Path) -> bool:
    from rag.ingest.store import live_generation

    try:
        return live_generation(index_dir) is not None
    except IndexCorruptError:
        return False


def load_model(generator) -> None:
    """Load the in-process model and put the system prompt's KV state in place (restored from the
    disk prompt cache, or computed and saved) now, instead of inside the first question's timing.
    Nothing to do for a remote model.

    Called on the thread that prints (the CLI's main thread) while another thread gets the
    retrieval side ready: llama-cpp-python swaps sys.stdout and sys.stderr for the whole process
    while it loads a model quietly, so the loading thread must be the one that prints nothing
    meanwhile and prints only after the load (docs/performance.md, "Cold start").

    A load that fails is not reported here: it fails again, with its message, where the engine
    needs the model, and a question that needs none (nothing retrieved) is still answered."""
    if not hasattr(type(generator), "llm"):  # on the class: reading the attribute loads the model
        return
    try:
        generator.llm
        generator.warm([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ""}])
    except Exception:  # noqa: BLE001 - raised again where the engine needs the model
        pass
