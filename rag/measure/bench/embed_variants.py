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
    call together, its attention spanning all their tokens with a mask: batch_size sequences a call."""

    def __init__(self, gguf: Path, folder: Path, threads: int | None = None, max_tokens: int = 1024, max_seqs: int = 8):
        import llama_cpp
        from tokenizers import Tokenizer

        from rag.retrieval.embedders import MAX_TOKENS

        self._lib = llama_cpp
        self.max_tokens, self.max_seqs = max_tokens, max_seqs
        n = threads or os.cpu_count() or 1
        self.llm = llama_cpp.Llama(model_path=str(gguf), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                                   n_ctx=max_tokens, n_batch=max_tokens, n_ubatch=max_tokens, n_seq_max=max_seqs,
                                   n_threads=n, n_threads_batch=n, verbose=False)
        self.dim = self.llm.n_embd()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def embed(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        windows, owner = [], []
        for i, e in enumerate(self.tokenizer.encode_batch(list(texts))):
            for w in [e, *e.overflowing]:
                windows.append(w.ids)
                owner.append(i)
        sums = np.zeros((len(texts), self.dim))
        counts = np.zeros(len(texts))
        batch, ctx = self.llm._batch, self.llm._ctx
        group: list[int] = []

        def flush():
            batch.reset()
            for seq, w in enumerate(group):
                batch.add_sequence(windows[w], seq, True)
            ctx.decode(batch)
            for seq, w in enumerate(group):
                vec = np.ctypeslib.as_array(self._lib.llama_get_embeddings_seq(ctx.ctx, seq), shape=(self.dim,))
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
