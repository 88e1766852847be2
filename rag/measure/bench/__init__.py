"""`rag bench`: time the engine behind `rag ask` stage by stage, and the pieces it is tuned with.

Each measurement is a mode, one module each, that prints numbers (never a timed test):
- answers (the default): questions through the engine of `rag ask`, cold and warm, with llama.cpp's
  own counters beside the wrapper's, peak RSS and load times -> OUT/bench.json, OUT/bench.md;
- sweep (`--sweep`): the model alone for thread counts, batch sizes and flash attention;
- retrieval (`--retrieval-scale N`): embedding, FAISS index types and BM25 over N chunks;
- chat_app (`--app`): the web chat's own peak RSS, measured on a running `rag serve`;
- cold (`--cold`): whole `rag ask --json` processes, wall, first token, CPU, peak RSS, start-up stages.
- scale_store (`--scale-index N --scale-store milvus`): that index with its vectors in Milvus, beside FAISS.
- big_folder (`--index-docs DIR` with `--parse-only`, or `--stop-after S`/`--max-chunks N` and
  `--resume-check`): bounded measurements of the streamed build on a folder too big to embed whole.
command.py reads the options and runs the mode they choose; common.py holds what they share.
`--markdown FILE` also writes the Markdown into FILE between markers, so docs/performance.md is
regenerated from the numbers rather than edited by hand.
"""

from rag.measure.bench.command import bench_command

__all__ = ["bench_command"]
