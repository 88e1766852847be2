"""`rag bench --index-docs DIR` on a folder too big to embed whole here: bounded, honest measurements
of the real streamed build (rag.ingest.indexing, rag.ingest.pipeline) -> OUT/bigindex.json and .md.

- `--parse-only`: every file of the folder (or an evenly spread `--sample-mb` of it) read, parsed and
  chunked by the build's own parser thread (parse_file, parsed_in_background), nothing embedded:
  files, MB, PDF pages with text and chunks per second, seconds by format, and the resident memory
  sampled every half second, to show it does not grow with the folder (run it on 50 and on 500 MB);
- `--stop-after S` / `--max-chunks N`: `rag index` of the folder into a fresh index, interrupted
  after S seconds or N chunks exactly as Ctrl-C interrupts it (KeyboardInterrupt in the main
  thread): files and pages finished, time per stage, chunks embedded, the embedding rate inside the
  build against the embedder alone on 256 of the same chunks right after, how long the main thread
  waited for the parser, resident memory over time;
- `--resume-check` (with a bound): the same build run again on the interrupted index, bounded the
  same way, showing the files the first run finished are hashed, not parsed or embedded again (their
  rows in INDEX/.wip unchanged) and how long passing them took.
"""

from __future__ import annotations

import _thread
import json
import random
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import click

from rag.measure.bench.common import cpu_times, current_rss_mb, fmt, machine_info, measured, others_share, peak_rss_mb

OPTIONS = [
    click.option("--parse-only", is_flag=True, help="With --index-docs: read, parse and chunk every file, embed nothing."),
    click.option("--sample-mb", type=click.FloatRange(0.001), help="With --parse-only: only an evenly spread part of the folder of about this size."),
    click.option("--stop-after", type=click.FloatRange(1), help="With --index-docs: interrupt the build after this many seconds, as Ctrl-C does."),
    click.option("--max-chunks", type=click.IntRange(1), help="With --index-docs: interrupt the build once this many chunks are embedded."),
    click.option("--resume-check", is_flag=True, help="With --stop-after/--max-chunks: run the build again on the interrupted index."),
]


class RssSampler:
    """This process's resident memory every `every` seconds, with what the run had done by then."""

    def __init__(self, done, every: float = 0.5):
        self.done, self.every, self.samples = done, every, []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((round(time.perf_counter() - self._t0, 1), current_rss_mb(), self.done()))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((round(time.perf_counter() - self._t0, 1), current_rss_mb(), self.done()))

    def summary(self) -> dict:
        """Peak sampled RSS, and RSS at a tenth, half, nine tenths and the end of the run."""
        s = [x for x in self.samples if x[1] is not None]
        if not s:
            return {}
        at = {f"{q}%": s[min(len(s) - 1, int(len(s) * q / 100))] for q in (10, 50, 90)} | {"end": s[-1]}
        return {"peak_sampled_mb": max(x[1] for x in s), "samples": len(s),
                "at": {k: {"s": v[0], "rss_mb": v[1], "done": v[2]} for k, v in at.items()},
                "series": s[:: max(1, len(s) // 200)]}  # (s, MB, done), at most about 200 points


def spread(listing: list, sample_mb: float | None) -> list:
    """Every k-th file, k chosen so that they add up to about sample_mb: the folder's mix, smaller."""
    if not sample_mb:
        return listing
    total = sum(max(p.size, 0) for p in listing) / 1e6
    k = max(1, round(total / sample_mb))
    return listing[::k]


def text_pages(chunks) -> int:
    pages = set()
    for c in chunks:
        if c.page is not None:
            pages.update(range(c.page, (c.page_end or c.page) + 1))
    return len(pages)


def parse_only(settings, docs: Path, sample_mb: float | None, say) -> dict:
    from rag.ingest.indexing import IndexStats, list_folder
    from rag.ingest.pipeline import parse_file, parsed_in_background

    t0 = time.perf_counter()
    listing = spread(list_folder(docs, IndexStats()), sample_mb)
    list_s = time.perf_counter() - t0
    max_bytes = int(settings.max_file_mb * 1_000_000)

    def work(p):
        return parse_file(p, max_bytes, lambda rel, sha: False, settings.chunk_tokens, settings.chunk_overlap)

    kinds: dict[str, dict] = defaultdict(lambda: {"files": 0, "mb": 0.0, "seconds": 0.0, "chunks": 0, "pages": 0})
    stages = {"read": 0.0, "parse": 0.0, "chunk": 0.0}
    n = {"files": 0, "skipped": 0, "chunks": 0, "pages": 0, "bytes": 0}
    say(f"reading, parsing and chunking {len(listing)} files of {docs}")
    before = cpu_times()
    t0 = time.perf_counter()
    with RssSampler(lambda: n["files"]) as rss:
        for item in parsed_in_background(listing, work):
            n["files"] += 1
            n["bytes"] += max(item.planned.size, 0)
            for k, v in item.seconds.items():
                stages[k] += v
            if item.kind == "skip":
                n["skipped"] += 1
                continue
            kind = kinds[item.planned.path.suffix.lower()]
            pages = text_pages(item.chunks)
            kind["files"] += 1
            kind["mb"] += item.planned.size / 1e6
            kind["seconds"] += sum(item.seconds.values())
            kind["chunks"] += len(item.chunks)
            kind["pages"] += pages
            n["chunks"] += len(item.chunks)
            n["pages"] += pages
    wall = time.perf_counter() - t0
    for k in kinds.values():
        k["mb"], k["seconds"] = round(k["mb"], 1), round(k["seconds"], 1)
    return {"docs": str(docs), "sample_mb": sample_mb, "files": n["files"], "skipped": n["skipped"],
            "mb": round(n["bytes"] / 1e6, 1), "chunks": n["chunks"], "pdf_pages_with_text": n["pages"],
            "wall_s": round(wall, 1), "list_s": round(list_s, 2), "stages_s": {k: round(v, 1) for k, v in stages.items()},
            "files_per_s": round(n["files"] / wall, 1), "mb_per_s": round(n["bytes"] / 1e6 / wall, 2),
            "pdf_pages_per_s": round(kinds[".pdf"]["pages"] / kinds[".pdf"]["seconds"], 1) if kinds[".pdf"]["seconds"] else None,
            "chunks_per_s": round(n["chunks"] / wall, 1), "by_format": dict(sorted(kinds.items())),
            "rss": rss.summary(), "peak_rss_mb": peak_rss_mb(), "others_cpu": others_share(before, cpu_times())}


def interrupted_build(settings, embedder, stop_after: float | None, max_chunks: int | None) -> dict:
    """build_index until it finishes or is interrupted like Ctrl-C: after stop_after seconds (a
    KeyboardInterrupt raised in the main thread wherever it is) or once max_chunks are embedded."""
    from rag.ingest.indexing import IndexStats, build_index

    stats = IndexStats()
    marks = {"t0": time.perf_counter()}

    def progress(done: int, total: int) -> None:
        marks.setdefault(done, time.perf_counter() - marks["t0"])
        if max_chunks and stats.embedded_chunks >= max_chunks:
            raise KeyboardInterrupt

    timer = threading.Timer(stop_after, _thread.interrupt_main) if stop_after else None
    before = cpu_times()
    finished = False
    with RssSampler(lambda: stats.looked_at) as rss:
        try:
            if timer:
                timer.start()
            try:
                build_index(settings, embedder, progress=progress, stats=stats)
                finished = True
            finally:
                if timer:
                    timer.cancel()
        except KeyboardInterrupt:
            pass
    wall = time.perf_counter() - marks["t0"]
    st = stats.stages
    # An interrupted embedding call counts in no stage: up to the last commit the main thread listed,
    # embedded, wrote or waited for the parser; after it, the batch the interrupt cut short.
    last = max((v for k, v in marks.items() if k != "t0"), default=wall)
    return {"finished": finished, "wall_s": round(wall, 1), "files_committed": stats.looked_at, "files_planned": stats.planned,
            "chunks_embedded": stats.embedded_chunks, "stages_s": {k: round(v, 1) for k, v in st.items()},
            "main_thread_waited_s": round(max(last - st["list"] - st["embed"] - st["write"], 0.0), 1),
            "after_last_commit_s": round(wall - last, 1),
            "embed_chunks_per_s_in_build": round(stats.embedded_chunks / st["embed"], 2) if st["embed"] else None,
            "files_indexed": stats.files, "chunks_indexed": stats.chunks, "warnings": len(stats.warnings), "skipped": len(stats.skipped), "rss": rss.summary(),
            "others_cpu": others_share(before, cpu_times()), "marks": {k: v for k, v in marks.items() if k != "t0"}}


def workspace_records(index_dir: Path) -> dict[str, dict]:
    path = index_dir / ".wip" / "files.jsonl"
    if not path.is_file():
        return {}
    return {r["rel"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def finished_pages(index_dir: Path) -> tuple[int, float]:
    """PDF pages with text among the files the workspace holds, and their MB."""
    from rag.schema import Chunk

    pages = 0
    with open(index_dir / ".wip" / "chunks.jsonl", encoding="utf-8") as f:
        by_file: dict[str, list] = defaultdict(list)
        for line in f:
            c = Chunk(**json.loads(line))
            by_file[c.source].append(c)
    for chunks in by_file.values():
        pages += text_pages(chunks)
    return pages, len(by_file)


def committed(run: dict, records: dict, index_dir: Path) -> None:
    """What an interrupted run has finished, as INDEX/.wip says (the progress count stops at the
    file being reported when the interrupt lands; the workspace is the truth)."""
    run["files_committed"] = len(records)
    run["mb_committed"] = round(sum(r["size"] for r in records.values()) / 1e6, 1)
    run["pdf_pages_committed"], _ = finished_pages(index_dir)


def embedder_alone(embedder, index_dir: Path, n: int = 256) -> float | None:
    """Chunks/s of the embedder alone on n chunks the build embedded (seeded draw)."""
    from rag.schema import Chunk

    with open(index_dir / ".wip" / "chunks.jsonl", encoding="utf-8") as f:
        texts = [Chunk(**json.loads(line)).text for line in f]
    if not texts:
        return None
    texts = random.Random(0).sample(texts, min(n, len(texts)))
    t0 = time.perf_counter()
    embedder.embed(texts)
    return round(len(texts) / (time.perf_counter() - t0), 2)


def bounded(settings, docs: Path, options: dict, say) -> dict:
    from rag.retrieval.remote import embedder_for

    tmp = Path(tempfile.mkdtemp(prefix="rag-bigindex-bench-"))
    try:
        s = settings.replace(docs_dir=docs, index_dir=tmp / "index")
        embedder = embedder_for(s)
        embedder.embed(["a first call loads the model"])
        stop_after, max_chunks = options.get("stop_after"), options.get("max_chunks")
        say(f"indexing {docs}, interrupted after {stop_after or '-'} s / {max_chunks or '-'} chunks")
        first = interrupted_build(s, embedder, stop_after, max_chunks)
        done = workspace_records(s.index_dir)
        if done:
            committed(first, done, s.index_dir)
            say("the embedder alone on 256 of the chunks the build embedded")
            before = cpu_times()
            first["embed_chunks_per_s_alone"] = embedder_alone(embedder, s.index_dir)
            first["others_cpu_alone"] = others_share(before, cpu_times())
        report = {"docs": str(docs), "stop_after_s": stop_after, "max_chunks": max_chunks, "first": first}
        if options.get("resume_check") and not first["finished"]:
            say(f"resuming: {len(done)} files finished by the interrupted run")
            again = interrupted_build(s, embedder, stop_after, max_chunks)
            done_chunks = sum(rec["chunks"] for rec in done.values())
            if again["finished"]:  # published, .wip removed: the new files are the index's other chunks
                new_files, new_chunks, kept = again["files_indexed"] - len(done), again["chunks_indexed"] - done_chunks, None
            else:
                after = workspace_records(s.index_dir)
                new = [rec for rel, rec in after.items() if rel not in done]
                new_files, new_chunks = len(new), sum(rec["chunks"] for rec in new)
                kept = sum(after.get(rel, {}).get("row") == rec["row"] for rel, rec in done.items())
                committed(again, after, s.index_dir)
                say("the embedder alone again, after the resumed run")
                before = cpu_times()
                again["embed_chunks_per_s_alone"] = embedder_alone(embedder, s.index_dir)
                again["others_cpu_alone"] = others_share(before, cpu_times())
            # The files the first run finished come first in the listing: when the resumed run passed them.
            passed = again["marks"].get(len(done)) if done else 0.0
            again.pop("marks")
            again.update({"files_from_first_run": len(done), "their_chunks": done_chunks, "their_rows_unchanged": kept,
                          "chunks_embedded_again": again["chunks_embedded"] - new_chunks,
                          "new_files_committed": new_files, "passed_finished_files_s": round(passed, 2) if passed else passed})
            report["resumed"] = again
        first.pop("marks")
        report["peak_rss_mb"] = peak_rss_mb()
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_markdown(r: dict) -> list[str]:
    rss = r["rss"].get("at", {})
    lines = ["| folder | files | MB | PDF pages with text | chunks | wall (s) | files/s | MB/s | PDF pages/s | chunks/s | "
             "read / parse / chunk (s) | RSS at 10% / 50% / 90% / end (MB) | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
             f"| {r['docs']}{' (' + fmt(r['sample_mb'], 0) + ' MB spread)' if r['sample_mb'] else ''} | {r['files']} | {r['mb']} | "
             f"{r['pdf_pages_with_text']} | {r['chunks']} | {r['wall_s']} | {r['files_per_s']} | {r['mb_per_s']} | "
             f"{fmt(r['pdf_pages_per_s'], 1)} | {r['chunks_per_s']} | "
             f"{r['stages_s']['read']} / {r['stages_s']['parse']} / {r['stages_s']['chunk']} | "
             f"{' / '.join(str(rss[k]['rss_mb']) for k in ('10%', '50%', '90%', 'end') if k in rss)} | {r['peak_rss_mb']} |", "",
             "| format | files | MB | seconds (read+parse+chunk) | chunks | PDF pages with text |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {k} | {v['files']} | {v['mb']} | {v['seconds']} | {v['chunks']} | {v['pages'] or ''} |" for k, v in r["by_format"].items()]
    return lines + ["", f"Other processes used {fmt(r['others_cpu'])} of the CPU meanwhile."]


def build_markdown(r: dict) -> list[str]:
    lines = ["| run | finished | wall (s) | files done / planned | MB done | PDF pages done | chunks embedded | list | read | parse | chunk | "
             "embed | write | main thread waiting or writing .wip (s) | cut short by the interrupt (s) | chunks/s in the build / alone | RSS at 10% / 50% / 90% / end (MB) | CPU used by others |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for name in ("first", "resumed"):
        x = r.get(name)
        if not x:
            continue
        st, rss = x["stages_s"], x["rss"].get("at", {})
        ratio = (x["embed_chunks_per_s_in_build"] / x["embed_chunks_per_s_alone"]
                 if x.get("embed_chunks_per_s_alone") and x["embed_chunks_per_s_in_build"] else None)
        lines.append(f"| {name} | {fmt(x['finished'])} | {x['wall_s']} | {x['files_committed']} / {x['files_planned']} | "
                     f"{x.get('mb_committed', '–')} | {x.get('pdf_pages_committed', '–')} | {x['chunks_embedded']} | {st['list']} | "
                     f"{st['read']} | {st['parse']} | {st['chunk']} | {st['embed']} | {st['write']} | {x['main_thread_waited_s']} | {x['after_last_commit_s']} | "
                     f"{fmt(x['embed_chunks_per_s_in_build'], 1)} / {fmt(x.get('embed_chunks_per_s_alone'), 1)} ({fmt(ratio)}) | "
                     f"{' / '.join(str(rss[k]['rss_mb']) for k in ('10%', '50%', '90%', 'end') if k in rss)} | {fmt(x['others_cpu'])} |")
    if r.get("resumed"):
        x = r["resumed"]
        kept = "" if x["their_rows_unchanged"] is None else f", {x['their_rows_unchanged']} of them kept their rows in INDEX/.wip"
        lines += ["", f"Resumed: the interrupted run had finished {x['files_from_first_run']} files ({x['their_chunks']} chunks); "
                      f"the resumed run embedded {x['chunks_embedded_again']} of those chunks again{kept}, passed those files in "
                      f"{x['passed_finished_files_s']} s (read and hashed, not parsed) and then finished {x['new_files_committed']} new files."]
    return lines


def selected(options: dict) -> bool:
    return bool(options.get("index_docs")) and any(options.get(k) for k in ("parse_only", "stop_after", "max_chunks"))


def run(job) -> tuple[str, dict, str]:
    from rag.errors import InputError
    from rag.measure.bench.common import report_header
    from rag.options import settings_from

    o = job.options
    if o.get("parse_only") and (o.get("stop_after") or o.get("max_chunks")):
        raise InputError("--parse-only embeds nothing, so --stop-after/--max-chunks do not apply; pass one or the other")
    if o.get("resume_check") and not (o.get("stop_after") or o.get("max_chunks")):
        raise InputError("--resume-check needs a bound to interrupt the first build at; add --stop-after S or --max-chunks N")
    settings = settings_from(job.ctx)
    report = report_header(0)
    if o.get("parse_only"):
        report["parse"] = parse_only(settings, o["index_docs"], o.get("sample_mb"), job.say)
    else:
        report["build"] = bounded(settings, o["index_docs"], o, job.say)
    report["load_average_end"] = machine_info()["load_average"]
    head = [measured(report), ""]
    body = parse_markdown(report["parse"]) if "parse" in report else build_markdown(report["build"])
    return "bigindex", report, "\n".join(head + body) + "\n"
