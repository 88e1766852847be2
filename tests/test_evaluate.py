import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SEEDS, make_assistant

import rag.measure.evaluate as evaluate_mod
from rag.apps.cli import main
from rag.config import Settings
from rag.measure.evaluate import evaluate, load_questions
from rag.measure.metrics import contains_keyword, is_gold, normalize
from rag.measure.replay import GenerationCache
from rag.text.lexical import fold

# Passages are numbered as they reach the prompt; q4's reply cites [7], which no prompt has. q4 asks
# "how", so the answer checks expect no kind of fact from its reply: these tests are about the metrics.
QUESTIONS = [
    {"id": "q1", "question": "Qui est le ministre de la défense ?", "answer": "Rustem Umerov.", "keywords": ["Umerov"],
     "sources": ["beta.md"], "answerable": True, "lang": "fr", "topic": "extra field, kept"},
    {"id": "q2", "question": "Which guided bombs are produced in record volumes?", "answer": "AASM Hammer bombs.",
     "keywords": ["Hammer"], "sources": ["alpha.txt"], "answerable": True, "lang": "en"},
    {"id": "q3", "question": "Quel est le budget des contrats signés par l'Ukraine ?", "answer": "", "keywords": [],
     "sources": [], "answerable": False, "lang": "fr"},
    {"id": "q4", "question": "Comment Fedorov produit-il des drones ?", "answer": "Avec la France.",
     "keywords": ["drone", "France"], "sources": ["docs/alpha.txt"], "answerable": True, "lang": "fr"},
]
REPLIES = [
    "Le ministre de la défense est Rustem Umerov [1].",
    "NOT FOUND",
    "NOT FOUND",
    "Fedorov a annoncé la production commune de drones [1][7].",
]


def write_questions(path: Path, rows: list, extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) if not isinstance(r, str) else r for r in rows]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return path


def run(corpus, tmp_path, replies=REPLIES, name="run", **kwargs):
    assistant, gen = make_assistant(corpus, replies)
    qset = load_questions(write_questions(tmp_path / "q.jsonl", QUESTIONS))
    summary, records, comparison = evaluate(assistant, qset, tmp_path / name, **kwargs)
    return summary, records, comparison, gen


def test_end_to_end_scores_every_metric_through_the_engine(corpus, tmp_path):
    summary, records, _, gen = run(corpus, tmp_path)
    # The questions went through the engine's own prompt, with the documents' sentences as context.
    assert len(gen.calls) == 4
    assert all(q["question"] in call[-1]["content"] and call[-1]["content"].startswith("Context:\n- ")
               for q, call in zip(QUESTIONS, gen.calls))
    assert (summary["n"], summary["n_answerable"], summary["n_unanswerable"]) == (4, 3, 1)
    assert summary["hit_at_k"] == 1.0 and summary["recall_at_k"] == 1.0
    assert summary["mrr"] == pytest.approx((1 / records[0]["metrics"]["first_gold_rank"] + 1 / records[1]["metrics"]["first_gold_rank"]
                                            + 1 / records[3]["metrics"]["first_gold_rank"]) / 3, abs=1e-4)
    assert summary["answer_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["false_refusal_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["refusal_rate_unanswerable"] == 1.0
    # q4's raw reply cited [7] of 2 passages: invalid, although the engine removed it from the answer.
    assert summary["citation_validity"] == 0.5
    assert "[7]" not in records[3]["answer"]["answer"] and records[3]["metrics"]["invalid_markers"] == [7]
    assert summary["citation_precision"] == 1.0 and summary["citation_recall"] == 1.0
    assert summary["language_match"] == 1.0
    assert summary["latency_p50_s"] is not None and summary["ttft_p95_s"] is not None
    assert [r["metrics"]["passed"] for r in records] == [True, False, True, False]
    assert records[3]["metrics"]["missing_keywords"] == ["France"]
    assert summary["settings"]["top_k"] == corpus.top_k and summary["model"]["label"] == "fake"
    assert summary["by_lang"]["fr"]["n"] == 3

    out = tmp_path / "run"
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert first["question"]["topic"] == "extra field, kept"
    assert first["answer"]["retrieved"][0]["text"] and first["answer"]["citations"][0]["source"] == "beta.md"
    assert first["metrics"]["f1"] is not None
    assert json.loads((out / "summary.json").read_text())["answer_accuracy"] == summary["answer_accuracy"]


def test_retrieval_only_never_generates(corpus, tmp_path):
    summary, records, _, gen = run(corpus, tmp_path, retrieval_only=True)
    assert gen.calls == []
    assert summary["hit_at_k"] == 1.0 and summary["answer_accuracy"] is None and summary["latency_p50_s"] is None
    assert all(r["answer"]["answer"] == "" and r["answer"]["retrieved"] for r in records)
    assert summary["retrieval_only"] is True


def test_report_lists_every_question_and_escapes_all_text(corpus, tmp_path):
    hostile = "<script>alert(1)</script> <img src=x onerror=alert(2)>"
    (corpus.docs_dir / "gamma.html").write_text(f"<p>Le missile Mistral &lt;b&gt;gras&lt;/b&gt; est cité.</p>", encoding="utf-8")
    from rag.ingest.indexing import build_index
    from rag.retrieval.embedders import FakeEmbedder

    build_index(corpus, FakeEmbedder())
    # A question the documents cannot answer, so its failure block shows the hostile raw output.
    questions = [*QUESTIONS, {"id": "q5", "question": f"{hostile} Combien coûte le missile Mistral ?", "answer": "3 millions",
                              "keywords": ["millions"], "sources": ["gamma.html"], "answerable": True, "lang": "fr"}]
    assistant, _ = make_assistant(corpus, [hostile])
    evaluate(assistant, load_questions(write_questions(tmp_path / "q.jsonl", questions)), tmp_path / "run")
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    for q in questions:
        assert f">{q['id']}<" in report
    assert "<script" not in report and "<img" not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "&lt;b&gt;gras&lt;/b&gt;" in report and "<b>gras" not in report
    assert "<svg" in report and "http://" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in report and "<link" not in report


def test_compare_reports_flips_and_deltas(corpus, tmp_path):
    run(corpus, tmp_path, name="before")
    better = ["Le ministre de la défense est Rustem Umerov [2].", "The AASM Hammer bombs [1].", "NOT FOUND",
              "Fedorov produit des drones avec la France [1]."]
    summary, _, comparison, _ = run(corpus, tmp_path, replies=better, name="after", compare_dir=tmp_path / "before")
    assert comparison["now_passing"] == ["q2", "q4"] and comparison["now_failing"] == []
    assert comparison["deltas"]["answer_accuracy"]["delta"] == pytest.approx(2 / 3, abs=1e-3)
    assert comparison["warnings"] == []
    assert json.loads((tmp_path / "after" / "compare.json").read_text())["now_passing"] == ["q2", "q4"]


def test_question_file_problems_are_warned_and_skipped(tmp_path):
    path = write_questions(tmp_path / "q.jsonl", [QUESTIONS[0], "not json", {"id": "x"}, QUESTIONS[0],
                                                   {**QUESTIONS[2], "keywords": ["oops"]}], extra_lines=("", "[1, 2]"))
    qset = load_questions(path)
    assert [q.id for q in qset.questions] == ["q1", "q1@4", "q3"]
    text = "\n".join(qset.warnings)
    assert "line 2" in text and "line 3" in text and '"question" is missing' in text and "line 7" in text
    assert "duplicate id 'q1'" in text and "unanswerable but lists keywords" in text
    assert qset.questions[2].keywords == ()


def test_unknown_sources_are_warned(corpus, tmp_path):
    warnings = []
    assistant, _ = make_assistant(corpus, REPLIES)
    qset = load_questions(write_questions(tmp_path / "q.jsonl", [{**QUESTIONS[0], "sources": ["missing.txt"]}]))
    summary, records, _ = evaluate(assistant, qset, tmp_path / "run", warn=warnings.append)
    assert any("missing.txt" in w for w in warnings)
    assert records[0]["metrics"]["hit"] is False and summary["hit_at_k"] == 0.0


def test_a_failing_question_is_recorded_and_the_run_goes_on(corpus, tmp_path):
    assistant, gen = make_assistant(corpus, REPLIES)
    gen.fail_after = 1
    qset = load_questions(write_questions(tmp_path / "q.jsonl", QUESTIONS))
    summary, records, _ = evaluate(assistant, qset, tmp_path / "run")
    assert summary["n_errors"] == 4 and len(records) == 4
    assert "fake generator failure" in records[0]["metrics"]["error"]
    assert assistant.generator is gen  # the raw-text recorder is removed afterwards


@pytest.fixture
def fake_builder(corpus, monkeypatch):
    built = []

    def build(settings, model=None):
        # The fixture corpus and fake models, with the options the command line set.
        assistant, gen = make_assistant(corpus.replace(top_k=settings.top_k, model=settings.model), REPLIES)
        built.append(gen)
        return assistant

    monkeypatch.setattr(evaluate_mod, "build_assistant", build)
    return built


def test_cli_writes_the_run_and_prints_the_summary(corpus, tmp_path, fake_builder):
    qfile = write_questions(tmp_path / "q.jsonl", QUESTIONS, extra_lines=("{broken",))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", str(qfile), "--out", str(out), "--top-k", "3"])
    assert result.exit_code == 0, result.output
    assert "line 5" in result.stderr and "answer_accuracy" in result.stdout and "0.333" in result.stdout
    assert {p.name for p in out.iterdir()} >= {"results.jsonl", "summary.json", "report.html"}
    assert json.loads((out / "summary.json").read_text())["settings"]["top_k"] == 3

    again = CliRunner().invoke(main, ["eval", str(qfile), "--out", str(tmp_path / "out2"), "--compare", str(out)])
    assert again.exit_code == 0, again.output
    assert "compared with" in again.stdout and "top_k 3 -> 4" in again.stdout


def test_cli_default_out_dir_is_under_runs(corpus, tmp_path, fake_builder, monkeypatch):
    qfile = write_questions(tmp_path / "q.jsonl", QUESTIONS)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(main, ["eval", str(qfile), "--retrieval-only"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (work / "runs").iterdir()
    assert (run_dir / "report.html").is_file() and fake_builder[0].calls == []


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    ("not json\n{\"id\": 1}\n[1, 2]\n", "no valid question"),
    ("\n\n", "has no questions"),
])
def test_cli_bad_question_files_give_one_line_and_fail(tmp_path, fake_builder, content, expected):
    path = tmp_path / "q.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and expected in result.stderr
    assert fake_builder == [] and not (tmp_path / "out").exists()


def test_cli_compare_with_a_folder_that_is_no_run(tmp_path, fake_builder):
    qfile = write_questions(tmp_path / "q.jsonl", QUESTIONS)
    result = CliRunner().invoke(main, ["eval", str(qfile), "--compare", str(tmp_path)])
    assert result.exit_code == 1 and "is not an eval run" in result.stderr and result.stderr.count("\n") == 1


def test_project_question_set_is_consistent_with_the_seeds():
    qset = load_questions(ROOT / "eval" / "questions.jsonl")
    assert qset.warnings == []
    qs = qset.questions
    assert len(qs) >= 40 and sum(not q.answerable for q in qs) >= 6
    assert {q.lang for q in qs} == {"fr", "en"}
    assert sum(len(q.sources) > 1 for q in qs) >= 4
    texts = {p.name: normalize(p.read_text(encoding="utf-8")) for p in SEEDS.iterdir()}
    for q in qs:
        if not q.answerable:
            assert not q.answer and not q.keywords and not q.sources, q.id
            continue
        assert q.sources and all(is_gold(s, list(texts)) for s in q.sources), q.id
        gold_text = " ".join(texts[s] for s in q.sources)
        # Every fact the answer must contain is stated (in one of its forms) in a gold document.
        for k in q.keywords:
            assert contains_keyword(gold_text, k), (q.id, k)
        assert fold(q.answer) and q.keywords, q.id


@pytest.mark.slow
def test_retrieval_only_eval_on_the_seeds_with_the_real_embedder(seed_index, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    index = seed_index
    rag = [sys.executable, "-m", "rag.apps.cli"]
    out = tmp_path / "run"
    done = subprocess.run([*rag, "eval", str(ROOT / "eval" / "questions.jsonl"), "--index", str(index), "--out", str(out),
                           "--retrieval-only"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    n = len(load_questions(ROOT / "eval" / "questions.jsonl").questions)
    assert summary["n"] == n and summary["index"]["embedder"] == Settings().embedder
    # Two short documents and four passages: a gold file missing from the top 4 is a retrieval bug,
    # and the passages holding the facts should mostly be there too (0.913 measured at 4 of 11 chunks).
    assert summary["hit_at_k"] >= 0.9 and summary["mrr"] >= 0.7 and summary["support_at_k"] >= 0.85
    assert len((out / "results.jsonl").read_text().splitlines()) == n
    report = (out / "report.html").read_text()
    assert all(f">{q['id']}<" in report for q in map(json.loads, (out / "results.jsonl").read_text().splitlines()) for q in [q["question"]])
    assert "hit_at_k" in done.stdout


def test_generation_cache_replays_the_same_prompt_and_generates_a_changed_one(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_EVAL_CACHE", str(tmp_path / "cache.jsonl"))
    first, records1, _, gen1 = run(corpus, tmp_path, name="a")
    assert len(gen1.calls) == 4 and len((tmp_path / "cache.jsonl").read_text().splitlines()) == 4
    # The same prompts again: every reply comes from the cache, and the run scores the same.
    second, records2, _, gen2 = run(corpus, tmp_path, replies=["never used"] * 4, name="b")
    assert gen2.calls == [] and [r["raw_answer"] for r in records2] == [r["raw_answer"] for r in records1]
    assert second["answer_accuracy"] == first["answer_accuracy"]
    # A changed prompt is generated, not replayed.
    cache = GenerationCache(gen2, tmp_path / "cache.jsonl", records1[0]["answer"]["model"])
    assert "".join(cache.stream([{"role": "user", "content": "another prompt"}], 10)) == "never used" and len(gen2.calls) == 1


def test_generation_cache_replays_the_judges_scores(tmp_path):
    # The judge's log-odds (rag.answer.judge) are a function of the messages too: a replay asks no model.
    class Scorer:
        def __init__(self):
            self.asked = []

        def log_odds(self, messages, yes, no):
            self.asked.append(messages)
            return 2.5 + len(self.asked)

    chat = [{"role": "user", "content": "Text: …\nDoes the text say it? yes or no"}]
    first = Scorer()
    assert GenerationCache(first, tmp_path / "c.jsonl", "m").log_odds(chat, ("yes",), ("no",)) == 3.5
    again = Scorer()
    cache = GenerationCache(again, tmp_path / "c.jsonl", "m")
    assert cache.log_odds(chat, ("yes",), ("no",)) == 3.5 and again.asked == []
    # Another model's score, or another chat, is asked anew; the replies' cache is untouched by scores.
    assert GenerationCache(again, tmp_path / "c.jsonl", "other").log_odds(chat, ("yes",), ("no",)) == 3.5 and len(again.asked) == 1
    assert cache.replies == {}
