import numpy as np
import pytest

from rag.ingest.bm25 import LexicalIndex
from rag.retrieval.embedders import FakeEmbedder
from rag.retrieval.search import Retriever, score_fuse
from rag.text.lexical import fold, tokenize


def test_score_fusion_rewards_agreement_between_rankings():
    fused = score_fuse([[(1, 0.9), (2, 0.8), (3, 0.1)], [(3, 5.0), (1, 4.0), (4, 1.0)]], [0.5, 0.5])
    ids = [i for i, _ in fused]
    assert ids[0] == 1 and set(ids) == {1, 2, 3, 4}
    assert all(a[1] >= b[1] for a, b in zip(fused, fused[1:]))


def test_score_fusion_keeps_a_clear_lead_that_rank_fusion_loses():
    # Lexically far ahead of everything, tenth for the embedder: rank fusion (1/61 + 1/70) would put
    # it behind the items ranked 2nd and 3rd by both (1/62 + 1/63).
    dense = [(i, 0.63 - 0.03 * i) for i in range(10)] + [(10, 0.33)]
    dense[9], dense[10] = (10, 0.36), (9, 0.33)
    lexical = [(10, 3.0), (1, 1.4), (2, 1.3), (3, 0.7), (0, 0.2)]
    top = [i for i, _ in score_fuse([dense, lexical], [0.5, 0.5])[:4]]
    assert 10 in top


def test_lexical_weight_follows_the_share_of_known_query_terms(corpus):
    r = Retriever(corpus.index_dir, FakeEmbedder())
    lex: LexicalIndex = r.data.lexical
    assert lex.known_share("drones") == 1.0
    assert lex.known_share("zzzqx drones") == 0.5
    assert lex.known_share("the of") == 0.0


def test_french_normalisation_folds_case_accents_elisions_and_stopwords():
    assert fold("Défense ÉTÉ") == "defense ete"
    toks = tokenize("L’armée d'Ukraine qu'elle a la défense", "fr")
    assert "l" not in toks and "d" not in toks and "qu" not in toks
    assert "la" not in toks and "elle" not in toks
    assert tokenize("défenses", "fr") == tokenize("Defense", "fr")
    assert tokenize("armées", "fr") == tokenize("l'armée", "fr")
    # Elisions by their spelling, in any language that writes them; English possessives stay whole.
    assert tokenize("dell'anno", "it") == tokenize("anno", "it") and tokenize("jusqu'au front", "fr") == tokenize("front", "fr")
    assert tokenize("the company's plan", "en") == tokenize("company plan", "en")


def test_search_finds_the_passage_by_words_and_ranks_are_dense(corpus):
    r = Retriever(corpus.index_dir, FakeEmbedder())
    hits = r.search("Qui est le ministre de la défense Umerov ?", 3)
    assert hits[0].chunk.source == "beta.md"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert hits[0].lexical_score and hits[0].lexical_score > 0


def test_top_k_zero_and_larger_than_corpus(corpus):
    r = Retriever(corpus.index_dir, FakeEmbedder())
    assert r.search("drones", 0) == []
    hits = r.search("drones", 1000)
    assert len(hits) == len(r.data.chunks)


def test_retriever_picks_up_a_new_index_generation(corpus):
    from rag.ingest.indexing import build_index

    r = Retriever(corpus.index_dir, FakeEmbedder())
    before = len(r.data.chunks)
    (corpus.docs_dir / "new.txt").write_text("Le système SAMP-T protège le ciel.", encoding="utf-8")
    build_index(corpus, FakeEmbedder())
    assert len(r.data.chunks) == before + 1
    assert r.search("SAMP-T", 1)[0].chunk.source == "new.txt"


def test_a_question_is_embedded_once_per_answer(corpus):
    """Retrieval and sentence ranking share the query's vector: a second embedding is 10-15 ms of
    every time to first token."""
    from conftest import make_assistant

    assistant, _ = make_assistant(corpus, ["Fedorov a annoncé la production commune de drones."])
    embedder = assistant.retriever.embedder
    assistant.ask("Qui a annoncé la production commune de drones ?")
    asked = [texts for texts in embedder.calls if "Qui a annoncé la production commune de drones ?" in texts]
    assert len(asked) == 1, embedder.calls


def test_without_a_memo_every_search_embeds_its_query(corpus):
    embedder = FakeEmbedder()
    r = Retriever(corpus.index_dir, embedder, query_memo=0)
    r.search("drones", 2), r.search("drones", 2)
    assert embedder.calls.count(["drones"]) == 2
    memo = Retriever(corpus.index_dir, embedder)
    memo.search("drones", 2), memo.search("drones", 2)
    assert embedder.calls.count(["drones"]) == 3


def test_search_within_one_file(corpus):
    r = Retriever(corpus.index_dir, FakeEmbedder())
    assert {h.chunk.source for h in r.search("ministre drones contrats", 10)} == {"alpha.txt", "beta.md"}
    hits = r.search("ministre drones contrats", 10, source="beta.md")
    assert hits and {h.chunk.source for h in hits} == {"beta.md"}
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_an_index_built_by_the_other_local_graph_is_queried_with_that_graph(tmp_path):
    """After the default embedder changed (float -> int8 MiniLM), an index built before keeps
    answering with the graph that built it; one built by a model not bundled is left to the
    mismatch error."""
    import dataclasses
    import json

    from rag.config import Settings
    from rag.ingest.store import live_generation
    from rag.retrieval.embedders import E5_NAME, INT8_NAME, LOCAL_NAMES
    from rag.retrieval.remote import embedder_for_index

    index = tmp_path / "index"
    gen = index / "gen-1"
    gen.mkdir(parents=True)
    (index / "CURRENT").write_text("gen-1")
    settings = Settings(index_dir=index, cache_dir=tmp_path / "cache", embedder=INT8_NAME)
    assert live_generation(index) == gen
    for built, expected in [(LOCAL_NAMES[0], LOCAL_NAMES[0]), (INT8_NAME, INT8_NAME), (E5_NAME, E5_NAME),
                            ("fake-hash", INT8_NAME)]:
        from rag.ingest.store import FORMAT_VERSION

        (gen / "manifest.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "embedder": built}))
        assert embedder_for_index(settings).name == expected, built
    # No index yet: the embedder settings ask for.
    assert embedder_for_index(dataclasses.replace(settings, index_dir=tmp_path / "none")).name == INT8_NAME


def test_section_titles_are_each_documents_own_and_follow_a_rebuild(corpus):
    from rag.ingest.indexing import build_index

    retriever = Retriever(corpus.index_dir, FakeEmbedder())
    assert retriever.section_titles("beta.md") == frozenset()  # nothing loaded yet: none, and nothing loaded for it
    retriever.search("contrats", 2)
    assert retriever.section_titles("beta.md") == frozenset({"Contrats"})
    assert retriever.section_titles("alpha.txt") == frozenset()
    (corpus.docs_dir / "beta.md").write_text("# Accords\n\nDes accords ont été signés.\n\n## Drones\n\nDes drones.", encoding="utf-8")
    build_index(corpus, FakeEmbedder())
    assert retriever.section_titles("beta.md") == frozenset({"Contrats"})  # the generation answered from
    retriever.search("accords", 2)
    assert retriever.section_titles("beta.md") == frozenset({"Accords", "Drones"})


def test_dense_relevance_counts_above_what_any_passage_of_the_index_gets(corpus):
    """An embedder whose unrelated texts score high (multilingual e5: about 0.8) says so with `centred`:
    its similarity counts above the index's mean, scaled to what is left up to 1, never below 0, the
    order of the sentences kept. Any other embedder's similarity (MiniLM's, which the ranking was tuned
    with) is left as it is."""
    from conftest import make_assistant

    assistant, _ = make_assistant(corpus, [])
    retriever = assistant.retriever
    question = "Qui est le ministre de la défense ?"
    retriever.search(question, 2)  # loads the index
    q = retriever.query_vector(question)
    base = retriever.unrelated_similarity(q)
    assert base == pytest.approx(float((np.asarray(retriever.data.vectors) @ q).mean()), abs=1e-6) and 0 < base < 1
    texts = ["Rustem Umerov est le ministre de la défense.", "Le ministre parle.", "Des bombes."]
    raw = [float(v @ q) for v in retriever.embedder.embed(texts)]
    assert assistant.relevance(question, texts) == pytest.approx(raw, abs=1e-6)  # not centred: raw
    retriever.embedder.centred = True
    centred = assistant.relevance(question, texts)
    assert raw[0] > base and centred[0] == pytest.approx((raw[0] - base) / (1 - base), abs=1e-6)
    assert raw[2] < base and centred[2] == 0.0  # below what any passage gets: nothing, not a negative score
    assert sorted(range(3), key=lambda i: -centred[i]) == sorted(range(3), key=lambda i: -raw[i])


def test_a_question_is_embedded_as_a_query_and_the_passages_as_passages(corpus):
    """An embedder with distinct query and passage inputs (e5's prefixes) gets the question through
    embed_query, and the sentences ranked against it through embed; any other embeds both alike."""
    from conftest import make_assistant

    from rag.retrieval.embedders import embed_queries

    assistant, _ = make_assistant(corpus, [])
    fake = assistant.retriever.embedder
    assert np.array_equal(embed_queries(fake, ["a b"]), fake.embed(["a b"]))
    queried = []

    def embed_query(texts):
        queried.extend(texts)
        return fake.embed(texts)

    fake.embed_query = embed_query
    question = "Qui est le ministre de la défense ?"
    assistant.retriever.search(question, 2)
    fake.calls.clear()
    assistant.relevance(question, ["Rustem Umerov est le ministre de la défense."])
    assert queried == [question]
    assert fake.calls == [["Rustem Umerov est le ministre de la défense."]]
