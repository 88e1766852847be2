"""How an answer was made (the model's own, a quote, a refusal), which check decided, and the
ablation `rag eval` derives from it."""

import pytest

from rag.answer.check import CHECKS, check, enabled_checks
from rag.errors import ConfigError
from rag.generation.prompts import Prompt
from rag.measure.metrics import Question, ablation, score, summarize
from rag.measure.questions import QuestionSet, select_split
from rag.retrieval.ranking import Sentence
from rag.schema import Chunk, Hit

TEXT = "Le ministre Fedorov a annoncé la production de 500 drones en 2024."
HIT = Hit(Chunk("a.txt#0", "a.txt", 0, len(TEXT), TEXT), 1.0, 1)
PROMPT = Prompt([], [HIT], [Sentence(HIT, 0, len(TEXT), TEXT, 1.0)])
QUESTION = "Combien de drones le ministre Fedorov a-t-il annoncés en 2024 ?"


def test_a_grounded_answer_is_the_models_own():
    verdict = check(QUESTION, "Le ministre a annoncé 500 drones.", PROMPT, "fr", "fr")
    assert verdict.outcome == "direct" and verdict.decided_by is None and "[1]" in verdict.text


def test_an_invented_fact_is_quoted_over_and_the_check_is_named():
    verdict = check(QUESTION, "Le ministre a annoncé 900 avions Rafale.", PROMPT, "fr", "fr")
    assert verdict.outcome == "quote" and "500 drones" in verdict.text
    assert verdict.decided_by in CHECKS and verdict.decided_by in verdict.failed


def test_a_models_refusal_is_decided_by_the_model():
    verdict = check(QUESTION, "NOT FOUND", PROMPT, "fr", "fr")
    assert verdict.refused and verdict.outcome == "refusal" and verdict.decided_by == "model"


def test_checks_switched_off_keep_the_models_answer():
    verdict = check(QUESTION, "Le ministre a annoncé 900 avions Rafale.", PROMPT, "fr", "fr", enabled_checks("none"))
    assert verdict.outcome == "direct" and "900" in verdict.text


def test_without_the_quote_fallback_a_failed_answer_is_refused():
    verdict = check(QUESTION, "Le ministre a annoncé 900 avions Rafale.", PROMPT, "fr", "fr", enabled_checks("all,-quote"))
    assert verdict.outcome == "refusal" and verdict.refused


@pytest.mark.parametrize("spec, expected", [
    ("all", set(CHECKS)), ("none", set()), ("grounded,kind", {"grounded", "kind"}),
    ("all,-kind", set(CHECKS) - {"kind"}), ("", set(CHECKS)),
])
def test_check_specs(spec, expected):
    assert enabled_checks(spec) == expected


def test_an_unknown_check_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown answer check 'kindd'.*known: all, none"):
        enabled_checks("kindd")


def _record(answerable, outcome, failed, passed_final, raw, keywords=("drones",)):
    q = Question("q", "?", keywords=keywords if answerable else (), answerable=answerable)
    answer = {"answer": "Les documents disent : « 500 drones » [1]" if passed_final and answerable else "NOT FOUND",
              "refused": not (passed_final and answerable), "outcome": outcome, "checks_failed": failed,
              "decided_by": failed[0] if failed else None, "citations": [], "retrieved": [], "timings": {}}
    return {"question": q.to_dict(), "metrics": score(q, answer, raw)}


def test_ablation_counts_what_each_check_made_right_and_wrong():
    records = [
        # kind alone turned down a right answer and a quote replaced it rightly: neither right nor wrong made
        _record(True, "quote", ["kind"], True, "500 drones"),
        # kind alone turned down a wrong answer, refused: still wrong either way
        _record(True, "refusal", ["kind"], False, "900 avions"),
        # grounded alone turned down a right answer into a refusal: made it wrong
        _record(True, "refusal", ["grounded"], False, "500 drones"),
        # grounded alone turned down an answer to an unanswerable question: made it right
        _record(False, "refusal", ["grounded"], True, "Il y a 900 avions."),
        # two checks failed: dropping either alone changes nothing
        _record(True, "refusal", ["kind", "about"], False, "500 drones"),
    ]
    a = ablation(records)
    assert a["kind"] == {"decided": 2, "made_right": 0, "made_wrong": 0}
    assert a["grounded"] == {"decided": 2, "made_right": 1, "made_wrong": 1}
    assert a["quote"] == {"decided": 1, "made_right": 1, "made_wrong": 0}
    assert "about" not in a
    s = summarize(records)
    assert s["quote_rate"] == 0.25 and s["refusal_rate"] == 0.75 and s["direct_answer_rate"] == 0.0


def test_ablation_counts_what_the_judge_made_right_and_wrong():
    def judged(answerable, quote):
        q = Question("q", "?", keywords=("drones",) if answerable else (), answerable=answerable)
        answer = {"answer": "NOT FOUND", "refused": True, "outcome": "refusal", "checks_failed": ["kind"],
                  "decided_by": "judge", "citations": [], "retrieved": [], "timings": {"judge_refused": quote}}
        return {"question": q.to_dict(), "metrics": score(q, answer, "900 avions")}

    records = [judged(False, "Les usines ont grandi."),  # an unanswerable question refused: made right
               judged(True, "Il a annoncé 500 drones."),  # a right quote refused: made wrong
               judged(True, "Les usines ont grandi.")]  # a wrong quote refused: wrong either way
    assert ablation(records)["judge"] == {"decided": 3, "made_right": 1, "made_wrong": 1}


def test_ablation_weighs_an_overruled_answer_against_what_replaced_it():
    # The judge overruled the model's own answer (checks_failed ["judge"]); without it the answer stands.
    def overruled(answerable, raw, final, refused_quote=None):
        q = Question("q", "?", keywords=("drones",) if answerable else (), answerable=answerable)
        timings = {"judge_overruled": raw, **({"judge_refused": refused_quote} if refused_quote else {})}
        answer = {"answer": final, "refused": final == "NOT FOUND", "outcome": "refusal" if final == "NOT FOUND" else "direct",
                  "checks_failed": ["judge"], "decided_by": "judge", "citations": [], "retrieved": [], "timings": timings}
        return {"question": q.to_dict(), "metrics": score(q, answer, raw)}

    records = [overruled(True, "Il a annoncé 900 avions.", "Il a annoncé 500 drones."),  # the second model right: made right
               overruled(True, "Il a annoncé 500 drones.", "NOT FOUND"),  # a right answer lost: made wrong
               # an invented answer to an unanswerable question refused, its quote refused too: counted once
               overruled(False, "Les usines ont produit 900 avions.", "NOT FOUND", "Les usines ont grandi.")]
    assert ablation(records)["judge"] == {"decided": 3, "made_right": 2, "made_wrong": 1}


def test_a_split_selects_its_questions_and_a_missing_one_says_how_to_fix_it(tmp_path):
    qs = [Question("a", "?", extra={"split": "dev"}), Question("b", "?", extra={"split": "test"})]
    qset = QuestionSet(tmp_path / "q.jsonl", qs)
    assert [q.id for q in select_split(qset, "dev").questions] == ["a"]
    assert len(select_split(qset, "all").questions) == 2
    with pytest.raises(Exception, match='no question with "split": "dev"'):
        select_split(QuestionSet(tmp_path / "q.jsonl", [Question("c", "?")]), "dev")


def test_the_second_models_answers_are_counted():
    q = Question("q", "?", keywords=("drones",))
    def record(used):
        answer = {"answer": "500 drones [1]", "refused": False, "outcome": "direct", "citations": [], "retrieved": [],
                  "timings": {"second_s": 1.0, "second_used": used} if used is not None else {}}
        return {"question": q.to_dict(), "metrics": score(q, answer, "500 drones")}
    records = [record(True), record(False), record(None), record(None)]
    assert [r["metrics"]["second_asked"] for r in records] == [True, True, False, False]
    assert summarize(records)["second_answer_rate"] == 0.25
