"""`rag bench` runs on a tiny input and writes well-formed output. The engine is the conftest's fake
embedder and generator (the numbers are meaningless there; the shape, the stages and the files are
what is checked). Benchmarks themselves are commands, never timed tests."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import make_assistant

from rag.apps.cli import main
from rag.errors import InputError
from rag.measure.bench import answers, common, sweep


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "questions.jsonl"
    rows = [{"id": "a", "question": "Qui produit des drones avec la France ?"},
            {"id": "b", "question": "Qui est le ministre de la défense ?"},
            {"id": "c", "question": "Combien de contrats l'Ukraine a-t-elle signés ?"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fake_engine(corpus, monkeypatch):
    """`rag bench` builds this assistant instead of the real models."""
    assistant, gen = make_assistant(corpus, ["Le ministre Fedorov l'a annoncé [1]."])
    built = []

    def build(settings, model=None):
        built.append(settings)
        return assistant

    monkeypatch.setattr("rag.answer.assistant.build_assistant", build)
    return assistant, gen, built


def test_bench_reports_every_stage_cold_and_warm(corpus, questions):
    assistant, gen = make_assistant(corpus, ["Fedorov a annoncé la production [1]."])
    qs = common.read_questions(questions)
    report = answers.bench(assistant, qs, runs=2, command="rag bench test")

    assert len(gen.calls) == 1 + 2 * len(qs)  # the cold question, then two warm passes
    assert set(report["cold"]) == {"cold"}  # the fake has no KV cache to empty
    assert report["answers"] == 6 and report["runs"] == 2 and report["questions"] == 3
    for key, _ in answers.METRICS:
        assert set(report["warm"][key]) == {"p50", "p95", "mean", "n"}
    for key in ("retrieval_ms", "ttft_s", "total_s", "prompt_tokens"):
        stat = report["warm"][key]
        assert stat["n"] == 6
        assert stat["p50"] is not None and stat["p50"] <= stat["p95"]
    assert report["warm"]["prompt_tokens"]["p50"] > 0
    assert report["warm"]["llama_decode_tps"]["n"] == 0  # no llama.cpp counters from a fake
    assert report["peak_rss_mb"] > 0
    assert {"index_load_s", "embedder_load_s", "llm_load_s"} <= set(report["load"])
    assert [s["phase"] for s in report["samples"]] == ["cold"] + ["warm"] * 6
    json.dumps(report)  # serialisable as is

    # Every timed question embeds its query, as a new question does: the second pass finds no memo.
    embedded = [texts[0] for texts in assistant.retriever.embedder.calls if len(texts) == 1]
    assert all(embedded.count(q) == 2 for _, q in qs[1:]) and embedded.count(qs[0][1]) == 3  # + the cold one

    md = answers.bench_markdown(report)
    assert "| stage | cold | warm p50 | warm p95 | warm mean |" in md
    assert "| time to first token, visible (s) |" in md and "| retrieval (ms) |" in md
    assert "rag bench test" in md


def test_every_mode_starts_its_markdown_with_one_measured_header():
    report = {"command": "rag bench --x", "date": "2026-01-01T00:00:00+00:00", "commit": "abc1234",
              "machine": {"cpu_count": 2, "cpu": "Some CPU", "load_average": [1.0, 0.5, 0.2]}}
    assert common.measured(report) == ("Command: `rag bench --x`  \nMeasured 2026-01-01T00:00:00+00:00 at commit abc1234 "
                                       "on 2 × Some CPU; load average [1.0, 0.5, 0.2] at start.")
    report.update(commit=None, load_average_end=[2.0, 1.0, 0.5])
    assert common.measured(report).endswith("at commit ? on 2 × Some CPU; load average [1.0, 0.5, 0.2] at start, [2.0, 1.0, 0.5] at end.")


def test_bench_command_writes_json_markdown_and_doc_section(fake_engine, questions, tmp_path):
    out = tmp_path / "out"
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nHand-written analysis stays.\n", encoding="utf-8")
    runner = CliRunner()
    for _ in range(2):  # the second run replaces the generated section, never duplicates it
        result = runner.invoke(main, ["bench", str(questions), "--out", str(out), "--markdown", str(doc), "--runs", "1"])
        assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert report["questions"] == 3 and report["answers"] == 3
    assert report["command"].startswith("rag ")
    assert (out / "bench.md").read_text(encoding="utf-8") in doc.read_text(encoding="utf-8")
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n\nHand-written analysis stays.")
    assert text.count(common.SECTION.format(name="bench")) == 1
    assert text.count(common.SECTION_END.format(name="bench")) == 1


def test_bench_limit_takes_the_first_questions(fake_engine, questions, tmp_path):
    assistant, gen, _ = fake_engine
    result = CliRunner().invoke(main, ["bench", str(questions), "--out", str(tmp_path), "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "bench.json").read_text())["questions"] == 2


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "holds no questions"),
    ('{"id": "x"}\n', 'not a JSON object with a "question" string'),
    ("not json\n", "line"),
])
def test_bad_question_file_is_one_line_error_before_any_model_loads(fake_engine, tmp_path, content, message):
    _, _, built = fake_engine
    path = tmp_path / "q.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1
    assert built == []
    assert not (tmp_path / "out").exists()


def test_retrieval_scale_measures_faiss_bm25_and_the_engine_search(fake_engine, questions, tmp_path):
    result = CliRunner().invoke(main, ["bench", str(questions), "--out", str(tmp_path), "--retrieval-scale", "600"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "retrieval.json").read_text())["retrieval"]
    assert report["chunks"] == 600
    rows = {r["index"]: r for r in report["faiss"]}
    assert rows["flat-ip"]["recall_questions"] == 1.0  # exact search is its own ground truth
    assert all(0.0 <= r["recall_questions"] <= 1.0 and r["search_ms_p50"] > 0 for r in rows.values())
    assert report["bm25"]["search_ms_p50"] > 0 and report["hybrid"]["search_ms_p50"] > 0
    assert "| FAISS index |" in (tmp_path / "retrieval.md").read_text()


@pytest.mark.slow  # 3,000 chunks of real text (about 3 s of CPU); the two tests around it run the mode at 600 and 800
def test_retrieval_scale_embeds_real_text_and_queries_held_out_chunks(fake_engine, questions, tmp_path):
    import random

    rng = random.Random(1)
    words = "river bridge tower council budget harbour train museum winter garden market library".split()
    docs = tmp_path / "scale-docs"
    docs.mkdir()
    for f in range(6):
        sentences = [" ".join(rng.choices(words, k=12)).capitalize() + "." for _ in range(700)]
        (docs / f"d{f}.txt").write_text("\n\n".join(" ".join(sentences[i:i + 5]) for i in range(0, 700, 5)))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", str(questions), "--out", str(out), "--retrieval-scale", "3000",
                                       "--scale-docs", str(docs)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "retrieval.json").read_text())["retrieval"]
    assert report["held_out_queries"] == 100 and 0 < report["real_chunks"] <= 3000
    flat = next(r for r in report["faiss"] if r["index"] == "flat-ip")
    assert flat["recall_held_out_chunks"] == 1.0
    assert report["own_chunks"] > 0, "the index's own chunks are among the scaled ones"
    assert report["hybrid"]["faiss_index"] == "flat-ip" and report["hybrid"]["topk_agreement_with_exact"] == 1.0


def test_retrieval_scale_past_the_hnsw_threshold_reports_its_agreement_with_exact(fake_engine, questions, tmp_path, monkeypatch):
    from rag.ingest import store

    monkeypatch.setattr(store, "HNSW_MIN_CHUNKS", 500)
    result = CliRunner().invoke(main, ["bench", str(questions), "--out", str(tmp_path), "--retrieval-scale", "800"])
    assert result.exit_code == 0, result.output
    hybrid = json.loads((tmp_path / "retrieval.json").read_text())["retrieval"]["hybrid"]
    assert hybrid["faiss_index"] == "hnsw32" and 0.0 <= hybrid["topk_agreement_with_exact"] <= 1.0
    assert "the same as with exact FAISS search" in (tmp_path / "retrieval.md").read_text()


def test_grid_parsing():
    assert sweep.parse_grid("threads=1,2;flash_attn=0,1") == [
        {"threads": 1, "flash_attn": 0}, {"threads": 1, "flash_attn": 1},
        {"threads": 2, "flash_attn": 0}, {"threads": 2, "flash_attn": 1}]
    with pytest.raises(InputError):
        sweep.parse_grid("colour=red")


def test_write_section_appends_then_replaces(tmp_path):
    doc = tmp_path / "d.md"
    common.write_section(doc, "x", "one")
    common.write_section(doc, "y", "other")
    common.write_section(doc, "x", "two")
    text = doc.read_text()
    assert "two" in text and "one" not in text and "other" in text
    assert text.index("two") < text.index("other")


def test_percentiles_and_ratios():
    assert common.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert common.percentile([], 50) is None
    assert common.ratio(95.0, 100.0) == 0.95
    assert common.ratio(None, 100.0) is None


def test_contention_is_the_share_other_processes_used():
    # 10 s of machine time (2 cores x 5 s): 6 s busy, 2 s of them this process's own.
    assert common.others_share((0.0, 0.0, 0.0), (6.0, 10.0, 2.0)) == 0.4
    assert common.others_share((0.0, 0.0, 0.0), (1.0, 10.0, 2.0)) == 0.0  # never negative
    assert common.others_share((5.0, 5.0, 1.0), (5.0, 5.0, 1.0)) is None  # no time passed
    busy, total, own = common.cpu_times()
    assert 0 <= busy <= total and own >= 0


# --- the real models (slow tier): llama.cpp's own counters are read, the sweep runs ----------------

@pytest.mark.slow
def test_real_bench_reads_llama_counters_and_sweeps(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import SEEDS

    rag = str(Path(sys.executable).with_name("rag"))
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_CACHE_DIR": os.environ.get("RAG_CACHE_DIR", "")}
    env = {k: v for k, v in env.items() if v}
    run = lambda *a: subprocess.run([rag, *a], capture_output=True, text=True, env=env, timeout=900, check=False)
    assert run("index", "--docs", str(SEEDS)).returncode == 0
    out = tmp_path / "out"
    result = run("bench", "--limit", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    assert set(report["cold"]) == {"cold", "cold-no-prompt-cache", "cold-prompt-cache"}
    assert report["cold"]["cold-no-prompt-cache"]["restored_tokens"] == 0
    assert report["cold"]["cold-prompt-cache"]["restored_from"] == "disk"
    warm = report["warm"]
    assert warm["llama_prefill_tps"]["n"] == 2 and warm["llama_prefill_tps"]["p50"] > 0
    # The wrapper cannot be faster than the library it wraps (small rounding aside).
    assert 0 < warm["prefill_ratio"]["p50"] <= 1.01
    assert report["peak_rss_mb"] > 500  # both real models are loaded

    result = run("bench", "--sweep", "--grid", "threads=2;n_batch=256;flash_attn=1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["prefill_tps_best"] > 0 and rows[0]["decode_tps_best"] > 0


# --- the modes -------------------------------------------------------------------------------------

def test_every_mode_brings_its_options_and_the_first_selected_one_runs():
    from rag.measure.bench import command

    def chosen(*args):
        options = command.bench_command.make_context("bench", list(args)).params
        return next((m for m in command.MODES if m.selected(options)), command.DEFAULT_MODE).__name__.rsplit(".", 1)[1]

    assert {"runs", "sweep", "grid", "app_rss", "retrieval_scale", "scale_docs"} <= {p.name for p in command.bench_command.params}
    assert [chosen(), chosen("--sweep"), chosen("--retrieval-scale", "100"), chosen("--app")] == ["answers", "sweep", "retrieval", "chat_app"]


def test_a_bad_sweep_grid_is_one_line_before_the_engine_is_built(fake_engine, questions, tmp_path):
    _, _, built = fake_engine
    result = CliRunner().invoke(main, ["bench", str(questions), "--sweep", "--grid", "colour=red", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "--grid part" in result.output and result.output.count("\n") == 1
    assert built == [] and not (tmp_path / "out").exists()


def test_a_warm_sample_keeps_the_answering_calls_counters_not_a_later_calls(corpus, questions):
    """A call after the answer (a quote's translation) replaces the generator's last_stats; the
    bench reads the answer's own counters from its timings."""
    from rag.generation.base import FakeGenerator, GenerationStats

    class Counting(FakeGenerator):
        def stream(self, messages, max_tokens, temperature=0.0):
            yield from super().stream(messages, max_tokens, temperature)
            self.last_stats = GenerationStats(prompt_tokens=40, cached_tokens=30, restored_tokens=30, restored_from="ram",
                                              completion_tokens=8, ttft_s=0.25, decode_s=0.5, decode_tokens=7,
                                              llama={"answer": True})

    assistant, _ = make_assistant(corpus, [])
    assistant.generator = gen = Counting(["Fedorov a annoncé la production [1]."])
    sample = answers.ask_timed(assistant, "a", "Qui produit des drones avec la France ?", "warm")
    gen.last_stats = GenerationStats(completion_tokens=999, decode_tokens=999, ttft_s=9.0, llama={"later": True})
    record = answers._gen_record(sample)
    assert record == {"decode_tokens": 7, "decode_s": 0.5, "evaluated": 10, "ttft_s": 0.25, "llama": {"answer": True}}
    assert (sample.restored_tokens, sample.restored_from) == (30, "ram")
