import pytest
from conftest import make_assistant, write_doc

from rag.errors import InputError
from rag.generation.prompts import SYSTEM_PROMPT, refusal_text
from rag.schema import Answer, Chunk, Hit


def test_answer_is_cited_by_the_passage_that_supports_it(corpus):
    # The model's own markers are never trusted: [9] does not exist, [1] would name the wrong file.
    assistant, gen = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense [1]. [9]"])
    answer = assistant.ask("Qui est le ministre de la défense ?")
    assert not answer.refused
    assert "[9]" not in answer.text and "Umerov" in answer.text
    assert len(answer.citations) == 1
    cited = answer.citations[0]
    assert answer.text == f"Rustem Umerov est le ministre de la défense [{cited.n}]."
    doc = (corpus.docs_dir / cited.source).read_text(encoding="utf-8")
    assert cited.source == "beta.md" and "Umerov" in doc[cited.start : cited.end] == cited.text
    # The model saw the question, in French, with the sentence that answers it as context.
    prompt = gen.calls[0]
    assert prompt[0]["content"] == SYSTEM_PROMPT
    assert prompt[-1]["content"].index("Rustem Umerov est le ministre") < prompt[-1]["content"].index(
        "Question: Qui est le ministre de la défense ?")
    assert "in French" in prompt[-1]["content"]


def test_an_answer_that_only_restates_the_question_is_replaced_by_the_evidence(corpus):
    assistant, _ = make_assistant(corpus, ["Le ministre de la défense est le ministre de la défense."])
    items = list(assistant.stream("Qui est le ministre de la défense ?"))
    answer = items[-1]
    assert not answer.refused and "Rustem Umerov est le ministre de la défense" in answer.text
    assert answer.text.startswith("Les documents indiquent") and answer.citations[0].source == "beta.md"
    assert any(type(i).__name__ == "Replace" and i == answer.text for i in items), "front ends are told to replace"


def test_an_invented_fact_is_not_passed_off_as_an_answer(corpus):
    assistant, _ = make_assistant(corpus, ["Le président de la Banque mondiale est Jean Dupont en 1987."])
    answer = assistant.ask("Qui préside la Banque mondiale ?")
    assert answer.refused and answer.citations == ()


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
    assistant, _ = make_assistant(corpus, ["Les bombes AASM Hammer [1] [3] sont produites en volumes records."])
    items = list(assistant.stream("Quelles bombes sont produites ?"))
    streamed = "".join(i for i in items if isinstance(i, str))
    answer = items[-1]
    assert "[3]" not in streamed and "[3]" not in answer.text
    assert streamed == answer.text == f"Les bombes AASM Hammer sont produites en volumes records [{answer.citations[0].n}]."
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
    assistant, _ = make_assistant(corpus, ["Rustem Umerov est le ministre."])
    out = assistant.ask("Umerov ?").to_dict()
    assert set(out) >= {"question", "answer", "refused", "citations", "retrieved", "model", "timings"}
    assert set(out["timings"]) >= {"retrieval_ms", "ttft_s", "total_s", "prompt_tokens", "completion_tokens",
                                   "prefill_tps", "decode_tps"}
    assert set(out["citations"][0]) == {"n", "source", "start", "end", "text", "page", "page_end", "section", "location"}
    assert set(out["retrieved"][0]) == {"rank", "source", "chunk_id", "start", "end", "score", "text", "page", "page_end", "section"}


def test_a_true_sentence_that_is_not_about_the_question_is_not_an_answer(corpus):
    # Copying a context sentence that holds no fact of the kind asked for ("how many") is the
    # small model's way of answering what the documents do not say.
    assistant, _ = make_assistant(corpus, ["L'Ukraine a signé des dizaines de contrats avec des partenaires occidentaux."])
    answer = assistant.ask("Combien de bombes AASM Hammer sont produites chaque mois ?")
    assert answer.refused and not answer.citations and answer.text == refusal_text("fr")


def test_a_capitalised_common_word_is_not_the_name_a_question_asks_for(corpus):
    write_doc(corpus, "gamma.txt", "Le ministre de la Défense a parlé. La défense aérienne est renforcée.")
    assistant, _ = make_assistant(corpus, ["Le ministre de la Défense dirige les bombes AASM Hammer."])
    answer = assistant.ask("Qui dirige la production des bombes AASM Hammer ?")
    assert answer.refused, answer.text


def test_a_quoted_sentence_brings_the_sentence_that_says_what_it_is_about(corpus):
    write_doc(corpus, "gamma.txt", "L'initiative Brave1 France-Ukraine accélère les projets communs. "
                                   "Elle sera opérationnelle dès mars 2026.")
    assistant, _ = make_assistant(corpus, ["Je ne sais pas vraiment, peut-être bientôt."])
    answer = assistant.ask("Quand l'initiative Brave1 France-Ukraine sera-t-elle opérationnelle ?")
    assert not answer.refused and answer.citations[0].source == "gamma.txt"
    assert "L'initiative Brave1 France-Ukraine accélère les projets communs. Elle sera opérationnelle dès mars 2026." in answer.text


def test_an_answer_joining_a_sentence_and_its_continuation_is_kept(corpus):
    # The subject is in one sentence, the date in the next, which goes on from it (a quotation about
    # it): the model's own answer stands, cited, instead of a quote of the two sentences.
    write_doc(corpus, "gamma.txt", "L'initiative Brave1 France-Ukraine accélère les projets communs. "
                                   "« Elle sera opérationnelle dès mars 2026 », a précisé le ministère.")
    reply = "The Brave1 France-Ukraine initiative is due to become operational in March 2026."
    assistant, _ = make_assistant(corpus, [reply])
    answer = assistant.ask("When is the Brave1 France-Ukraine initiative due to become operational?")
    assert answer.text == reply.replace(".", " [1].") and answer.citations[0].source == "gamma.txt", answer.text


def test_a_who_questions_verb_is_found_by_its_stem_in_the_documents_language(corpus):
    # "signed" (English stem "sign") is "signé" (French stem "sign"): neither a cognate prefix nor a lemma.
    write_doc(corpus, "gamma.txt", "En novembre, Volodymyr Zelensky et Emmanuel Macron avaient signé une déclaration commune.")
    reply = "Volodymyr Zelensky and Emmanuel Macron signed the declaration in November."
    assistant, _ = make_assistant(corpus, [reply])
    answer = assistant.ask("Who signed the declaration in November?")
    assert not answer.refused and answer.text == reply.replace(".", " [1].") and answer.citations[0].source == "gamma.txt"


def test_sentence_vectors_are_embedded_once(corpus):
    assistant, _ = make_assistant(corpus, ["Rustem Umerov est le ministre de la défense."])
    embedder = assistant.retriever.embedder
    first = assistant.relevance("Qui est le ministre ?", ["Rustem Umerov est le ministre.", "Les bombes Hammer."])
    embedder.calls.clear()
    again = assistant.relevance("Qui est le ministre ?", ["Les bombes Hammer.", "Rustem Umerov est le ministre."])
    assert embedder.calls == [] and again == first[::-1]
    assistant.relevance("Une autre question ?", ["Les bombes Hammer."])
    assert embedder.calls == [["Une autre question ?"]]


def test_no_quote_about_something_the_documents_never_name(corpus):
    write_doc(corpus, "gamma.txt", "La production nationale est devenue d'une importance capitale pour le pays.")
    assistant, _ = make_assistant(corpus, ["La capitale de l'Australie est Sydney."])
    answer = assistant.ask("Quelle est la capitale de l'Australie ?")
    assert answer.refused and not answer.citations, answer.text


FACTORY = ("En 2023, l'usine de Tarbes a produit 12 400 moteurs électriques. "
           "En 2024, la production de l'usine de Tarbes a atteint 15 900 moteurs électriques grâce à une deuxième ligne d'assemblage.")


def test_a_fact_told_with_the_words_of_another_sentence_is_not_kept(corpus):
    # The 2023 figure in the wording of the 2024 sentence: each part is in the context, the whole is made up.
    write_doc(corpus, "usine.txt", FACTORY)
    assistant, _ = make_assistant(corpus, ["L'usine a produit 12 400 moteurs électriques grâce à une deuxième ligne d'assemblage."])
    answer = assistant.ask("Combien de moteurs électriques l'usine de Tarbes a-t-elle produits en 2024 ?")
    assert "15 900" in answer.text and "12 400" not in answer.text, answer.text
    assert answer.citations[0].source == "usine.txt"


def test_who_questions_need_a_sentence_saying_what_is_asked_of_the_person(corpus):
    write_doc(corpus, "gamma.txt", "Ukroboronprom a reçu la visite de Rustem Umerov, ministre de la défense.")
    assistant, _ = make_assistant(corpus, ["Rustem Umerov dirige Ukroboronprom."])
    answer = assistant.ask("Qui dirige Ukroboronprom ?")
    assert answer.refused and not answer.citations, answer.text
    write_doc(corpus, "gamma.txt", "Ukroboronprom est dirigé depuis 2023 par Herman Smetanin.")
    assistant, _ = make_assistant(corpus, ["Herman Smetanin dirige Ukroboronprom."])
    answer = assistant.ask("Qui dirige Ukroboronprom ?")
    assert not answer.refused and "Smetanin" in answer.text and answer.citations[0].source == "gamma.txt"


def test_an_answer_resting_on_a_lower_ranked_sentence_gives_way_to_the_best_one():
    from rag.answer.check import check
    from rag.generation.prompts import Prompt
    from rag.retrieval.ranking import Sentence

    best = "La coopération se traduira concrètement par l'échange d'expertises entre les armées."
    other = "La coopération se traduira aussi par des livraisons de drones aux armées."
    text = f"{best} {other}"
    hit = Hit(Chunk("d.txt#0", "d.txt", 0, len(text), text), 1.0, 1)
    question = "En quoi la coopération entre les armées se traduira-t-elle ?"

    def shown(other_score: float) -> str:
        context = [Sentence(hit, 0, len(best), best, 1.0), Sentence(hit, len(best) + 1, len(text), other, other_score)]
        return check(question, other, Prompt([], [hit], context), "fr", "fr")[0]

    assert "expertises" in shown(0.5) and "drones" not in shown(0.5)
    assert "drones" in shown(0.95)


def test_a_quote_is_the_whole_quotation_most_about_the_question(corpus):
    # The best-ranked sentence shares the question's names; the quotation says what was asked.
    write_doc(corpus, "gamma.txt", "La ministre Vautrin a annoncé une lettre d'intention sur le co-développement. "
                                   "« Nous avons décidé de faire du co-développement et de la co-production. "
                                   "Très concrètement, cela peut se traduire par l'échange d'expertises » , a expliqué Mme Vautrin.")
    assistant, _ = make_assistant(corpus, ["Je ne sais pas vraiment."])
    answer = assistant.ask("Selon Mme Vautrin, en quoi le co-développement et la co-production peuvent-ils se traduire concrètement ?")
    assert not answer.refused and answer.citations[0].source == "gamma.txt"
    assert "« Nous avons décidé de faire du co-développement et de la co-production. Très concrètement" in answer.text
    assert "l'échange d'expertises » , a expliqué Mme Vautrin. » [1]" in answer.text
