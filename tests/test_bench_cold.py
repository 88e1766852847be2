"""`rag bench --cold` times whole processes and writes well-formed output. The fast tests run real
child processes that print what `rag ask --json` prints; the slow one runs `rag ask` itself on the
real models. Never a timing assert: the shape, the stages and the files are what is checked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.measure.bench import cold

ROOT = Path(__file__).resolve().parents[1]
RAG_BIN = Path(sys.executable).with_name("rag")

# A child that answers as `rag ask --json` does, after holding some memory and CPU for a moment.
FAKE_ASK = """
import json, sys
block = bytearray(64 * 1024 * 1024)
sum(range(300_000))
print(json.dumps({"answer": "Oui [1].", "timings": {"retrieval_ms": 12.5, "prompt_tokens": 300,
      "completion_tokens": 20, "llama": {"prompt_eval_ms": 900.0, "eval_ms": 400.0},
      "startup": {"imports_s": 0.4, "index_load_s": 0.1, "language_s": 0.002, "embedder_load_s": 0.3,
                  "model_load_s": 0.9, "first_token_s": 1.6, "total_s": 2.1}}}))
"""


def fake_ask() -> list[str]:
    return [sys.executable, "-c", FAKE_ASK]


def test_one_process_is_timed_from_outside_and_its_stages_read_from_inside():
    s = cold.run_process(fake_ask())
    assert s["wall_s"] > 0 and s["cpu_s"] > 0
    assert s["peak_rss_mb"] >= 64  # the child's own peak, not this process's
    assert s["first_token_s"] == 1.6 and s["prefill_s"] == 0.9 and s["decode_s"] == 0.4
    assert s["retrieval_s"] == 0.0125 and s["answer"] == "Oui [1]."


def test_a_failing_process_is_one_error_with_its_last_stderr_line():
    with pytest.raises(RagError, match="status 1: error: no index in x"):
        cold.run_process([sys.executable, "-c", "import sys; print('error: no index in x', file=sys.stderr); sys.exit(1)"])
    with pytest.raises(RagError, match="no JSON object"):
        cold.run_process([sys.executable, "-c", "print('hello')"])


def test_measure_summarizes_every_figure_and_the_markdown_has_a_row_each():
    result = cold.measure([fake_ask(), fake_ask()])
    assert result["processes"] == 2 and len(result["samples"]) == 2
    for key, _ in (*cold.TOTALS, *cold.STAGES):
        stat = result["summary"][key]
        assert stat["n"] == 2 and stat["min"] <= stat["p50"] <= stat["max"], key
    assert result["others_cpu_share"] is None or 0 <= result["others_cpu_share"] <= 1
    report = {"command": "rag bench --cold", "date": "2026-01-01T00:00:00+00:00", "commit": "abc1234",
              "machine": {"cpu_count": 2, "cpu": "test CPU", "load_average": [0.1, 0.1, 0.1]}, "cold": result}
    md = cold.cold_markdown(report)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0] == "| whole process | median | min | max |"
    assert len(rows) == 1 + len(cold.TOTALS) + 1 + len(cold.STAGES)
    assert all(line.count("|") == 5 for line in rows)
    json.dumps(report)


def test_the_command_is_the_console_script_with_the_options_given():
    cmd = cold.ask_command("Qui ?", Path("idx"), "quality", 3)
    assert cmd[1:] == ["ask", "Qui ?", "--json", "--index", "idx", "--model", "quality", "--top-k", "3"]
    assert cmd[0] == str(RAG_BIN) or cmd[:3] == [sys.executable, "-m", "rag.apps.cli"]


@pytest.mark.slow
def test_rag_bench_cold_runs_real_processes_and_writes_its_files(seed_index, tmp_path):
    import subprocess

    out = tmp_path / "out"
    done = subprocess.run([str(RAG_BIN), "bench", "--cold", "--processes", "2", "--index", str(seed_index),
                           "--question", "Qu'ont signé l'Ukraine et la France ?", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "cold.json").read_text(encoding="utf-8"))
    assert report["cold"]["processes"] == 2
    for sample in report["cold"]["samples"]:
        assert sample["answer"]
        for key, _ in (*cold.TOTALS, *cold.STAGES):
            assert isinstance(sample[key], (int, float)), key
        assert sample["imports_s"] < sample["first_token_s"] < sample["wall_s"]
    assert "| **first token from process start (s)** |" in (out / "cold.md").read_text(encoding="utf-8")
