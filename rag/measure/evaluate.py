"""`rag eval`: run a question set through the same Assistant as `rag ask` and score retrieval,
answers, citations, refusals and speed; write results.jsonl, summary.json and report.html."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import click

from rag import __version__
from rag.answer.assistant import Assistant, build_assistant, clean_question
from rag.config import Settings
from rag.errors import InputError, RagError
from rag.measure.metrics import (
    METRIC_KEYS,
    Question,
    by_language,
    score,
    strip_markers,
    summarize,
)
from rag.measure.questions import (
    QuestionSet,
    load_questions,
    select_split,
    unknown_sources,
)
from rag.measure.replay import GenerationCache, RawRecorder
from rag.measure.report import render_report
from rag.options import (
    index_option,
    llm_url_option,
    model_option,
    settings_from,
    top_k_option,
)
from rag.schema import Answer
from rag.text.language import detect_language

# Answers shorter than this many words are not language-checked: a name or a date has no language.
MIN_WORDS_FOR_LANGUAGE = 4


# --- running ---------------------------------------------------------------------------------------

def answer_language(text: str) -> str | None:
    from rag.text.language import detect_language

    plain = strip_markers(text)
    if len(plain.split()) < MIN_WORDS_FOR_LANGUAGE:
        return None
    return detect_language(plain, default="?")


def expected_language(q: Question) -> str:
    from rag.text.language import detect_language

    return q.lang or detect_language(q.question)


def retrieve_only(assistant: Assistant, question: str, top_k: int) -> Answer:
    """The engine's own retriever, without generation; shaped like `rag ask --json` with no answer."""
    t0 = time.perf_counter()
    q = clean_question(question)
    query, _ = assistant.search_query(q, detect_language(q))
    hits = assistant.retriever.search(query, top_k)
    ms = round((time.perf_counter() - t0) * 1000, 2)
    return Answer(q, "", False, (), tuple(hits), assistant.model_label, {"retrieval_ms": ms}, "")


def warm_up(assistant: Assistant, retrieval_only: bool) -> float:
    """Load the index and models before the clock starts, so the first question's latency is a
    question's latency and not a model load."""
    t0 = time.perf_counter()
    assistant.retriever.data  # a missing or incompatible index fails here, once, with its fix
    assistant.retriever.embedder.embed(["warm-up"])
    from rag.text.language import detect_language

    detect_language("warm-up question")  # the engine counts language detection as retrieval time
    if not retrieval_only:
        assistant.generator.count_tokens("warm-up")  # LlamaGenerator loads its weights on first use
        if assistant.second is not None:  # the model asked in place of quotes: its load is no answer's time either
            try:
                assistant.second.count_tokens("warm-up")
            except Exception:  # noqa: BLE001 - the questions report it, once
                pass
        from rag.answer import question_kind

        question_kind.warm(assistant.settings.cache_dir, assistant.settings.n_threads)  # the answer checks' model of what a question asks for
    return round(time.perf_counter() - t0, 3)


def run_questions(assistant: Assistant, questions: list[Question], retrieval_only: bool = False,
                  top_k: int | None = None, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """One record per question: the question, the `rag ask --json` object, the raw model text and
    the metrics. A question that fails is recorded with its error and the run goes on."""
    top_k = assistant.settings.top_k if top_k is None else top_k
    records = []
    inner = assistant.generator
    cache = os.environ.get("RAG_EVAL_CACHE")
    recorder = RawRecorder(GenerationCache(inner, Path(cache), assistant.model_label) if cache and not retrieval_only else inner)
    assistant.generator = recorder
    second = assistant.second
    if cache and second is not None:  # its replies are replayed too, under its own name
        assistant.second = GenerationCache(second, Path(cache), second.name)
    try:
        for q in questions:
            recorder.raw = None
            answer, error = None, None
            try:
                ans = retrieve_only(assistant, q.question, top_k) if retrieval_only else assistant.ask(q.question, top_k=top_k)
                answer = ans.to_dict()
            except Exception as e:  # noqa: BLE001 - one failing question must not lose the whole run
                error = str(e) if isinstance(e, RagError) else f"{type(e).__name__}: {e}"
            lang_kw = {}
            if answer is not None and not retrieval_only:
                lang_kw = {"answer_lang": answer_language(answer["answer"]), "expected_lang": expected_language(q)}
            metrics = score(q, answer, recorder.raw, retrieval_only=retrieval_only, error=error, **lang_kw)
            record = {"id": q.id, "question": q.to_dict(), "answer": answer, "raw_answer": recorder.raw, "metrics": metrics}
            records.append(record)
            if progress:
                progress(record)
    finally:
        assistant.generator, assistant.second = inner, second
    return records


# --- comparing two runs ----------------------------------------------------------------------------

def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError as e:
        raise InputError(f"{run_dir} is not an eval run ({Path(e.filename).name} missing); pass the --out folder of an earlier `rag eval`") from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the eval run in {run_dir} ({e}); pass the --out folder of an earlier `rag eval`") from None
    return summary, records


def compare_runs(summary: dict, records: list[dict], other_dir: Path, other: tuple[dict, list[dict]]) -> dict:
    """Which questions flipped and how each metric moved, from the other run to this one."""
    o_summary, o_records = other
    before = {r["id"]: r["metrics"] for r in o_records}
    after = {r["id"]: r["metrics"] for r in records}
    both = [i for i in after if i in before]
    deltas = {}
    for k in ("pass_rate", *METRIC_KEYS, "retrieval_ms_p50"):
        a, b = o_summary.get(k), summary.get(k)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            deltas[k] = {"before": a, "after": b, "delta": round(b - a, 4)}
    warnings = []
    if bool(o_summary.get("retrieval_only")) != bool(summary.get("retrieval_only")):
        warnings.append("one run is --retrieval-only and the other is not: only retrieval metrics compare")
    o_settings, settings = o_summary.get("settings", {}), summary.get("settings", {})
    changed = sorted(k for k in set(o_settings) | set(settings) if o_settings.get(k) != settings.get(k))
    if changed:
        warnings.append("settings differ: " + ", ".join(f"{k} {o_settings.get(k)!r} -> {settings.get(k)!r}" for k in changed))
    if o_summary.get("model", {}).get("sha256") != summary.get("model", {}).get("sha256"):
        warnings.append("the model files differ (SHA-256)")
    if o_summary.get("questions_sha256") != summary.get("questions_sha256"):
        warnings.append("the question files differ")
    return {
        "other": str(other_dir),
        "warnings": warnings,
        "deltas": deltas,
        "now_failing": [i for i in both if before[i].get("passed") and not after[i].get("passed")],
        "now_passing": [i for i in both if not before[i].get("passed") and after[i].get("passed")],
        "hit_lost": [i for i in both if before[i].get("hit") and after[i].get("hit") is False],
        "hit_gained": [i for i in both if before[i].get("hit") is False and after[i].get("hit")],
        "added": [i for i in after if i not in before],
        "removed": [i for i in before if i not in after],
    }


def format_comparison(c: dict) -> str:
    lines = [f"compared with {c['other']}:"]
    lines += [f"  warning: {w}" for w in c["warnings"]]
    for k, d in c["deltas"].items():
        if d["delta"]:
            lines.append(f"  {k:28} {d['before']:.3f} -> {d['after']:.3f} ({d['delta']:+.3f})")
    for label, key in (("now failing", "now_failing"), ("now passing", "now_passing"), ("retrieval lost", "hit_lost"),
                       ("retrieval gained", "hit_gained"), ("only in this run", "added"), ("only in the other", "removed")):
        if c[key]:
            lines.append(f"  {label}: {', '.join(c[key])}")
    if len(lines) == 1 + len(c["warnings"]):
        lines.append("  no metric changed and no question flipped")
    return "\n".join(lines)


# --- a whole run -----------------------------------------------------------------------------------

def _jsonable_settings(settings: Settings) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(settings).items()}


def model_info(assistant: Assistant) -> dict:
    from rag.generation.models import model_sha256

    path = getattr(assistant.generator, "model_path", None)
    info = {"label": assistant.model_label, "path": str(path) if path else None, "sha256": None}
    if path and Path(path).is_file():
        info["sha256"] = model_sha256(Path(path))
    return info


def index_info(assistant: Assistant) -> dict:
    m = assistant.retriever.data.manifest
    return {"embedder": m.embedder, "n_chunks": m.n_chunks, "n_files": len(m.files), "language": m.language,
            "chunk_tokens": m.chunk_tokens, "chunk_overlap": m.chunk_overlap, "built_at": m.built_at,
            "files_sha256": hashlib.sha256(json.dumps({k: v["sha256"] for k, v in sorted(m.files.items())}).encode()).hexdigest()}


def evaluate(assistant: Assistant, qset: QuestionSet, out_dir: Path, retrieval_only: bool = False,
             compare_dir: Path | None = None, progress: Callable[[dict], None] | None = None,
             warn: Callable[[str], None] = lambda _msg: None) -> tuple[dict, list[dict], dict | None]:
    """Run, score, and write OUT/results.jsonl, summary.json, report.html (and compare.json)."""
    other = load_run(compare_dir) if compare_dir else None  # fail before the long part, not after
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    load_s = warm_up(assistant, retrieval_only)
    for w in unknown_sources(qset.questions, list(assistant.retriever.data.manifest.files)):
        warn(w)
    t0 = time.perf_counter()
    records = run_questions(assistant, qset.questions, retrieval_only, progress=progress)
    summary = summarize(records, retrieval_only)
    summary.update(
        retrieval_only=retrieval_only,
        by_lang=by_language(records, retrieval_only),
        started_at=started,
        duration_s=round(time.perf_counter() - t0, 2),
        load_s=load_s,
        questions_file=str(qset.path),
        questions_sha256=qset.sha256,
        settings=_jsonable_settings(assistant.settings),
        model=model_info(assistant),
        index=index_info(assistant),
        rag_version=__version__,
    )
    comparison = compare_runs(summary, records, compare_dir, other) if other else None
    write_run(Path(out_dir), summary, records, comparison)
    return summary, records, comparison


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_run(out_dir: Path, summary: dict, records: list[dict], comparison: dict | None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    _write_atomic(out_dir / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    if comparison:
        _write_atomic(out_dir / "compare.json", json.dumps(comparison, ensure_ascii=False, indent=2) + "\n")
    _write_atomic(out_dir / "report.html", render_report(summary, records, comparison))


def format_summary(summary: dict) -> str:
    lines = [f"{'questions':28} {summary['n']} ({summary['n_answerable']} answerable, {summary['n_unanswerable']} unanswerable"
             + (f", {summary['n_errors']} errors)" if summary["n_errors"] else ")")]
    for k in ("pass_rate", *METRIC_KEYS, "retrieval_ms_p50"):
        v = summary.get(k)
        if v is not None:
            lines.append(f"{k:28} {v:.3f}" if isinstance(v, float) else f"{k:28} {v}")
    if summary.get("decided_by"):
        lines.append(f"{'decided_by':28} " + ", ".join(f"{k} {v}" for k, v in summary["decided_by"].items()))
    for name, a in (summary.get("ablation") or {}).items():
        lines.append(f"{'check ' + name:28} decided {a['decided']}: made {a['made_right']} right, {a['made_wrong']} wrong")
    return "\n".join(lines)


def default_out_dir() -> Path:
    base = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


@click.command("eval")
@click.argument("questions_file", metavar="QUESTIONS.jsonl", type=click.Path(path_type=Path))
@index_option
@model_option
@top_k_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Folder for the results (default: runs/<timestamp>/).")
@click.option("--retrieval-only", is_flag=True, help="Score retrieval only, without generating answers (fast).")
@click.option("--compare", "compare_dir", type=click.Path(path_type=Path), help="An earlier run's folder to compare with.")
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="all", show_default=True,
              help="Questions of one split: tune on dev, report test.")
@click.option("--checks", help="Answer checks switched on: all, none, a list (grounded,kind) or all,-kind (default: RAG_CHECKS or all).")
@llm_url_option
@click.pass_context
def eval_command(ctx, questions_file, index_dir, model, top_k, out_dir, retrieval_only, compare_dir, split, checks, llm_url):
    """Score answers, retrieval, citations and refusals against a JSONL question set."""
    from rag.answer.check import enabled_checks

    qset = select_split(load_questions(questions_file), split)  # bad input fails before any model loads
    if checks is not None:
        enabled_checks(checks)  # an unknown name fails now, not after the model loaded
    if top_k is not None and top_k < 1:
        raise InputError("--top-k must be 1 or more for an evaluation")
    if compare_dir is not None:
        load_run(compare_dir)
    for w in qset.warnings:
        click.echo(f"warning: {w}", err=True)
    settings = settings_from(ctx, index_dir=index_dir, model=model, top_k=top_k, checks=checks, llm_url=llm_url)
    assistant = build_assistant(settings)
    out_dir = out_dir or default_out_dir()

    from tqdm import tqdm

    bar = tqdm(total=len(qset.questions), unit="q", desc="eval", disable=not sys.stderr.isatty(), file=sys.stderr)
    failed = 0

    def progress(record: dict) -> None:
        nonlocal failed
        failed += not record["metrics"]["passed"]
        if record["metrics"].get("error"):
            bar.write(f"warning: {record['id']}: {record['metrics']['error']}", file=sys.stderr)
        bar.set_postfix(failed=failed, refresh=False)
        bar.update(1)

    try:
        summary, _records, comparison = evaluate(assistant, qset, out_dir, retrieval_only, compare_dir, progress,
                                                 warn=lambda w: click.echo(f"warning: {w}", err=True))
    finally:
        bar.close()
    click.echo(format_summary(summary))
    if comparison:
        click.echo(format_comparison(comparison))
    click.echo(f"wrote {out_dir / 'results.jsonl'}, {out_dir / 'summary.json'} and {out_dir / 'report.html'}")
