"""Compound questions: split by grammar, each part answered in turn, one answer with one numbering."""

from conftest import make_assistant

from rag.answer.compound import per_document, split_compound, standalone_part
from rag.generation.prompts import part_refusal, refusal_text
from rag.schema import Answer


def test_a_second_interrogative_clause_after_a_conjunction_is_a_second_question():
    assert split_compound("Which team won the final, and who scored the goal?", "en") == [
        "Which team won the final?", "Who scored the goal?"]
    assert split_compound("Which minister signed the treaty, and on which platform?", "en") == [
        "Which minister signed the treaty?", "On which platform?"]
    assert split_compound("En quelle année le pont a-t-il ouvert et en quelle année a-t-il fermé ?", "fr") == [
        "En quelle année le pont a-t-il ouvert ?", "En quelle année a-t-il fermé ?"]
    assert split_compound("Quel document la ville a-t-elle signé avec Lyon, et lequel avec Nice ?", "fr") == [
        "Quel document la ville a-t-elle signé avec Lyon ?", "Lequel avec Nice ?"]
    assert split_compound("Quelle messagerie est utilisée pour les annonces, et par qui ?", "fr") == [
        "Quelle messagerie est utilisée pour les annonces ?", "Par qui ?"]


def test_an_imperative_asking_for_two_things_is_two_questions():
    assert split_compound("Name the bombs produced with France and the calibre of the shells made with US firms.", "en") == [
        "Name the bombs produced with France.", "Name the calibre of the shells made with US firms."]
    assert split_compound("Citez les bombes produites avec la France et le calibre des obus produits aux États-Unis ?", "fr") == [
        "Citez les bombes produites avec la France ?", "Citez le calibre des obus produits aux États-Unis ?"]
    # A complement shared by both objects keeps the question whole: "of the conference" is said once.
    for question in ("Give the date and the place of the conference.", "List the ministers who spoke and the cities"):
        assert split_compound(question, "en") == [question]


def test_a_short_later_part_is_asked_with_the_first_as_its_topic():
    parts = split_compound("Which minister announced the treaty, and on which platform?", "en")
    assert standalone_part(parts, 0) == "Which minister announced the treaty?"
    assert standalone_part(parts, 1) == "Which minister announced the treaty — on which platform?"
    parts = split_compound("Quel ministre a annoncé le traité, et quel budget la ville a-t-elle voté en 2020 ?", "fr")
    assert standalone_part(parts, 1) == "Quel budget la ville a-t-elle voté en 2020 ?", "a part naming its topic is kept"


def test_the_short_part_reaches_the_model_and_the_search_with_its_topic(corpus):
    assistant, gen = make_assistant(corpus, ["Le ministre Fedorov a annoncé la production commune de drones.",
                                             "Les bombes AASM Hammer sont produites en volumes records."])
    answer = assistant.ask("Quel ministre a annoncé la production commune de drones, et avec quel pays ?")
    assert len(gen.calls) == 2
    assert ("Question: Quel ministre a annoncé la production commune de drones — avec quel pays ?"
            in gen.calls[1][-1]["content"])
    assert "Fedorov" in answer.text


def test_one_question_stays_whole():
    for question, lang in [
        ("Who and when?", "en"),  # no part stands on its own
        ("Qui a signé et quand ?", "fr"),
        ("Which companies make shells and drones?", "en"),  # "and" joins two things, not two questions
        ("What is the capital of France?", "en"),
        ("Quelles bombes et quels missiles Kiev souhaite-t-elle ?", "fr"),
        ("Which team won, and who scored?", "de"),  # no grammar known for the language: left whole
    ]:
        assert split_compound(question, lang) == [question], question


def test_each_part_is_answered_and_cited_in_one_answer(corpus):
    assistant, gen = make_assistant(corpus, [
        "Le ministre Fedorov a annoncé la production commune de drones.",
        "Rustem Umerov est le ministre de la défense.",
    ])
    items, calls_at_first_piece = [], None
    for item in assistant.stream("Quel ministre a annoncé la production commune de drones, et qui est le ministre "
                                 "de la défense ?"):
        if calls_at_first_piece is None and isinstance(item, str):
            calls_at_first_piece = len(gen.calls)
        items.append(item)
    answer = items[-1]
    assert isinstance(answer, Answer) and not answer.refused
    # Two model calls, one a part; the second part names its own topic and is asked as written.
    assert len(gen.calls) == 2
    assert "Question: Quel ministre a annoncé la production commune de drones ?" in gen.calls[0][-1]["content"]
    assert "Question: Qui est le ministre de la défense ?" in gen.calls[1][-1]["content"]
    # One numbering over both parts' passages: each marker names the file that holds its fact.
    first, second = answer.text.split("Rustem")
    assert "Fedorov" in first and "Umerov" in "Rustem" + second
    by_n = {c.n: c for c in answer.citations}
    assert [c.source for c in answer.citations] == ["alpha.txt", "beta.md"]
    assert "Fedorov" in by_n[answer.citations[0].n].text and f"[{answer.citations[0].n}]" in first
    assert "Umerov" in by_n[answer.citations[1].n].text and f"[{answer.citations[1].n}]" in second
    ranks = [h.rank for h in answer.retrieved]
    assert ranks == list(range(1, len(ranks) + 1)) and len({h.chunk.id for h in answer.retrieved}) == len(ranks)
    # The first part streamed before the second was asked, and what was shown ends as the answer.
    pieces = [i for i in items[:-1] if isinstance(i, str)]
    assert calls_at_first_piece == 1 and "".join(pieces).strip() == answer.text
    assert answer.timings["ttft_s"] == answer.timings["parts"][0]["ttft_s"]


def test_a_part_the_documents_do_not_answer_is_named(corpus):
    assistant, _ = make_assistant(corpus, [
        "Le ministre Fedorov a annoncé la production commune de drones.",
        "NOT FOUND",
    ])
    answer = assistant.ask("Quel ministre a annoncé la production commune de drones, et quel est le prix du billet "
                           "de train pour Lyon ?")
    assert not answer.refused and "Fedorov" in answer.text
    assert answer.text.endswith(part_refusal("fr", "Quel est le prix du billet de train pour Lyon ?"))
    assert [c.source for c in answer.citations] == ["alpha.txt"]


def test_no_part_answered_is_one_plain_refusal(corpus):
    assistant, _ = make_assistant(corpus, ["NOT FOUND"])
    answer = assistant.ask("Which team won the league, and who won the cup?")
    assert answer.refused and answer.text == refusal_text("en") and answer.citations == ()


def test_the_same_answer_to_two_parts_is_said_once(corpus):
    reply = "Le ministre Fedorov a annoncé la production commune de drones."
    assistant, _ = make_assistant(corpus, [reply, reply])
    answer = assistant.ask("Quel ministre a annoncé la production commune de drones, et qui a parlé des drones ?")
    assert answer.text.count("Fedorov") == 1 and not answer.refused


def test_a_question_about_each_document_is_asked_without_the_words_pointing_at_them():
    assert per_document("Quels ministres sont cités respectivement dans les deux articles ?", "fr") == "Quels ministres sont cités ?"
    assert per_document("Which networks did the ministers quoted in the articles use?", "en") == "Which networks did the ministers quoted use?"
    assert per_document("What is said about drones in each report?", "en") == "What is said about drones?"
    # One document, or the documents as the subject: one question.
    assert per_document("Since when, according to the article on drones?", "en") is None
    assert per_document("What do the documents say about drones?", "en") is None
    assert per_document("Qui est cité dans l'article sur les contrats ?", "fr") is None


def test_each_document_answers_from_its_own_passages(corpus):
    assistant, gen = make_assistant(corpus, ["Le ministre Fedorov est cité.", "Rustem Umerov est le ministre de la défense."])
    answer = assistant.ask("Quel ministre est cité dans les deux documents ?")
    assert len(gen.calls) == 2
    contexts = [call[-1]["content"].split("Question:")[0] for call in gen.calls]
    assert "Fedorov" in contexts[0] + contexts[1] and "Umerov" in contexts[0] + contexts[1]
    assert not any("Fedorov" in c and "Umerov" in c for c in contexts), "each prompt holds one document"
    assert all("Question: Quel ministre est cité ?" in call[-1]["content"] for call in gen.calls)
    assert "Fedorov" in answer.text and "Umerov" in answer.text
    assert {c.source for c in answer.citations} == {"alpha.txt", "beta.md"}


def test_a_choice_question_names_its_alternatives():
    from rag.answer.compound import alternatives

    assert alternatives("Which happens later: the bridge opening, or the new tram line? Give both years.", "en") == [
        "the bridge opening", "the new tram line"]
    assert alternatives("Lequel est le plus ancien, le pont de pierre ou le tunnel routier ?", "fr") == [
        "le pont de pierre", "le tunnel routier"]
    # "or" inside a phrase is no choice, nor is an alternative without words of its own.
    assert alternatives("Quels contrats de production conjointe ou d'échange de technologies ont été signés ?", "fr") == []
    assert alternatives("Which is older, the bridge or it?", "en") == []
    assert alternatives("Name the bridge, or the tunnel.", "en") == []


def test_a_choice_question_gets_the_sentences_on_each_alternative(corpus):
    from test_assistant import write_doc

    from rag.generation.prompts import build_prompt

    write_doc(corpus, "ville.txt", "Le pont de pierre de la ville de Lyon a été ouvert sur le fleuve en 1820. "
                                   "Les marchés se tiennent chaque semaine. Le tunnel routier a ouvert en 1990.")
    assistant, gen = make_assistant(corpus, ["Le pont de pierre a ouvert en 1820, le tunnel routier en 1990."])
    question = "Lequel est le plus ancien : le pont de pierre de la ville de Lyon sur le fleuve, ou le tunnel routier ?"
    assistant.ask(question)
    assert "Le tunnel routier a ouvert en 1990." in gen.calls[0][-1]["content"]
    # The same passages under the usual score floor lose the sentence on the less-worded alternative.
    hits = assistant.retriever.search(question, corpus.top_k)
    usual = build_prompt(question, hits, "fr", len, 4096, 120, relevance=assistant.relevance, corpus_lang="fr")
    assert "Le tunnel routier a ouvert en 1990." not in usual.messages[-1]["content"]
