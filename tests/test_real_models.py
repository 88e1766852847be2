"""The real thing on seeds/: the bundled embedder and GGUF model through the installed `rag` script.

Slow (model load and CPU inference), run by CI as well: a crash in the native library, a wrong chat
template or a broken citation shows up here and nowhere else.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEEDS

pytestmark = pytest.mark.slow

RAG = str(Path(sys.executable).with_name("rag"))


def rag(*args, index: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_INDEX_DIR": str(index)}
    return subprocess.run([RAG, *args], capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    index = tmp_path_factory.mktemp("index")
    result = rag("index", "--docs", str(SEEDS), index=index)
    assert result.returncode == 0, result.stderr
    assert "indexed 2 files" in result.stdout
    return index


def ask(index: Path, question: str) -> dict:
    result = rag("ask", question, "--json", index=index)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def passage_of(citation: dict) -> str:
    """The cited span, read back from the file itself: the citation must point at real text."""
    text = (SEEDS / citation["source"]).read_text(encoding="utf-8")
    return text[citation["start"] : citation["end"]]


@pytest.mark.parametrize("question, facts, source, lang", [
    ("Quelle ministre française des Armées s'est rendue à Kiev ?", ["vautrin"], "000_bd2b8a41f6a38a23.txt", "fr"),
    ("How did Ukraine's national arms production change in 2023?", ["tripl"], "003_7419355f8c0850c2.txt", "en"),
    ("Avec quelle entreprise allemande l'Ukraine a-t-elle conclu un accord d'entretien des armes ?",
     ["rheinmetall"], "003_7419355f8c0850c2.txt", "fr"),
    ("Which French air-defence systems does Kyiv want new deliveries of?", ["samp"], "000_bd2b8a41f6a38a23.txt", "en"),
])
def test_answers_with_the_fact_and_cites_the_right_passage(seeded, question, facts, source, lang):
    out = ask(seeded, question)
    answer = out["answer"].lower()
    assert not out["refused"], out["answer"]
    for fact in facts:
        assert fact in answer, out["answer"]
    assert out["citations"], f"no citation in {out['answer']!r}"
    assert source in {c["source"] for c in out["citations"]}
    for c in out["citations"]:
        assert f"[{c['n']}]" in out["answer"]
        assert passage_of(c) == c["text"]
    assert any(f in passage_of(c).lower() for c in out["citations"] for f in facts), "a citation holds the fact"
    assert out["language"] == lang
    assert out["timings"]["completion_tokens"] > 0 and out["timings"]["decode_tps"] > 0


def test_refuses_when_the_documents_do_not_say(seeded):
    out = ask(seeded, "Quel club a remporté la Ligue des champions de football en 2019 ?")
    assert out["refused"], out["answer"]
    assert out["citations"] == []
    assert "documents" in out["answer"].lower()


def test_streamed_cli_output_lists_sources(seeded):
    result = rag("ask", "Qui est le ministre ukrainien de la Défense qui a parlé sur Facebook ?", index=seeded)
    assert result.returncode == 0, result.stderr
    assert "Umerov" in result.stdout
    assert "Sources:" in result.stdout and "003_7419355f8c0850c2.txt" in result.stdout


def test_an_index_built_with_the_multilingual_embedder_answers_with_it(tmp_path):
    """`rag index --embedder multilingual-e5-small-q4` records it; `rag ask` without the setting
    queries with it (no "built with another embedder" error), and an English question finds the
    French passage that holds its fact."""
    env = {k: v for k, v in os.environ.items() if k != "RAG_EMBEDDER"}
    result = subprocess.run([RAG, "index", "--docs", str(SEEDS), "--embedder", "multilingual-e5-small-q4"],
                            capture_output=True, text=True, timeout=600, env={**env, "RAG_INDEX_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    manifest = json.loads(next(tmp_path.glob("gen-*/manifest.json")).read_text(encoding="utf-8"))
    assert manifest["embedder"] == "multilingual-e5-small-q4"
    # Indexing again without the flag keeps the index's embedder: nothing is re-embedded.
    again = subprocess.run([RAG, "index", "--docs", str(SEEDS)], capture_output=True, text=True, timeout=600,
                           env={**env, "RAG_INDEX_DIR": str(tmp_path)})
    assert again.returncode == 0 and "0 chunks embedded" in again.stdout, again.stdout + again.stderr
    manifest = json.loads(next(tmp_path.glob("gen-*/manifest.json")).read_text(encoding="utf-8"))
    assert manifest["embedder"] == "multilingual-e5-small-q4"
    result = subprocess.run([RAG, "ask", "Which German arms maker signed a maintenance deal with Ukraine?", "--json"],
                            capture_output=True, text=True, timeout=600, env={**env, "RAG_INDEX_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert any("rheinmetall" in p["text"].lower() for p in out["retrieved"]), [p["text"][:80] for p in out["retrieved"]]


def test_the_bundled_1_5b_answers_where_the_0_5b_answer_would_be_quoted(seeded):
    # The 0.5B's answer to this question fails the checks (a quote would be shown): the 1.5B is asked
    # the same prompt, and its own answer, checked the same way, is given in the quote's place.
    question = "Quelle agence de presse assistait à la conférence de presse donnée par Catherine Vautrin à Kiev ?"
    out = ask(seeded, question)
    assert out["outcome"] == "direct" and out["model"].startswith("qwen2.5-coder-1.5b"), out["answer"]
    assert out["timings"]["second_used"] and out["decided_by"], out["timings"]
    assert "afp" in out["answer"].lower() and any("AFP" in passage_of(c) for c in out["citations"])
    env = {**os.environ, "RAG_INDEX_DIR": str(seeded), "RAG_SECOND_MODEL": ""}
    alone = subprocess.run([RAG, "ask", question, "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert json.loads(alone.stdout)["outcome"] == "quote", alone.stdout[-500:]


@pytest.mark.parametrize("requantize", [True, False])
def test_a_presets_label_is_the_name_of_the_file_it_resolves_to(requantize):
    # The second model is told apart from the first by this name, before anything is assembled or loaded.
    from rag.config import Settings
    from rag.generation.models import PRESETS, model_label, resolve_model

    for spec in PRESETS:
        assert model_label(spec, requantize) == resolve_model(spec, Settings().cache_dir, requantize=requantize).name


@pytest.fixture(scope="module")
def judge_and_passage():
    """The real second model (the judge of rag.answer.judge), loaded once, and a seed passage around the
    sentence naming Rheinmetall: (model, [passage], that sentence)."""
    from rag.config import Settings
    from rag.generation.llama import LlamaGenerator
    from rag.generation.models import resolve_model
    from rag.schema import Chunk, Hit

    text = (SEEDS / "003_7419355f8c0850c2.txt").read_text(encoding="utf-8")
    sentence = next(s for s in text.split(". ") if "Rheinmetall" in s)
    at = text.index(sentence)
    passage = text[max(0, at - 300) : at + len(sentence) + 300]
    hit = Hit(Chunk("003#0", "003_7419355f8c0850c2.txt", 0, len(passage), passage), 1.0, 1)
    return LlamaGenerator(resolve_model("quality", Settings.from_env().cache_dir)), [hit], sentence


def test_the_bundled_1_5b_judges_a_quote_that_answers_above_the_bar_and_one_that_does_not_below(judge_and_passage):
    # The judge (rag.answer.judge) on the real second model: the same sentence of a seed article read
    # against a question it answers and an on-topic question it does not (it names no amount).
    from rag.answer.judge import MIN_ODDS, support_odds

    model, passages, quote = judge_and_passage
    answers = support_odds(model, "Avec quelle entreprise allemande l'Ukraine a-t-elle un accord d'entretien des armes ?",
                           quote, passages)
    unanswered = support_odds(model, "Combien l'Ukraine paie-t-elle Rheinmetall pour l'entretien des armes ?", quote, passages)
    # The non-answer is turned down; the answer scores higher (its margin over the bar is thinner:
    # the judge is a weak reader, measured in docs/quality.md, sixteenth round).
    assert unanswered < MIN_ODDS and answers > unanswered, (answers, unanswered)


def test_the_bundled_1_5b_keeps_an_answer_the_passage_says_and_overrules_one_it_does_not(judge_and_passage):
    # The judge on the first model's accepted answer (rag.answer.judge.answer_judged): the same passage,
    # the same question, the right company and one the passage never names, in the same words.
    from rag.answer.judge import MIN_ANSWER_ODDS, support_odds

    model, passages, _ = judge_and_passage
    question = "Avec quelle entreprise allemande l'Ukraine a-t-elle un accord d'entretien des armes ?"
    said = support_odds(model, question, "L'Ukraine a un accord d'entretien des armes avec l'entreprise allemande Rheinmetall.", passages)
    invented = support_odds(model, question, "L'Ukraine a un accord d'entretien des armes avec l'entreprise allemande Siemens.", passages)
    assert invented < MIN_ANSWER_ODDS < said, (said, invented)
