import json
import re

import pytest
from click.testing import CliRunner
from conftest import make_assistant

import rag.answer.assistant
from rag.apps.cli import main


@pytest.fixture
def run(settings, monkeypatch):
    """Invoke the CLI with the fake embedder and tmp folders, as a user would with RAG_* variables."""
    env = {"RAG_EMBEDDER": "fake-hash", "RAG_CACHE_DIR": str(settings.cache_dir)}

    def invoke(*args):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_index_then_reindex_reports_what_changed(run, corpus):
    docs, index = str(corpus.docs_dir), str(corpus.index_dir)
    first = run("index", "--docs", docs, "--index", index)
    assert first.exit_code == 0, first.output
    assert "indexed 2 files" in first.output and "0 chunks embedded" in first.output  # corpus fixture built it
    (corpus.docs_dir / "gamma.txt").write_text("Le Rafale est un avion de combat.", encoding="utf-8")
    second = run("index", "--docs", docs, "--index", index)
    assert "1 added" in second.output and "1 chunks embedded" in second.output


def test_index_warns_about_skipped_files_by_name(run, settings):
    (settings.docs_dir / "ok.txt").write_text("Du texte.", encoding="utf-8")
    (settings.docs_dir / "vide.md").write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["index", "--docs", str(settings.docs_dir), "--index", str(settings.index_dir)],
                                env={"RAG_EMBEDDER": "fake-hash"})
    assert result.exit_code == 0
    assert "warning: skipped vide.md: empty" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["ask", "  "], "question is empty"),
    (["index", "--docs", "/nonexistent/folder"], "--docs"),
])
def test_bad_input_is_one_line_on_stderr_and_nonzero(args, message):
    result = CliRunner().invoke(main, args, env={"RAG_EMBEDDER": "fake-hash"})
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_ask_without_index_says_run_rag_index(settings, monkeypatch):
    monkeypatch.setattr(rag.answer.assistant, "build_assistant", lambda s: make_assistant(s, ["x"])[0])
    result = CliRunner().invoke(main, ["ask", "Qui ?", "--index", str(settings.index_dir)], env={"RAG_EMBEDDER": "fake-hash"})
    assert result.exit_code == 1 and "run `rag index`" in result.stderr


def test_unknown_model_preset_is_refused(corpus):
    result = CliRunner().invoke(main, ["ask", "Qui ?", "--index", str(corpus.index_dir), "--model", "huge"],
                                env={"RAG_EMBEDDER": "fake-hash", "RAG_CACHE_DIR": str(corpus.cache_dir)})
    assert result.exit_code == 1 and "unknown model 'huge'" in result.stderr


def test_ask_streams_the_answer_then_the_cited_sources(corpus, monkeypatch):
    monkeypatch.setattr(rag.answer.assistant, "build_assistant", lambda s: make_assistant(s, ["Rustem Umerov [2]."])[0])
    result = CliRunner().invoke(main, ["ask", "Qui est le ministre de la défense ?", "--index", str(corpus.index_dir)],
                                env={"RAG_EMBEDDER": "fake-hash"})
    assert result.exit_code == 0, result.output
    # The engine numbers the passages it showed the model: the marker is the one of beta.md's.
    n = re.match(r"Rustem Umerov \[(\d)\]\.\n", result.stdout).group(1)
    assert f"Sources:\n[{n}] beta.md, §Contrats (chars" in result.stdout


def test_ask_json_prints_one_object_with_every_field(corpus, monkeypatch):
    monkeypatch.setattr(rag.answer.assistant, "build_assistant", lambda s: make_assistant(s, ["Rustem Umerov [2]."])[0])
    result = CliRunner().invoke(main, ["ask", "Qui est le ministre de la défense ?", "--json", "--index",
                                       str(corpus.index_dir), "--top-k", "2"], env={"RAG_EMBEDDER": "fake-hash"})
    out = json.loads(result.stdout)
    assert out["refused"] is False and out["answer"] == f"Rustem Umerov [{out['citations'][0]['n']}]."
    # The passages the model was shown (at most --top-k): those its context sentences come from.
    assert 1 <= len(out["retrieved"]) <= 2 and out["citations"][0]["start"] in {r["start"] for r in out["retrieved"]}
    assert out["citations"][0]["source"] == "beta.md"
    assert {"retrieval_ms", "ttft_s", "total_s", "prompt_tokens", "completion_tokens", "prefill_tps",
            "decode_tps"} <= set(out["timings"])


def _ask_replaced(corpus, monkeypatch, terminal: bool):
    """`rag ask` where the model's answer fails the evidence check and a quote replaces it."""
    import rag.apps.cli

    monkeypatch.setattr(rag.answer.assistant, "build_assistant", lambda s: make_assistant(s, ["Le ministre a parlé."])[0])
    monkeypatch.setattr(rag.apps.cli, "_terminal_columns", lambda: 80 if terminal else None)
    result = CliRunner().invoke(main, ["ask", "Qui est le ministre de la défense ?", "--index", str(corpus.index_dir)],
                                env={"RAG_EMBEDDER": "fake-hash"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ask_into_a_pipe_prints_only_the_checked_answer(corpus, monkeypatch):
    out = _ask_replaced(corpus, monkeypatch, terminal=False)
    assert "Le ministre a parlé" not in out and "\x1b" not in out
    assert re.match(r"Les documents indiquent : « Rustem Umerov est le ministre de la défense\. » \[\d\]\n", out), out


def test_ask_on_a_terminal_replaces_what_streamed_in_place(corpus, monkeypatch):
    out = _ask_replaced(corpus, monkeypatch, terminal=True)
    # The streamed answer, erased (back to its first row, cleared), then the checked one in its place.
    assert re.match(r"Le ministre a parlé( \[\d\])?\.\r\x1b\[JLes documents indiquent : « Rustem Umerov", out), repr(out)


def test_erasing_counts_the_rows_a_terminal_wrapped_the_text_into():
    from rag.apps.cli import erase

    assert erase("short", 80) == "\r\x1b[J"
    assert erase("x" * 80, 80) == "\r\x1b[J"  # a full row: the cursor waits at its end
    assert erase("x" * 81, 80) == "\r\x1b[1A\x1b[J"
    assert erase("first line\n" + "y" * 170, 80) == "\r\x1b[3A\x1b[J"


def test_ask_json_timings_say_where_start_up_went(corpus, monkeypatch):
    """Stages on the process's own clock (`rag bench --cold` reads them): moments in order, durations >= 0."""
    monkeypatch.setattr(rag.answer.assistant, "build_assistant", lambda s: make_assistant(s, ["Rustem Umerov [2]."])[0])
    result = CliRunner().invoke(main, ["ask", "Qui est le ministre de la défense ?", "--json", "--index",
                                       str(corpus.index_dir)], env={"RAG_EMBEDDER": "fake-hash"})
    assert result.exit_code == 0, result.output
    startup = json.loads(result.stdout)["timings"]["startup"]
    assert set(startup) == {"imports_s", "index_load_s", "language_s", "embedder_load_s", "model_load_s",
                            "first_token_s", "total_s"}
    assert all(isinstance(v, float) and v >= 0 for v in startup.values())
    assert startup["imports_s"] <= startup["first_token_s"] <= startup["total_s"]


def test_help_and_version_load_no_library_the_command_does_not_use():
    """`rag ask --help` and `rag --version` answer from click alone (transformers' import was 1.8 s)."""
    import subprocess
    import sys

    heavy = ["transformers", "torch", "numpy", "llama_cpp", "onnxruntime", "bm25s", "scipy", "faiss", "lingua",
             "fasttext", "gradio", "httpx"]
    for args in (["ask", "--help"], ["--version"]):
        code = ("import sys\nfrom rag.apps.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
                "print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)), file=sys.stderr)" % (args, heavy))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().splitlines()[-1] == "[]", (args, done.stderr)


def test_a_front_end_whose_library_is_missing_says_what_to_install(monkeypatch):
    import builtins

    from click.testing import CliRunner

    import rag.apps.cli as cli

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'", name="gradio")
        return real_import(name, *args, **kwargs)

    for module in [m for m in list(__import__("sys").modules) if m.startswith(("rag.apps.web", "gradio"))]:
        monkeypatch.delitem(__import__("sys").modules, module)
    monkeypatch.setattr(builtins, "__import__", no_gradio)
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code != 0
    assert "`rag serve` needs gradio" in result.output and "scripts/setup.sh" in result.output


def test_index_embedder_flag_names_the_bundled_embedders_and_refuses_others(settings):
    from rag.apps.cli import EMBEDDERS
    from rag.retrieval.embedders import BUNDLED

    assert set(EMBEDDERS) == set(BUNDLED)
    result = CliRunner().invoke(main, ["index", "--docs", str(settings.docs_dir), "--index", str(settings.index_dir),
                                       "--embedder", "bert-huge"])
    assert result.exit_code == 2 and "multilingual-e5-small-q4" in result.stderr
    assert not settings.index_dir.exists() or not any(settings.index_dir.iterdir())


def test_index_keeps_a_multilingual_index_s_embedder_and_refuses_flag_with_a_server(corpus, monkeypatch):
    """`rag index` with no embedder asked for goes on with the one an index was built with (or an
    interrupted build was making) when that is multilingual e5, instead of re-embedding everything
    with the default; --embedder beside RAG_EMBED_URL is refused (the server would embed)."""
    import rag.retrieval.embedders as embedders
    from rag.retrieval.embedders import E5_NAME, FakeEmbedder

    class E5Stand(FakeEmbedder):  # the real model belongs to the slow tier
        name = E5_NAME

    made = []
    monkeypatch.setattr(embedders, "make_embedder", lambda name, *a, **k: made.append(name) or E5Stand())
    docs, index = str(corpus.docs_dir), str(corpus.index_dir)
    monkeypatch.delenv("RAG_EMBEDDER", raising=False)
    first = CliRunner().invoke(main, ["index", "--docs", docs, "--index", index, "--embedder", E5_NAME])
    assert first.exit_code == 0 and made == [E5_NAME], first.output
    again = CliRunner().invoke(main, ["index", "--docs", docs, "--index", index])
    assert again.exit_code == 0 and made == [E5_NAME, E5_NAME] and "0 chunks embedded" in again.output, again.output
    server = CliRunner().invoke(main, ["index", "--docs", docs, "--index", index, "--embedder", E5_NAME],
                                env={"RAG_EMBED_URL": "http://127.0.0.1:9/v1"})
    assert server.exit_code == 2 and "RAG_EMBED_URL" in server.stderr


def test_an_interrupted_builds_embedder_is_read_from_its_work_in_progress(tmp_path):
    import json

    from rag.ingest.workspace import WIP, unfinished_embedder

    assert unfinished_embedder(tmp_path) is None
    (tmp_path / WIP).mkdir()
    (tmp_path / WIP / "key.json").write_text(json.dumps({"embedder": "multilingual-e5-small-q4", "dim": 384}))
    assert unfinished_embedder(tmp_path) == "multilingual-e5-small-q4"
