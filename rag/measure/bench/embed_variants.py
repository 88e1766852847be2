"""Embedders `rag bench --embed` measures beside the shipped one, not used to answer: the model with
static int8 quantization (activation scales fixed by calibration instead of measured per call), and
llama.cpp's own BERT path on a GGUF conversion of the bundled model (--embed-gguf)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np


def calibration_batches(texts: list[str], folder: Path, batch: int = 8, width: int | None = None) -> list[dict]:
    """The model's inputs for texts as the embedder makes them (windows of MAX_TOKENS word pieces,
    sorted by length, padded per batch), or all padded to width: the histogram calibrators need one
    shape."""
    from tokenizers import Tokenizer

    from rag.retrieval.embedders import MAX_TOKENS

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    windows = sorted((w.ids for e in tok.encode_batch(texts) for w in [e, *e.overflowing]), key=len)
    out = []
    for b in range(0, len(windows), batch):
        group = windows[b : b + batch]
        ids = np.zeros((len(group), width or len(group[-1])), np.int64)
        mask = np.zeros_like(ids)
        for r, w in enumerate(group):
            ids[r, : len(w)] = w
            mask[r, : len(w)] = 1
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return out


def static_int8(folder: Path, work: Path, calibration: list[str], fmt: str, matmul_outputs: bool) -> Path:
    """The unfused (eager) export quantized by onnxruntime.quantization.quantize_static: every MatMul
    (weights int8 per output channel, activations uint8 with scales from MinMax calibration on
    `calibration`), in QDQ or QOperator format; matmul_outputs=False leaves the MatMuls' outputs in
    float (QDQ only). The fused graph cannot be calibrated: its Attention and LayerNorm operators are
    outside ONNX's type inference, so the calibrator sees no range for their outputs."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from rag.retrieval.embedders import export_hidden

    eager = work / "eager.onnx"
    if not eager.exists():
        export_hidden(folder, eager, "eager")
    target = work / f"static-{fmt.lower()}{'' if matmul_outputs else '-float-out'}.onnx"
    batches = iter(calibration_batches(calibration, folder))

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": False}
    if not matmul_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's hints about pre-processing
    try:
        quantize_static(str(eager), str(target), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"], extra_options=extra)
    finally:
        root.setLevel(level)
    return target


class LlamaBert:
    """The model converted to GGUF (llama.cpp's convert_hf_to_gguf.py, see docs/performance.md) and run
    by llama.cpp with mean pooling, fed the same windows of word pieces as MiniLMEmbedder (its own
    tokenizer is not used), pooled over windows the same way. llama.cpp embeds the sequences of one
    call together, its attention spanning all their tokens with a mask: batch_size sequences a call.

    On llama-cpp-python's public ctypes bindings: rag.generation.llama_adapter.LlamaModel is for chat
    models (it needs a chat template and keeps one KV cache); this is an encoder, measured only here."""

    def __init__(self, gguf: Path, folder: Path, threads: int | None = None, max_tokens: int = 1024, max_seqs: int = 8):
        import llama_cpp as lib
        from tokenizers import Tokenizer

        from rag.retrieval.embedders import MAX_TOKENS

        self.lib, self.max_tokens, self.max_seqs = lib, max_tokens, max_seqs
        n = threads or os.cpu_count() or 1
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load log, as verbose=False does
        lib.llama_backend_init()
        self.model = lib.llama_model_load_from_file(str(gguf).encode(), lib.llama_model_default_params())
        if not self.model:
            raise ValueError(f"llama.cpp could not load {gguf}")
        params = lib.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = max_tokens
        params.n_seq_max = max_seqs
        params.n_threads = params.n_threads_batch = n
        params.embeddings = True
        params.pooling_type = lib.LLAMA_POOLING_TYPE_MEAN
        self.ctx = lib.llama_init_from_model(self.model, params)
        self.dim = lib.llama_model_n_embd(self.model)
        self.batch = lib.llama_batch_init(max_tokens, 0, max_seqs)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)

    def _decode(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled vectors of windows, one sequence each, in one llama_encode."""
        lib, b, n = self.lib, self.batch, 0
        for seq, ids in enumerate(windows):
            for pos, token in enumerate(ids):
                b.token[n], b.pos[n], b.n_seq_id[n], b.seq_id[n][0], b.logits[n] = token, pos, 1, seq, True
                n += 1
        b.n_tokens = n
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        if lib.llama_encode(self.ctx, b) != 0:  # an encoder: llama_decode would say so and call this
            raise RuntimeError("llama_encode failed")
        return np.array([np.ctypeslib.as_array(lib.llama_get_embeddings_seq(self.ctx, seq), shape=(self.dim,))
                         for seq in range(len(windows))], dtype=np.float64)

    def embed(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        windows, owner = [], []
        for i, e in enumerate(self.tokenizer.encode_batch(list(texts))):
            for w in [e, *e.overflowing]:
                windows.append(w.ids)
                owner.append(i)
        sums = np.zeros((len(texts), self.dim))
        counts = np.zeros(len(texts))
        group: list[int] = []

        def flush():
            for w, vec in zip(group, self._decode([windows[w] for w in group])):
                sums[owner[w]] += vec * len(windows[w])
                counts[owner[w]] += len(windows[w])

        used = 0
        for w in sorted(range(len(windows)), key=lambda w: len(windows[w])):
            if group and (used + len(windows[w]) > self.max_tokens or len(group) >= min(batch_size, self.max_seqs)):
                flush()
                group, used = [], 0
            group.append(w)
            used += len(windows[w])
        if group:
            flush()
        vecs = sums / np.maximum(counts, 1)[:, None]
        return (vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)).astype(np.float32)
