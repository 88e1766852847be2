from rag.answer.evidence import StreamCiter, cite
from rag.retrieval.ranking import sentences_of
from rag.schema import Chunk, Hit
from rag.text.sentences import ANSWER_ENDS, sentence_spans

TEXT = "Selon M. Fedorov, la coopération porte sur les drones. Le ministère a publié un communiqué."


def hits():
    return [Hit(Chunk("doc.txt#0", "doc.txt", 0, len(TEXT), TEXT), 1.0, 1)]


def streamed(pieces, context, passages, lang, question=""):
    """What StreamCiter makes of an answer arriving in these pieces, flushed at its end."""
    citer = StreamCiter(context, passages, lang, question)
    return "".join(citer.feed(p) for p in pieces) + citer.flush()


def test_an_abbreviation_ends_no_answer_sentence():
    answer = "Selon M. Fedorov, elle porte sur les drones. Le ministère a publié un communiqué."
    assert [answer[a:b].strip() for a, b in sentence_spans(answer, ANSWER_ENDS)] == [
        "Selon M. Fedorov, elle porte sur les drones.", "Le ministère a publié un communiqué."]


def test_citations_go_after_whole_sentences_streamed_or_not():
    h = hits()
    context = sentences_of(h)
    answer = "Selon M. Fedorov, elle porte sur les drones."
    assert cite(answer, context, h, "fr") == "Selon M. Fedorov, elle porte sur les drones [1]."
    assert streamed(["Selon M", ". Fed", "orov, elle porte", " sur les drones."], context, h, "fr") == \
        "Selon M. Fedorov, elle porte sur les drones [1]."


def test_a_sentence_continues_the_one_before_when_it_leans_on_it():
    from rag.retrieval.ranking import Sentence, continues

    def s(text):
        return Sentence(hits()[0], 0, len(text), text)

    assert continues(s("« Nous passons à la production commune » , a déclaré Mykhailo Fedorov sur Telegram."))
    assert continues(s(", a-t-il ajouté."))
    assert continues(s("(voir plus haut)"))
    # A lower-case start in any script: the sentence splitter cut inside a sentence.
    assert continues(s("sowie die Konfigurationsdatei."))
    assert continues(s("а также в марте."))
    assert not continues(s("В марте завод начнёт работу."))
    assert not continues(s("La France a annoncé en 2025 une aide de deux milliards d'euros."))
    assert not continues(s("Ukroboronprom a indiqué sur Telegram."))


def test_a_sentence_inside_a_quotation_continues_it_and_a_quote_runs_to_its_end():
    from rag.retrieval.ranking import continues, quotation

    text = ("Le ministère a publié un communiqué. « Nous avons décidé de faire du co-développement. "
            "Très concrètement, cela peut se traduire par l'échange d'expertises » , a expliqué Mme Vautrin. "
            "La France soutient l'Ukraine.")
    h = [Hit(Chunk("doc.txt#0", "doc.txt", 0, len(text), text), 1.0, 1)]
    said, opened, inside, after = sentences_of(h)
    assert said.text == "Le ministère a publié un communiqué."
    assert continues(inside) and not continues(after) and not continues(said)
    assert quotation(opened) == f"{opened.text} {inside.text}"  # to the closing », not beyond
    assert quotation(said) == said.text and quotation(inside) == inside.text
    text = '« Elle vise la maturation. Elle sera opérationnelle en 2026″ , est-il écrit. La France aide. "Nous aidons. Beaucoup", dit-il.'
    h = [Hit(Chunk("doc.txt#0", "doc.txt", 0, len(text), text), 1.0, 1)]
    first, closed, other, straight, said = sentences_of(h)
    assert quotation(first) == f"{first.text} {closed.text}" and quotation(straight) == f"{straight.text} {said.text}"
    assert not continues(other) and continues(said)


def test_a_sentence_is_cited_by_the_sentence_holding_the_facts_it_adds():
    from rag.answer.evidence import supporting_passages

    text = "Le ministre a annoncé la production commune. Ukroboronprom a indiqué sur sa messagerie Telegram que l'accord était signé."
    h = [Hit(Chunk("doc.txt#0", "doc.txt", 0, len(text), text), 1.0, 1)]
    context = sentences_of(h)
    question = "Which social networks did the ministers use for their announcements?"
    # Few shared words, but "Telegram", the fact it adds, is in the passage: cited.
    assert supporting_passages("The ministers used Telegram for their announcements.", context, h, "fr", question) == [1]
    # A fact the passage does not hold is not vouched for by it.
    assert supporting_passages("The ministers used Facebook for their announcements.", context, h, "fr", question) == []


def test_an_answer_is_grounded_on_the_words_of_its_facts_in_the_documents_language():
    from rag.answer.evidence import is_grounded

    text = "La France a annoncé en 2025 une aide de deux milliards d'euros pour renforcer les défenses ukrainiennes."
    context = sentences_of([Hit(Chunk("doc.txt#0", "doc.txt", 0, len(text), text), 1.0, 1)])
    question = "How much aid did France announce in 2025?"
    # "two billion euro" is "deux milliards d'euros": a number word, a magnitude and the start of a plural.
    assert is_grounded("France announced two billion euro of aid.", question, context, "fr+en")
    assert not is_grounded("France announced seven million pounds of aid.", question, context, "fr")


def test_an_answer_sentence_rests_on_a_sentence_and_the_one_going_on_from_it():
    from rag.answer.evidence import evidence_for

    text = ("« L'initiative Brave1 France-Ukraine aura pour objectif d'accélérer les projets communs. "
            "Elle sera opérationnelle dès mars 2026″ , est-il écrit. La France a annoncé une aide en 2025.")
    context = sentences_of([Hit(Chunk("doc.txt#0", "doc.txt", 0, len(text), text), 1.0, 1)])
    subject, date, other = context
    question = "When is the Brave1 France-Ukraine initiative due to become operational?"
    # The subject from the first sentence, the date from the next, which leans on it ("Elle …").
    assert evidence_for("The Brave1 France-Ukraine initiative is due to be operational in March 2026.",
                        context, "fr", question) == [subject, date]
    # A date the next sentence does not hold brings no second sentence, nor does one that stands alone.
    assert evidence_for("The Brave1 France-Ukraine initiative is due to be operational in 2030.",
                        context, "fr", question) == [subject]
    assert other not in evidence_for("The Brave1 France-Ukraine initiative is due to be operational in 2025.",
                                     context, "fr", question)


def test_an_answer_is_grounded_only_on_the_sentences_the_model_was_shown():
    from rag.answer.evidence import is_grounded

    text = "Le ministère veut développer la production. L'initiative vise à accélérer les projets communs de maturation technologique."
    other, shown = sentences_of([Hit(Chunk("doc.txt#0", "doc.txt", 0, len(text), text), 1.0, 1)])
    question = "What is the goal of the initiative?"
    # "develops production" is words of the passage's other sentence, which the model never saw.
    assert not is_grounded("The initiative develops production.", question, [shown], "fr")
    assert is_grounded("The initiative develops production.", question, [other, shown], "fr")
    assert is_grounded("It accelerates the projects of technological maturation.", question, [shown], "fr")


def test_a_sentence_joining_facts_of_two_passages_cites_both():
    first = "« L'initiative Brave1 France-Ukraine accélère les projets. Elle sera opérationnelle dès mars 2026 », est-il écrit."
    second = "La production nationale d'armes devrait être multipliée par six en 2024."
    h = [Hit(Chunk("a.txt#0", "a.txt", 0, len(first), first), 1.0, 1), Hit(Chunk("b.txt#0", "b.txt", 0, len(second), second), 0.9, 2)]
    context = sentences_of(h)
    question = "Which happens later: the Brave1 France-Ukraine initiative becoming operational, or the sixfold rise in arms production?"
    answer = "The Brave1 France-Ukraine initiative becomes operational in March 2026, while the sixfold rise is expected in 2024."
    assert cite(answer, context, h, "fr", question) == answer[:-1] + " [1][2]."
    # One passage holding every fact is cited alone.
    assert cite("The Brave1 France-Ukraine initiative becomes operational in March 2026.", context, h, "fr",
                question).endswith("2026 [1].")


def french_passages_english_question():
    """Two French passages, the second naming the company an English question asks for."""
    first = "Le ministère a publié un communiqué sur les drones."
    second = "L'Ukraine a conclu un accord avec le fabricant allemand Rheinmetall AG pour l'entretien des armes."
    h = [Hit(Chunk("a.txt#0", "a.txt", 0, len(first), first), 1.0, 1),
         Hit(Chunk("b.txt#0", "b.txt", 0, len(second), second), 0.9, 2)]
    return h, sentences_of(h), "Which German company did Ukraine sign a repair deal with?"


def test_an_answer_no_sentence_of_which_is_cited_cites_the_passage_best_supporting_it():
    # An English answer about French passages: too few shared words for any sentence to reach the
    # citer's threshold, and one of its names is in no sentence, yet the checks find it grounded.
    h, context, question = french_passages_english_question()
    answer = "The government signed a maintenance contract with Rheinmetall AG in Kyiv last year. It was quick."
    expected = "The government signed a maintenance contract with Rheinmetall AG in Kyiv last year. It was quick [2]."
    assert cite(answer, context, h, "en+fr", question) == expected
    pieces = ["The government signed a maintenance contract with Rheinm", "etall AG in Kyiv last", " year. It was", " quick."]
    assert streamed(pieces, context, h, "en+fr", question) == expected
    # Nothing the answer adds to the question is in any sentence: it stays uncited.
    assert cite("Ukraine signed it with Boeing in Kyiv.", context, h, "en+fr", question) == "Ukraine signed it with Boeing in Kyiv."


def test_the_fallback_citation_is_not_added_when_a_sentence_is_cited():
    h = hits()
    context = sentences_of(h)
    answer = "Selon M. Fedorov, elle porte sur les drones. Les licornes volent."
    assert cite(answer, context, h, "fr") == "Selon M. Fedorov, elle porte sur les drones [1]. Les licornes volent."
    assert streamed(["Selon M. Fedorov, elle porte sur les drones.", " Les licornes", " volent."], context, h, "fr") == \
        "Selon M. Fedorov, elle porte sur les drones [1]. Les licornes volent."


def test_the_fallback_marker_goes_on_a_sentence_and_a_streamed_answer_is_cited_as_the_check_cites_it():
    h, context, question = french_passages_english_question()
    answer = "The government signed a maintenance contract with Rheinmetall AG in Kyiv last year."
    # A last fragment with no words ("(", "---") takes no marker.
    assert cite(answer + " (", context, h, "en+fr", question) == answer + " ("
    # Trailing whitespace: the stream gives the check's text (it cites the stripped answer) and the whitespace.
    assert streamed([answer[:30], answer[30:], "\t"], context, h, "en+fr", question) == \
        cite(answer, context, h, "en+fr", question) + "\t"
