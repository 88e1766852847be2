import pytest

from rag.measure.metrics import (
    Question,
    answer_tokens,
    citation_scores,
    contains_keyword,
    detects_refusal,
    missing_keywords,
    normalize,
    percentile,
    retrieval_scores,
    same_source,
    score,
    summarize,
    token_f1,
)


def test_normalize_folds_case_accents_and_french_punctuation():
    assert normalize("L’Armée « française », d'Ukraine !") == "l armee francaise d ukraine"
    assert normalize("  SAMP-T\u00a0et\tCrotale… ") == "samp t et crotale"


def test_answer_tokens_drop_articles_elisions_and_citation_markers():
    assert answer_tokens("La production commune [1].") == ["production", "commune"]
    assert answer_tokens("l’échange d'expertises des armées [2][3]") == ["echange", "expertises", "armees"]
    assert answer_tokens("The aircraft deliveries") == ["aircraft", "deliveries"]


@pytest.mark.parametrize("prediction, reference, expected", [
    ("Les bombes AASM Hammer [1].", "bombes aériennes AASM Hammer", 2 * 1 * 0.75 / 1.75),
    ("l'échange d'expertises", "Echange expertises.", 1.0),
    ("Rien à voir.", "Catherine Vautrin", 0.0),
    ("", "", 1.0),
    ("[1]", "Vautrin", 0.0),
])
def test_token_f1(prediction, reference, expected):
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_keywords_ignore_case_and_accents_and_accept_alternatives():
    assert contains_keyword("Catherine VAUTRIN s'est rendue à Kiev.", "vautrin")
    assert contains_keyword("dans le domaine des donnees", "Données|data")
    assert contains_keyword("operational from March 2026 [1]", "mars|March")
    assert not contains_keyword("operational from April 2026", "mars|March")
    assert contains_keyword("Ils ont signé une lettre d’intention.", "intent")
    assert contains_keyword("des drones de combat", "drone")
    assert contains_keyword("production commune", "production  commune|joint production")


def test_keywords_match_at_word_starts_and_numbers_whole():
    assert not contains_keyword("the brand-new hammerhead", "head")
    assert contains_keyword("multipliée par 6 en 2024", "six|6")
    assert not contains_keyword("opérationnelle en 2026", "six|6")
    assert not contains_keyword("plus de 60 entreprises", "6")
    # A citation marker's number is not an answer.
    assert not contains_keyword("Selon le document [6], la production augmente.", "6")
    assert missing_keywords("Fedorov sur Telegram [1]", ["Fedorov", "Telegram", "Facebook", "||"]) == ["Facebook"]


@pytest.mark.parametrize("text, flag, expected", [
    ("", False, True),
    ("NOT FOUND", False, True),
    ("Les documents ne contiennent pas la réponse à cette question.", False, True),
    ("The documents do not mention the price of the contract.", False, True),
    ("Je ne sais pas.", False, True),
    ("Cette information n’est pas précisée dans les documents.", False, True),
    ("Umerov [2].", True, True),
    ("Rustem Umerov est le ministre de la défense [2].", False, False),
    ("L'Ukraine ne voulait pas dépendre uniquement de l'aide militaire [2].", False, False),
    ("Le montant n'est pas précisé, mais l'accord porte sur 100 Rafale [1].", False, False),
    # A compound question answered in one part and not the other is answered.
    ("Rheinmetall AG, pour l'entretien [2]. The documents do not say: what does it cost?", False, False),
])
def test_refusal_detection(text, flag, expected):
    assert detects_refusal(text, flag) is expected


def test_sources_match_by_path_or_file_name_only():
    assert same_source("000_x.txt", "000_x.txt")
    assert same_source("000_x.txt", "sub/000_x.txt")
    assert same_source("seeds/000_x.txt", "000_x.txt")
    assert same_source("./a/b.md", "a/b.md")
    assert not same_source("a.txt", "b.txt")


def _passage(source: str, rank: int) -> dict:
    return {"source": source, "rank": rank, "text": "...", "start": 0, "end": 3}


def test_retrieval_scores_use_retrieval_rank_not_prompt_order():
    # The prompt lists passages in document order; rank says where retrieval put them.
    answer = {"retrieved": [_passage("a.txt", 3), _passage("b.txt", 1), _passage("c.txt", 2)]}
    s = retrieval_scores(answer, ["c.txt", "z.txt"])
    assert s == {"hit": True, "recall": 0.5, "rr": 0.5, "first_gold_rank": 2}
    assert retrieval_scores(answer, ["z.txt"])["rr"] == 0.0


def test_citation_scores_check_raw_markers_and_cited_files():
    answer = {"retrieved": [_passage("a.txt", 1), _passage("b.txt", 2)],
              "citations": [{"n": 1, "source": "a.txt"}, {"n": 2, "source": "b.txt"}]}
    s = citation_scores(answer, "Vrai [1][2]. Faux [5] et [Document 0].", ["a.txt"])
    assert s["invalid_markers"] == [0, 5] and s["citation_valid"] is False
    assert s["citation_precision"] == 0.5 and s["citation_recall"] == 1.0
    assert citation_scores(answer, "Vrai [1].", [])["citation_precision"] is None


def _answer(text: str, refused: bool = False, sources=("a.txt",), cited=("a.txt",), total_s=1.0) -> dict:
    return {"answer": text, "refused": refused, "retrieved": [_passage(s, i) for i, s in enumerate(sources, start=1)],
            "citations": [{"n": i, "source": s} for i, s in enumerate(cited, start=1)],
            "timings": {"retrieval_ms": 5.0, "ttft_s": 0.5, "total_s": total_s, "decode_tps": 20.0,
                        "prompt_tokens": 100, "completion_tokens": 10}}


def test_score_one_question():
    q = Question("q1", "Qui ?", answer="Catherine Vautrin", keywords=("Vautrin",), sources=("a.txt",))
    good = score(q, _answer("C'est Catherine Vautrin [1]."), "C'est Catherine Vautrin [1].", answer_lang="fr", expected_lang="fr")
    assert good["passed"] and good["correct"] and good["hit"] and good["f1"] == pytest.approx(2 / 3, abs=1e-4)
    refused = score(q, _answer("Les documents ne contiennent pas la réponse à cette question.", refused=True, cited=()))
    assert not refused["passed"] and refused["refused"] and "refused an answerable question" in refused["reasons"]
    wrong = score(q, _answer("C'est Fedorov [1]."), answer_lang="en", expected_lang="fr")
    assert not wrong["passed"] and wrong["missing_keywords"] == ["Vautrin"] and wrong["lang_match"] is False

    u = Question("u1", "Combien ?", answerable=False)
    assert score(u, _answer("NOT FOUND", refused=True, cited=()))["passed"]
    bad = score(u, _answer("Cent millions [1]."))
    assert not bad["passed"] and "answered a question the documents cannot answer" in bad["reasons"]
    assert score(q, None, error="boom")["reasons"] == ["error: boom"]


def test_summarize_hand_made_run():
    qa = Question("a", "?", answer="Vautrin", keywords=("Vautrin",), sources=("a.txt",))
    qb = Question("b", "?", answer="Umerov", keywords=("Umerov",), sources=("b.txt",))
    qu = Question("u", "?", answerable=False)
    records = [
        {"question": qa.to_dict(), "metrics": score(qa, _answer("Vautrin [1].", total_s=1.0), answer_lang=None)},
        {"question": qb.to_dict(), "metrics": score(qb, _answer("NOT FOUND", refused=True, cited=(), total_s=3.0))},
        {"question": qu.to_dict(), "metrics": score(qu, _answer("Vautrin [1].", total_s=2.0))},
    ]
    s = summarize(records)
    assert (s["n"], s["n_answerable"], s["n_unanswerable"]) == (3, 2, 1)
    assert s["hit_at_k"] == 0.5 and s["mrr"] == 0.5
    assert s["answer_accuracy"] == 0.5 and s["false_refusal_rate"] == 0.5
    assert s["refusal_rate_unanswerable"] == 0.0
    assert s["citation_precision"] == 1.0 and s["citation_recall"] == 1.0
    assert s["latency_p50_s"] == 2.0 and s["pass_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["decode_tps_p50"] == 20.0
    only = summarize(records, retrieval_only=True)
    assert only["hit_at_k"] == 0.5 and only["answer_accuracy"] is None and only["latency_p50_s"] is None


def test_decode_rate_ignores_replies_too_short_to_measure():
    q = Question("a", "?", keywords=("x",))
    short, long = _answer("NOT FOUND", refused=True, cited=()), _answer("x y z")
    short["timings"].update(completion_tokens=2, decode_tps=0.4)
    long["timings"].update(completion_tokens=30, decode_tps=22.0)
    records = [{"question": q.to_dict(), "metrics": score(q, a)} for a in (short, long, short)]
    assert summarize(records)["decode_tps_p50"] == 22.0


def test_percentile_interpolates():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile(range(1, 21), 95) == pytest.approx(19.05)
    assert percentile([None, 7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_support_checks_the_passages_hold_the_facts():
    q = Question("q", "?", answer="Mistral et Crotale", keywords=("Mistral", "Crotale|Crotal"), sources=("a.txt",))
    answer = _answer("Mistral [1].")
    answer["retrieved"][0]["text"] = "des missiles sol-air Mistral et…"
    m = score(q, answer, retrieval_only=True)
    assert m["hit"] and m["support"] is False and not m["passed"]
    assert "retrieved passages lack: Crotale|Crotal" in m["reasons"]
    answer["retrieved"][0]["text"] += " Crotale"
    assert score(q, answer, retrieval_only=True)["passed"]
    assert summarize([{"question": q.to_dict(), "metrics": score(q, answer)}])["support_at_k"] == 1.0
