"""Settings: the one place defaults live, overridable with RAG_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from rag.errors import ConfigError


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag"


@dataclass(frozen=True)
class Settings:
    docs_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    cache_dir: Path = field(default_factory=_default_cache_dir)
    # A preset name (see rag.generation.models.PRESETS) or a path to a .gguf file.
    model: str = "default"
    # The model asked again, on the same prompt, when the first one's answer fails the answer checks
    # and a quote would take its place (rag.answer.assistant.Assistant.second_opinion): a preset or a
    # .gguf path, loaded on first need; empty, the same model or a preset not installed asks no one.
    # On the dev splits the bundled 1.5B's checked answer replaced 44 of 63 quotes, 3 answers made
    # right and none wrong, at a median 2.7 s more for those questions only (docs/quality.md, "Tenth
    # round"). With llm_url, a model of that server (its id) or of the server at second_llm_url
    # (a preset name there takes that server's first model); docs/serving.md.
    second_model: str = "quality"
    # Run a preset in its faster runtime quantization (rag.generation.models says why); False runs the shipped file.
    requantize: bool = True
    # The bundled MiniLM with int8 weights: 1.5x the float graph's indexing speed, retrieval as good
    # on the dev splits (docs/performance.md); "all-MiniLM-L6-v2" is the float graph.
    embedder: str = "all-MiniLM-L6-v2-int8"
    # Chunks are measured in cl100k tokens; small chunks keep the prompt (and so prefill time) short.
    chunk_tokens: int = 160
    chunk_overlap: int = 30
    top_k: int = 4
    # Sentences of those passages shown to the model (rag.generation.prompts says why sentences, not passages).
    # Measured with `rag eval`: 4 instead of 6 saves about 0.4 s of prefill but loses answers.
    context_sentences: int = 6
    # ...and only those scoring at least this share of the best one: a sentence far below it is
    # prefill time spent on noise. Measured with `rag eval` (README): 0.7 cut time to first token
    # by 0.45 s with the same accuracy; 0.5 hardly ever cuts.
    context_min_share: float = 0.7
    # Candidates taken from each retriever before their scores are fused (rag.retrieval.search).
    fusion_candidates: int = 40
    n_ctx: int = 4096
    # Answers are one or two sentences; a cap keeps a model that copies a long passage from decoding for seconds.
    max_answer_tokens: int = 120
    temperature: float = 0.0
    # Greedy decoding checks up to this many tokens guessed from the prompt in one batch
    # (rag.generation.lookup): the same answer in fewer evaluations. 0 decodes a token at a time;
    # -1 takes the preset's measured choice (rag.generation.models), 0 for other model files.
    lookup_tokens: int = -1
    # A question in another language than the documents is also searched translated into theirs by
    # the local model (rag.answer.translate); measured with `rag eval --retrieval-only` (docs/quality.md).
    translate_queries: bool = True
    # A quote that stands in place of a failed answer, in another language than the question's, is
    # shown translated into the question's, cited to the original passage (rag.answer.translate), by
    # the second model when there is one, else by the answering model. With the 1.5B translating, language
    # match on the test splits rose to 0.95-1.00 with no answer lost (docs/quality.md, "Tenth round"); the
    # 0.5B alone translates worse ("Seventh round").
    translate_quotes: bool = True
    # The answer checks switched on (rag.answer.check.CHECKS): "all", "none", a list ("grounded,kind")
    # or all but some ("all,-kind"). Off is for measuring what a check does (`rag eval --checks`).
    checks: str = "all"
    # The second model also reads each answer of the first one the checks accept, and an answer it reads
    # as not said by the passages it cites is turned down (rag.answer.judge.answer_judged). On the held-out
    # test splits +5 answers right, 1 wrong, but about 2.6 s after every such answer and the 1.5B loaded by
    # every cold `rag ask` (3.6 -> 11.4 s, 0.75 -> 2 GB): off by default, so the speed and memory targets
    # hold (docs/quality.md, "Seventeenth round"). RAG_JUDGE_ANSWERS=1 turns it on.
    judge_answers: bool = False
    # 0 means every core: llama-cpp-python's own default uses half of them, which halves throughput.
    threads: int = 0
    n_batch: int = 512
    flash_attn: bool = True
    max_file_mb: float = 20.0
    host: str = "127.0.0.1"
    port: int = 7860
    # Beyond one laptop (docs/serving.md): an OpenAI-compatible server (llama.cpp, vLLM, Ollama) to
    # generate with instead of the in-process model, and one to embed with on /v1/embeddings. Empty:
    # everything runs in this process, as before. Their bearer keys, when the servers want one.
    llm_url: str = ""
    llm_api_key: str = ""
    second_llm_url: str = ""  # the second model's server, with llm_url's key; empty: llm_url's
    embed_url: str = ""
    embed_api_key: str = ""
    # The remote embedding model's id; empty takes the first one the server lists.
    embed_model: str = ""
    # Seconds a remote server may stay silent (connecting, or between two streamed tokens) before
    # the call fails with an error naming it, instead of hanging.
    remote_timeout_s: float = 60.0
    # Where `rag index` puts the vectors and searches them (rag.ingest.milvus_store, docs/serving.md):
    # "faiss", files in the index folder, or "milvus" for an index shared by several replicas or
    # larger than one machine, at milvus_uri: empty is milvus-lite in INDEX/milvus.db, an http://
    # URI a Milvus server or cluster (with its token), the same client code. milvus_index: the
    # collection's index type (HNSW, IVF_SQ8, IVF_FLAT or FLAT).
    vector_store: str = "faiss"
    milvus_uri: str = ""
    milvus_token: str = ""
    milvus_index: str = "HNSW"
    # Questions answered at once by `rag serve` with a remote model (the server batches them); the
    # in-process model answers one at a time.
    remote_parallel: int = 4
    # `rag serve`'s API: the bearer token clients must send (required to listen beyond 127.0.0.1),
    # and bounds on what one request may carry.
    api_key: str = ""
    max_request_kb: int = 64
    max_question_chars: int = 2000

    @property
    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        """Defaults, then RAG_<FIELD> environment variables, then explicit overrides."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, type_name: str, raw: str):
    try:
        if "Path" in type_name:
            return Path(raw).expanduser()
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        return raw
    except ValueError:
        raise ConfigError(f"RAG_{name.upper()}={raw!r} is not a valid {type_name}; fix or unset it") from None
