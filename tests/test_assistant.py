import pytest

from rag.errors import InputError
from rag.prompts import SYSTEM_PROMPT, refusal_text
from rag.schema import Answer

from conftest import make_assistant


def test_answer_cites_the_passage_that_says_it(corpus):
    assistant, gen = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense [2]. Inventé [9]."])
    answer = assistant.ask("Qui est le ministre de la défense ?")
    assert not answer.refused
    assert "[9]" not in answer.text and "Umerov" in answer.text
    assert [c.n for c in answer.citations] == [2]  # passages are numbered in file order: alpha [1], beta [2]
    cited = answer.citations[0]
    doc = (corpus.docs_dir / cited.source).read_text(encoding="utf-8")
    assert "Umerov" in doc[cited.start : cited.end] == cited.text
    # The model saw the question, in French, with the passage numbered [1].
    prompt = gen.calls[0]
    assert prompt[0]["content"] == SYSTEM_PROMPT
    assert "Qui est le ministre de la défense ?" in prompt[-1]["content"]
    assert "Answer in French" in prompt[-1]["content"]
    assert f"[2] (from {cited.source})" in prompt[-1]["content"] and cited.source == "beta.md"


def test_refusal_is_plain_in_the_question_language_and_cites_nothing(corpus):
    assistant, _ = make_assistant(corpus, ["NOT FOUND"])
    pieces = list(assistant.stream("What is the population of Mars?"))
    answer = pieces[-1]
    assert isinstance(answer, Answer) and answer.refused and answer.citations == ()
    assert answer.text == refusal_text("en")
    assert "".join(p for p in pieces[:-1]) == refusal_text("en")
    fr = make_assistant(corpus, ["NOT FOUND"])[0].ask("Quelle est la population de Mars ?")
    assert fr.text == refusal_text("fr")


def test_streamed_text_is_the_final_answer_without_invented_markers(corpus):
    assistant, _ = make_assistant(corpus, ["Les bombes AASM Hammer [1] [3] sont produites."])
    items = list(assistant.stream("Quelles bombes sont produites ?"))
    streamed = "".join(i for i in items if isinstance(i, str))
    answer = items[-1]
    assert "[3]" not in streamed and "[3]" not in answer.text
    assert all(1 <= c.n <= len(answer.retrieved) for c in answer.citations)


def test_top_k_zero_refuses_without_calling_the_model(corpus):
    assistant, gen = make_assistant(corpus, ["should not be used [1]"])
    answer = assistant.ask("Qui est le ministre ?", top_k=0)
    assert answer.refused and gen.calls == []


@pytest.mark.parametrize("question", ["", "   \n\t", "\x00\x01"])
def test_empty_question_is_a_clear_error(corpus, question):
    assistant, _ = make_assistant(corpus, ["x"])
    with pytest.raises(InputError, match="question is empty"):
        assistant.ask(question)


def test_timings_and_json_shape(corpus):
    assistant, _ = make_assistant(corpus, ["Umerov [1]."])
    out = assistant.ask("Umerov ?").to_dict()
    assert set(out) >= {"question", "answer", "refused", "citations", "retrieved", "model", "timings"}
    assert set(out["timings"]) >= {"retrieval_ms", "ttft_s", "total_s", "prompt_tokens", "completion_tokens",
                                   "prefill_tps", "decode_tps"}
    assert set(out["citations"][0]) == {"n", "source", "start", "end", "text"}
    assert set(out["retrieved"][0]) == {"rank", "source", "chunk_id", "start", "end", "score", "text"}
