"""Bad input never crashes the assistant: each case ends in an answer, a clean refusal, a skipped
file with its reason, or one line on stderr that says the fix, and nothing good is lost.

The CLI cases run the real `rag.apps.cli.main` through click's CliRunner with RAG_* settings pointing at
tmp folders and the fake-hash embedder; the model cases use a tiny fake preset in tmp (monkeypatched
part list) so no test copies the 500 MB model; the broken-GGUF case loads through the real llama.cpp
in a subprocess, so a native crash would show as a signal, not kill pytest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from conftest import make_assistant

from rag.answer.assistant import Assistant, clean_question
from rag.apps.cli import main
from rag.errors import IndexCorruptError, IndexIncompatibleError, InputError, ModelError
from rag.generation import models
from rag.generation.llama import FakeGenerator
from rag.generation.prompts import REFUSALS
from rag.ingest.loaders import load_documents
from rag.ingest.store import CURRENT, live_generation, load_index
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever

ROOT = Path(__file__).resolve().parents[1]
RAG_BIN = ROOT / ".venv" / "bin" / "rag"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ---------------------------------------------------------------- helpers


def cli_env(settings, **extra) -> dict[str, str]:
    env = {
        "RAG_DOCS_DIR": str(settings.docs_dir),
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_CACHE_DIR": str(settings.cache_dir),
        "RAG_EMBEDDER": FakeEmbedder.name,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(settings, *args: str, **env):
    return CliRunner().invoke(main, list(args), env=cli_env(settings, **env))


def assert_one_line_error(result, *fix_words: str) -> str:
    """Exit status 1, no traceback, exactly one line on stderr, naming the fix."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in fix_words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def fake_gguf(tmp_path: Path) -> Path:
    """Has the GGUF magic, so it passes the cheap check; llama.cpp would refuse it."""
    p = tmp_path / "fake.gguf"
    p.write_bytes(b"GGUF" + os.urandom(256))
    return p


class Utf8Generator(FakeGenerator):
    """Counts tokens the way llama.cpp's tokenizer does: from the UTF-8 bytes, so text that cannot
    be encoded (a lone surrogate from a mis-decoded terminal argument) fails here as it would there."""

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.encode("utf-8")) // 4)


# ---------------------------------------------------------------- questions


@pytest.mark.parametrize("question", ["", "   ", "\n\t \r\n", "\x00\x07\x1b"])
def test_empty_question_is_refused_with_the_fix(corpus, question):
    assistant, gen = make_assistant(corpus, ["unused [1]."])
    with pytest.raises(InputError, match="type a question"):
        assistant.ask(question)
    assert gen.calls == []


@pytest.mark.parametrize("question", ["", "   \n "])
def test_cli_empty_question_is_one_line_and_exit_1(corpus, question):
    assert_one_line_error(run_cli(corpus, "ask", question), "question is empty")


def test_100k_character_question_is_trimmed_to_the_context_budget(corpus):
    words = ["drones", "France", "ministre", "production", "Fedorov", "volumes"]
    question = "Qui a annoncé la production commune de drones ? " + " ".join(words[i % len(words)] + str(i) for i in range(20_000))
    question = question[:100_000]
    assert len(question) == 100_000
    assistant, gen = make_assistant(corpus, ["Le ministre Fedorov a annoncé la production commune de drones avec la France."])
    answer = assistant.ask(question)
    # Answered with a citation or refused cleanly (its 20,000 junk words name every fact the answer holds).
    assert bool(answer.citations) != answer.refused and answer.text
    prompt = gen.calls[-1]
    used = sum(gen.count_tokens(m["content"]) + 8 for m in prompt)
    assert used + corpus.max_answer_tokens <= gen.n_ctx, "prompt plus answer must fit the context window"
    user = prompt[-1]["content"]
    assert "Qui a annoncé la production commune de drones" in user
    assert len(user) < 40_000, "the question is trimmed, not passed whole"
    assert "Fedorov" in user, "the document text survives the long question"


def test_100k_question_through_the_cli_does_not_crash(corpus, tmp_path, monkeypatch):
    """`rag ask` with a 100,000-character argument: answered with the real build_assistant, only the
    generator swapped for the fake."""
    monkeypatch.setattr("rag.generation.llama.LlamaGenerator", lambda *a, **k: FakeGenerator(["Le ministre Fedorov a annoncé la production commune de drones avec la France."]))
    result = run_cli(corpus, "ask", "--json", "production " * 10_000, RAG_MODEL=fake_gguf(tmp_path))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["citations"] and not out["refused"]


CONTROL_QUESTION = "Qui\x00 est le\x1b[31m ministre\x07 de la\x7f défense\x85 \x9b Umerov\u0000 ?"


def test_control_characters_never_reach_the_model(corpus):
    assistant, gen = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense."])
    answer = assistant.ask(CONTROL_QUESTION)
    assert not answer.refused
    user = gen.calls[-1][-1]["content"]
    # Not splitlines(): it would split at some of the very characters under test (\x1c-\x1f, \x85).
    question_part = re.search(r"^Question: (.*)$", user, re.M).group(1)
    bad = [hex(ord(c)) for c in question_part if unicodedata.category(c) == "Cc"]
    assert bad == [], f"control characters reached the prompt: {bad}"
    assert "ministre" in question_part and "Umerov" in question_part
    assert all(unicodedata.category(c) != "Cc" for c in answer.question)
    assert min(answer.retrieved, key=lambda h: h.rank).chunk.source == "beta.md"


def test_undecodable_terminal_bytes_do_not_crash(corpus):
    """A question argv with invalid UTF-8 arrives as lone surrogates (surrogateescape); encoding it
    for the tokenizer must not raise."""
    gen = Utf8Generator(["Rustem Umerov est le ministre de la défense."])
    assistant = Assistant(Retriever(corpus.index_dir, FakeEmbedder()), gen, corpus)
    answer = assistant.ask("Qui est le ministre Umerov \udcff\udcfe ?")
    assert not answer.refused
    gen.calls[-1][-1]["content"].encode("utf-8")


def test_clean_question_output_is_valid_utf8():
    clean_question("caf\udce9 ?").encode("utf-8")


@pytest.mark.parametrize("question", [
    "Что сказал Fedorov про 无人机 и drones en France ?",
    "ministre 🇺🇦 défense Умеров Umerov ؟ 防务",
    "‮Umerov‬ ministre\u200b défense",  # bidi overrides and a zero-width space
])
def test_mixed_scripts_are_answered(corpus, question):
    assistant, gen = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense."])
    answer = assistant.ask(question)
    assert answer.text and not answer.refused and answer.citations
    assert answer.language  # detection did not fail
    json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- top-k


def test_top_k_zero_refuses_without_calling_the_model(corpus):
    assistant, gen = make_assistant(corpus, ["should not be used [1]."])
    answer = assistant.ask("Qui est Umerov ?", top_k=0)
    assert answer.refused and answer.text in REFUSALS.values()
    assert gen.calls == []


def test_top_k_larger_than_the_corpus_uses_every_chunk(corpus):
    assistant, gen = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense."])
    n = len(load_index(corpus.index_dir).chunks)
    assert len(assistant.retriever.search("Qui est Umerov ?", 10_000)) == n
    answer = assistant.ask("Qui est Umerov ?", top_k=10_000)
    assert not answer.refused and answer.citations


def test_cli_negative_top_k_is_one_line(corpus, tmp_path):
    assert_one_line_error(run_cli(corpus, "ask", "--top-k", "-1", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "--top-k")


def test_cli_top_k_zero_prints_a_refusal(corpus, tmp_path):
    result = run_cli(corpus, "ask", "--top-k", "0", "--json", "Qui est Umerov ?", RAG_MODEL=fake_gguf(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["refused"] is True


# ---------------------------------------------------------------- documents


def make_deep(root: Path, depth: int, leaf: str, text: str) -> None:
    """depth nested folders d/d/d/... built through directory fds, so paths longer than PATH_MAX
    can be created."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w", encoding="utf-8") as f:
            f.write(text)
    finally:
        os.close(fd)


def remove_deep(root: Path, depth: int, leaf: str) -> None:
    """Iterative removal (shutil.rmtree recurses, and pytest's cleanup would hit the same limit)."""
    fds = [os.open(root, os.O_RDONLY)]
    try:
        for _ in range(depth):
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        os.unlink(leaf, dir_fd=fds[-1])
        for parent in reversed(fds[:-1]):
            os.close(fds.pop())
            os.rmdir("d", dir_fd=parent)
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def deep_docs(tmp_path: Path, depth: int, top: tuple[str, str], leaf: str, text: str) -> Iterator[Path]:
    """A docs folder holding the file top (name, text) and leaf depth folders down; removed after."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / top[0]).write_text(top[1], encoding="utf-8")
    make_deep(docs, depth, leaf, text)
    try:
        yield docs
    finally:
        remove_deep(docs, depth, leaf)


def test_folder_nested_deeper_than_the_recursion_limit_is_indexed(tmp_path):
    depth = sys.getrecursionlimit() + 100
    with deep_docs(tmp_path, depth, ("top.txt", "top level text"), "deep.txt",
                   "The deepest document mentions the Zorblax protocol.") as docs:
        report = load_documents(docs)
        paths = [d.path for d in report.documents]
        assert "top.txt" in paths
        assert any(p.endswith("/deep.txt") and p.count("/") == depth for p in paths), report.skipped


def test_path_longer_than_path_max_is_reported_not_lost_silently(tmp_path):
    depth = 2100  # "d/" * 2100 is over Linux's 4096-byte PATH_MAX
    with deep_docs(tmp_path, depth, ("ok.txt", "fine"), "lost.txt", "unreachable by path") as docs:
        report = load_documents(docs)
        assert [d.path for d in report.documents] == ["ok.txt"]
        assert any("unreadable" in reason and ("too long" in reason.lower()) for _, reason in report.skipped), report.skipped


def test_symlink_loops_terminate_and_are_reported(tmp_path):
    docs = tmp_path / "docs"
    (docs / "a").mkdir(parents=True)
    (docs / "a" / "doc.txt").write_text("real text", encoding="utf-8")
    (docs / "a" / "up").symlink_to(docs, target_is_directory=True)
    (docs / "a" / "self").symlink_to(docs / "a", target_is_directory=True)
    (docs / "x.txt").symlink_to(docs / "y.txt")
    (docs / "y.txt").symlink_to(docs / "x.txt")
    report = load_documents(docs)
    assert [d.path for d in report.documents] == ["a/doc.txt"]
    reasons = dict(report.skipped)
    assert set(reasons) == {"a/up", "a/self", "x.txt", "y.txt"}
    assert "not followed" in reasons["a/up"]
    assert "symbolic links" in reasons["x.txt"]


def unreadable_cases(docs: Path) -> dict[str, str]:
    """Files that cannot be read even by root, with a word their skip reason must contain."""
    cases = {}
    (docs / "dangling.txt").symlink_to(docs / "no-such-target.txt")
    cases["dangling.txt"] = "broken link"
    os.mkfifo(docs / "pipe.txt")  # opening a FIFO for reading would block forever
    cases["pipe.txt"] = "not a regular file"
    # A regular file whose read fails with EIO, for any user.
    (docs / "mem.txt").symlink_to("/proc/self/mem")
    cases["mem.txt"] = "unreadable"
    return cases


def test_unreadable_files_are_skipped_with_a_reason(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("good text", encoding="utf-8")
    cases = unreadable_cases(docs)
    report = load_documents(docs)
    assert [d.path for d in report.documents] == ["good.txt"]
    reasons = dict(report.skipped)
    for rel, word in cases.items():
        assert word in reasons.get(rel, ""), (rel, reasons)


@pytest.mark.skipif(IS_ROOT, reason="root reads chmod 000 files; test_unreadable_files_are_skipped_with_a_reason "
                                    "covers unreadable files with a FIFO, a dangling link and /proc/self/mem")
def test_permission_denied_file_and_folder_are_reported(tmp_path):
    docs = tmp_path / "docs"
    (docs / "locked").mkdir(parents=True)
    (docs / "locked" / "inside.txt").write_text("hidden", encoding="utf-8")
    (docs / "secret.txt").write_text("secret", encoding="utf-8")
    (docs / "good.txt").write_text("good", encoding="utf-8")
    os.chmod(docs / "secret.txt", 0)
    os.chmod(docs / "locked", 0)
    try:
        report = load_documents(docs)
    finally:
        os.chmod(docs / "locked", 0o755)
        os.chmod(docs / "secret.txt", 0o644)
    reasons = dict(report.skipped)
    assert [d.path for d in report.documents] == ["good.txt"]
    assert "permission" in reasons["secret.txt"].lower()
    assert "folder unreadable" in reasons["locked"]


def test_utf16_bom_with_broken_body_does_not_abort_the_run(tmp_path):
    (tmp_path / "odd.txt").write_bytes(b"\xff\xfe" + "Bonjour".encode("utf-16-le") + b"\x00")  # odd length
    (tmp_path / "surrogate.txt").write_bytes(b"\xff\xfe" + "Salut ".encode("utf-16-le") + b"\x00\xd8")
    (tmp_path / "ok.txt").write_text("fine", encoding="utf-8")
    report = load_documents(tmp_path)
    docs = {d.path: d.text for d in report.documents}
    assert "ok.txt" in docs
    assert docs["odd.txt"].startswith("Bonjour") and docs["surrogate.txt"].startswith("Salut")


def mixed_folder(docs: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A folder of good files in awkward encodings and bad files; returns (good rel -> a phrase
    the text must contain, bad rel -> a word its skip reason must contain)."""
    good = {
        "latin1.txt": ("Le ministère de la Défense français coopère.", "latin-1"),
        "cp1252.txt": ("L’armée reçoit des drones — 40 € pièce.", "cp1252"),
        "bom.md": ("\ufeff# Titre\n\nLe système SAMP-T protège le ciel.", "utf-8"),
        "deep/er/nested.html": ("<html><body><p>Brave1 finance la défense.</p></body></html>", "utf-8"),
    }
    for rel, (text, enc) in good.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_bytes(text.encode(enc))
    bad = {"empty.txt": "empty", "blank.md": "empty", "image.txt": "binary", "program.html": "binary"}
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_bytes(b" \n\t\n")
    (docs / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    (docs / "program.html").write_bytes(Path(sys.executable).resolve().read_bytes()[:65536])
    phrases = {"latin1.txt": "ministère de la Défense", "cp1252.txt": "L’armée reçoit des drones — 40 €",
               "bom.md": "SAMP-T", "deep/er/nested.html": "Brave1 finance"}
    return phrases, bad


def test_cli_index_of_a_messy_folder_warns_once_per_bad_file_and_keeps_every_good_one(settings):
    phrases, bad = mixed_folder(settings.docs_dir)
    bad.update(unreadable_cases(settings.docs_dir))
    result = run_cli(settings, "index")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped ")]
    assert len(warnings) == len(bad), warnings
    for rel, word in bad.items():
        line = next(w for w in warnings if w.startswith(f"warning: skipped {rel}: "))
        assert word in line, line
    data = load_index(settings.index_dir, FakeEmbedder.name)
    assert set(data.manifest.files) == set(phrases), "every good file indexed, nothing else"
    texts = {}
    for c in data.chunks:
        texts[c.source] = texts.get(c.source, "") + c.text
    for rel, phrase in phrases.items():
        assert phrase in texts[rel], (rel, texts[rel])
    assert "\ufeff" not in "".join(texts.values())


def test_file_over_the_size_limit_is_skipped_with_the_setting_to_raise(settings):
    (settings.docs_dir / "ok.txt").write_text("small file about drones", encoding="utf-8")
    line = "La production commune de drones progresse à Kiev et à Paris.\n"
    (settings.docs_dir / "huge.txt").write_text(line * (21_000_000 // len(line) + 1), encoding="utf-8")
    assert (settings.docs_dir / "huge.txt").stat().st_size > 20 * 1024 * 1024
    result = run_cli(settings, "index")  # default RAG_MAX_FILE_MB=20
    assert result.exit_code == 0, result.output
    warning = next(w for w in result.stderr.splitlines() if "huge.txt" in w)
    assert "larger than 20 MB" in warning and "RAG_MAX_FILE_MB" in warning
    assert set(load_index(settings.index_dir).manifest.files) == {"ok.txt"}


@pytest.mark.slow  # about a minute: 20 MB of text is ~30,000 chunks to tokenize, embed and BM25-index
def test_a_20_mb_file_is_indexed_when_the_limit_allows_it(settings):
    parts, size, i = [], 0, 0
    while size < 20 * 1024 * 1024:
        sentence = f"Le rapport numéro {i} décrit la livraison de {i % 97} drones à la brigade {i % 13}.\n"
        parts.append(sentence)
        size += len(sentence.encode("utf-8"))
        i += 1
    last = i - 1
    text = "".join(parts).rstrip()
    (settings.docs_dir / "big.txt").write_text(text, encoding="utf-8")
    assert 20 * 1024 * 1024 <= (settings.docs_dir / "big.txt").stat().st_size < 21 * 1024 * 1024
    result = run_cli(settings, "index", RAG_MAX_FILE_MB=25)
    assert result.exit_code == 0, result.output
    data = load_index(settings.index_dir, FakeEmbedder.name)
    assert data.manifest.files["big.txt"]["chunks"] == data.manifest.n_chunks > 10_000
    assert data.chunks[-1].end == len(text), "the whole file is covered"
    hits = Retriever(settings.index_dir, FakeEmbedder()).search(f"rapport numéro {last}", 3)
    assert any(f"numéro {last} " in h.chunk.text for h in hits)


# ---------------------------------------------------------------- empty corpus


def test_cli_empty_corpus_is_one_line(settings):
    assert_one_line_error(run_cli(settings, "index"), "no indexable text", "add .txt")


def test_cli_corpus_of_only_bad_files_says_why(settings):
    (settings.docs_dir / "empty.txt").write_bytes(b"")
    (settings.docs_dir / "blob.md").write_bytes(bytes(range(256)) * 8)
    line = assert_one_line_error(run_cli(settings, "index"), "no indexable text")
    assert "empty.txt: empty" in line and "blob.md: binary" in line


def test_cli_missing_docs_folder_is_one_line(settings, tmp_path):
    assert_one_line_error(run_cli(settings, "index", "--docs", str(tmp_path / "nope")), "--docs")


def test_emptied_corpus_keeps_the_previous_index(corpus):
    live = live_generation(corpus.index_dir)
    for p in corpus.docs_dir.iterdir():
        p.unlink()
    assert_one_line_error(run_cli(corpus, "index"), "no indexable text")
    assert load_index(corpus.index_dir, FakeEmbedder.name).path == live


def test_cli_index_into_a_file_is_one_line(settings, tmp_path):
    (settings.docs_dir / "a.txt").write_text("text", encoding="utf-8")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(run_cli(settings, "index", "--index", str(blocker)), "--index")


# ---------------------------------------------------------------- index


def test_cli_ask_without_an_index_says_run_rag_index(settings, tmp_path):
    assert_one_line_error(run_cli(settings, "ask", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "rag index")


def corrupt(gen: Path, victim: str, how: str) -> None:
    path = gen / victim
    if path.is_dir():  # bm25: damage every file of it
        for p in path.iterdir():
            corrupt(path, p.name, how)
        return
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()


@pytest.mark.parametrize("how", ["truncate", "garbage", "empty", "delete"])
@pytest.mark.parametrize("victim", ["manifest.json", "chunks.jsonl", "vectors.faiss", "bm25"])
def test_cli_damaged_index_is_one_line_and_the_next_index_repairs_it(corpus, tmp_path, victim, how):
    corrupt(live_generation(corpus.index_dir), victim, how)
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "rag index")
    result = run_cli(corpus, "index")
    assert result.exit_code == 0, result.output
    assert load_index(corpus.index_dir, FakeEmbedder.name).manifest.n_chunks > 0


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage", b"../../../etc", b"gen-1/../../x"])
def test_damaged_current_pointer_is_reported_and_repaired(corpus, tmp_path, content):
    (corpus.index_dir / CURRENT).write_bytes(content)
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "rag index")
    assert run_cli(corpus, "index").exit_code == 0
    load_index(corpus.index_dir, FakeEmbedder.name)


@pytest.mark.parametrize("manifest", ["[]", "null", "42", '"text"', "{}"])
def test_manifest_that_is_not_an_object_is_corrupt(corpus, manifest):
    (live_generation(corpus.index_dir) / "manifest.json").write_text(manifest)
    with pytest.raises((IndexCorruptError, IndexIncompatibleError), match="rag index --rebuild"):
        load_index(corpus.index_dir, FakeEmbedder.name)


def test_cli_other_format_version_says_rebuild_and_index_rebuilds(corpus, tmp_path):
    gen = live_generation(corpus.index_dir)
    raw = json.loads((gen / "manifest.json").read_text())
    (gen / "manifest.json").write_text(json.dumps({**raw, "format_version": 99}))
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "format version 99", "rag index --rebuild")
    result = run_cli(corpus, "index")
    assert result.exit_code == 0 and "2 added" in result.stdout, result.output
    assert load_index(corpus.index_dir, FakeEmbedder.name).manifest.format_version == 1


def test_cli_other_embedder_says_rebuild_and_index_rebuilds(corpus, tmp_path):
    gen = live_generation(corpus.index_dir)
    raw = json.loads((gen / "manifest.json").read_text())
    (gen / "manifest.json").write_text(json.dumps({**raw, "embedder": "all-MiniLM-L6-v2"}))
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "embedder", "rag index --rebuild")
    result = run_cli(corpus, "index")
    assert result.exit_code == 0 and "2 added" in result.stdout, result.output
    assert load_index(corpus.index_dir, FakeEmbedder.name).manifest.embedder == FakeEmbedder.name


# ---------------------------------------------------------------- model


def test_cli_missing_model_file_is_one_line(corpus, tmp_path):
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=tmp_path / "nope.gguf"), "does not exist")


def test_cli_file_that_is_not_gguf_is_one_line(corpus, tmp_path):
    p = tmp_path / "weights.gguf"
    p.write_bytes(b"PK\x03\x04 not a model")
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=p), "not a GGUF file")


def test_cli_unknown_model_name_is_one_line(corpus):
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL="gpt-17"), "unknown model", "default")


def test_preset_is_assembled_verified_and_reused(tiny_preset, tmp_path):
    preset, _, blob = tiny_preset
    path = models.ensure_preset(preset, tmp_path / "cache")
    assert path.read_bytes() == blob and models.is_verified(path, preset)
    mtime = path.stat().st_mtime_ns
    assert models.ensure_preset(preset, tmp_path / "cache") == path and path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "same-size-other-bytes", "bad-stamp"])
def test_corrupted_cache_is_reassembled(tiny_preset, tmp_path, damage):
    preset, _, blob = tiny_preset
    path = models.ensure_preset(preset, tmp_path / "cache")
    assembled_ns = path.stat().st_mtime_ns
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "delete":
        path.unlink()
    elif damage == "same-size-other-bytes":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "bad-stamp":
        path.with_suffix(".verified.json").write_text("{not json")
    if path.exists() and damage != "bad-stamp":
        # Damage happens later than the assembly; file timestamps are too coarse to show that by
        # themselves when both fall in the same clock tick.
        os.utime(path, ns=(assembled_ns + 10**9, assembled_ns + 10**9))
    assert models.ensure_preset(preset, tmp_path / "cache") == path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == preset.sha256
    assert models.is_verified(path, preset)
    assert not list(path.parent.glob(".*.tmp")), "no half-written file left behind"


def test_corrupt_parts_are_refused_and_never_published(tiny_preset, tmp_path):
    preset, parts, _ = tiny_preset
    data = parts[1].read_bytes()
    parts[1].write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(ModelError, match="corrupt.*reinstall"):
        models.ensure_preset(preset, tmp_path / "cache")
    folder = tmp_path / "cache" / "models"
    assert not (folder / preset.filename).exists()
    assert not list(folder.glob(".*.tmp"))


def test_missing_part_package_names_the_install_command(tmp_path):
    preset = models.Preset(name="ghost", filename="ghost.gguf", size=1, sha256="0" * 64,
                           parts=(("rag-test-no-such-distribution", "x.bin"),), install_hint="run scripts/setup.sh")
    with pytest.raises(ModelError, match="not installed.*scripts/setup.sh"):
        models.ensure_preset(preset, tmp_path)


def test_unwritable_model_cache_is_a_model_error(tiny_preset, tmp_path):
    preset, _, _ = tiny_preset
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    with pytest.raises(ModelError, match="RAG_CACHE_DIR"):
        models.ensure_preset(preset, cache)


def garbage_ggufs(tmp_path: Path) -> list[Path]:
    out = []
    for name, data in {
        "random.gguf": b"GGUF" + os.urandom(4096),
        "zeros.gguf": b"GGUF\x03\x00\x00\x00" + b"\x00" * 4096,
        "huge-counts.gguf": b"GGUF\x03\x00\x00\x00" + (2**62).to_bytes(8, "little") * 2 + os.urandom(512),
        "header-only.gguf": b"GGUF",
    }.items():
        (tmp_path / name).write_bytes(data)
        out.append(tmp_path / name)
    return out


def truncated_real_model(tmp_path: Path) -> Path | None:
    """The first MB of the bundled model: a valid header whose tensors lie beyond the end of file."""
    try:
        part = models.part_paths(models.PRESETS["default"])[0]
    except ModelError:
        return None
    p = tmp_path / "truncated.gguf"
    with open(part, "rb") as f:
        p.write_bytes(f.read(1 << 20))
    return p


LOAD_SCRIPT = """
import sys
from rag.errors import ModelError
from rag.generation.llama import LlamaGenerator
try:
    LlamaGenerator(sys.argv[1], n_ctx=512, n_threads=1).count_tokens("hello")
except ModelError as e:
    print("MODEL_ERROR", str(e).replace(chr(10), " "))
    sys.exit(3)
print("LOADED")
"""


@pytest.mark.slow  # llama.cpp in five processes, one on the real model's first MB
def test_gguf_that_fails_to_load_is_a_model_error_not_a_crash(tmp_path):
    pytest.importorskip("llama_cpp")
    files = garbage_ggufs(tmp_path)
    real = truncated_real_model(tmp_path)
    files += [real] if real else []
    for path in files:
        proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3, (path.name, proc.returncode, proc.stdout, proc.stderr[-2000:])
        assert "MODEL_ERROR" in proc.stdout and "could not load" in proc.stdout and "--model" in proc.stdout


@pytest.mark.skipif(not RAG_BIN.exists(), reason="needs the installed console script")
@pytest.mark.slow  # the real `rag ask` and llama.cpp in a process
def test_rag_ask_with_a_broken_gguf_exits_1_with_one_line(corpus, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + os.urandom(8192))
    env = {**os.environ, **cli_env(corpus, RAG_MODEL=bad)}
    proc = subprocess.run([str(RAG_BIN), "ask", "Qui est Umerov ?"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "could not load" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- eval files


def test_cli_eval_with_a_messy_question_file_warns_and_runs_the_rest(corpus, tmp_path):
    """Malformed lines, duplicate ids and unknown sources are one warning line each; every valid
    question is still run and recorded."""
    pytest.importorskip("rag.measure.evaluate")
    good = [
        {"id": "a", "question": "Qui est Umerov ?", "answerable": True, "keywords": ["Umerov"], "sources": ["beta.md"]},
        {"id": "b", "question": "Quelles bombes sont produites ?", "answerable": True, "sources": ["alpha.txt"]},
        {"id": "a", "question": "Duplicate id, still a question about drones ?", "answerable": True, "sources": ["alpha.txt"]},
        {"id": "c", "question": "Qui a signé des contrats ?", "answerable": True, "sources": ["nowhere/missing.txt"]},
        {"id": "d", "question": "x\x00\x1b[2J " + "défense " * 12_000, "answerable": True, "sources": ["beta.md"]},
    ]
    lines = [json.dumps(good[0], ensure_ascii=False), "{not json", "[1, 2, 3]", '{"id": "e"}', "",
             *(json.dumps(q, ensure_ascii=False) for q in good[1:]), '{"id": "f", "question": "   "}']
    qfile = tmp_path / "questions.jsonl"
    qfile.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8"))
    out = tmp_path / "run"
    result = run_cli(corpus, "eval", str(qfile), "--retrieval-only", "--out", str(out), RAG_MODEL=fake_gguf(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    warnings = [w for w in result.stderr.splitlines() if w.startswith("warning: ")]
    assert any("line 2" in w for w in warnings) and any("line 3" in w for w in warnings)
    assert any("line 4" in w for w in warnings), "a line without a question is reported"
    assert any("duplicate id" in w for w in warnings)
    assert any("nowhere/missing.txt" in w for w in warnings), "unknown sources are warned"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(good), [r["id"] for r in records]
    assert len({r["id"] for r in records}) == len(good)
    assert all(r["answer"] is not None for r in records), [r["metrics"] for r in records]
    assert (out / "summary.json").is_file() and (out / "report.html").is_file()


def test_cli_eval_with_a_non_utf8_question_file_is_one_line(corpus, tmp_path):
    pytest.importorskip("rag.measure.evaluate")
    qfile = tmp_path / "q.jsonl"
    qfile.write_bytes('{"id": "a", "question": "Qui est le ministre de la Défense ?"}'.encode("cp1252"))
    assert_one_line_error(run_cli(corpus, "eval", str(qfile), "--out", str(tmp_path / "o"), RAG_MODEL=fake_gguf(tmp_path)), "UTF-8")


# ---------------------------------------------------------------- the web chat and the real model


def test_chat_reports_bad_questions_in_one_line_and_answers_long_ones(corpus):
    ui = pytest.importorskip("rag.apps.web")
    assistant, _ = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense."])
    service = ui.ChatService(assistant, corpus)
    for bad in ("", "   ", "\x00\x1b"):
        *_, (_, messages, _, session) = service.respond(bad, None)
        shown = messages[-1]["content"]
        assert shown.startswith("⚠️") and "question" in shown and "\n" not in shown, shown
        assert all(t.answer is None for t in session.turns) and session.history() == []
    *_, (_, messages, panel, session) = service.respond("Qui est le ministre Umerov ? " + "défense " * 12_000, None)
    assert "Umerov" in messages[-1]["content"] and "⚠️" not in messages[-1]["content"]
    with pytest.raises(Exception, match="question is empty"):
        service.ask("  ")


@pytest.mark.slow
def test_real_model_answers_or_refuses_a_100k_character_question(seed_index):
    """The budget is counted with the model's own tokenizer: the prompt must fit the context."""
    from rag.answer.assistant import build_assistant
    from rag.config import Settings

    assistant = build_assistant(Settings.from_env(index_dir=seed_index))
    filler = " ".join(f"Ukraine France production {i} армія 防务 défense" for i in range(4000))
    question = ("Quel type de document l'Ukraine et la France ont-elles signé ? " + filler)[:100_000]
    answer = assistant.ask(question)
    assert answer.text.strip()
    assert answer.refused or answer.citations
    stats = answer.timings
    assert stats["prompt_tokens"] + assistant.settings.max_answer_tokens <= assistant.generator.n_ctx


@pytest.mark.parametrize("victim", ["vectors.faiss", "chunks.jsonl", "bm25"])
def test_a_single_changed_byte_is_detected_not_served(corpus, tmp_path, victim):
    """Damage that keeps every file parseable (one byte of a vector, one letter of a chunk's text)
    would silently change answers; the manifest's checksums catch it."""
    gen = live_generation(corpus.index_dir)
    path = gen / victim
    if path.is_dir():
        path = max(path.iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    if victim == "chunks.jsonl":
        at = data.index("ministre".encode())
        data[at] = ord("M")  # still valid UTF-8 and JSON, only the text changed
    else:
        data[len(data) - 5] ^= 0x01  # inside the data, past any header
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"damaged.*rag index --rebuild"):
        load_index(corpus.index_dir, FakeEmbedder.name)
    assert_one_line_error(run_cli(corpus, "ask", "Qui ?", RAG_MODEL=fake_gguf(tmp_path)), "rag index --rebuild")
    assert run_cli(corpus, "index").exit_code == 0
    assert "ministre" in "".join(c.text for c in load_index(corpus.index_dir, FakeEmbedder.name).chunks)


def test_an_index_written_before_checksums_still_loads(corpus):
    gen = live_generation(corpus.index_dir)
    raw = json.loads((gen / "manifest.json").read_text())
    del raw["checksums"]
    (gen / "manifest.json").write_text(json.dumps(raw))
    assert load_index(corpus.index_dir, FakeEmbedder.name).manifest.checksums == {}
