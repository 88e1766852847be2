from rag.generation.prompts import (
    SYSTEM_PROMPT,
    build_messages,
    build_prompt,
    passage_text,
    trim_to_tokens,
)
from rag.ingest.chunking import count_tokens
from rag.retrieval.ranking import rank_sentences
from rag.schema import Chunk, Hit


def hit(n: int, source: str, text: str, start: int = 0) -> Hit:
    return Hit(Chunk(f"{source}#{n}", source, start, start + len(text), text), score=1.0 / n, rank=n)


HITS = [
    hit(1, "b.txt", "Le ministre Umerov a signé un mémorandum avec les États-Unis. " * 3, 100),
    hit(2, "a.txt", "La production a triplé en 2023 et doit être multipliée par six en 2024. " * 3, 0),
    hit(3, "a.txt", "Kiev souhaite recevoir des systèmes SAMP-T et des missiles Mistral. " * 3, 500),
]


def test_system_prompt_first_and_identical_whatever_the_question():
    a, _ = build_messages("Qui a signé ?", HITS, "fr", count_tokens, 4096, 256)
    b, _ = build_messages("What tripled in 2023?", HITS[:1], "en", count_tokens, 4096, 256)
    assert a[0] == b[0] == {"role": "system", "content": SYSTEM_PROMPT}
    # Everything before the final user turn is the fixed, cacheable prefix.
    assert a[:-1] == b[:-1]
    assert a[-1]["role"] == "user" and a[-1]["content"].rstrip().endswith("taken from the context.")


def test_context_is_the_relevant_sentences_in_document_order_and_question_last():
    messages, passages = build_messages("Qu'a signé Umerov avec les États-Unis ?", HITS, "fr", count_tokens, 4096, 256)
    user = messages[-1]["content"]
    assert "- Le ministre Umerov a signé un mémorandum avec les États-Unis." in user
    # Passages are numbered in document order: the order of the context lines.
    assert passages == sorted(passages, key=lambda h: (h.chunk.source, h.chunk.start))
    assert user.rindex("- ") < user.index("Question: Qu'a signé Umerov avec les États-Unis ?")
    assert "in French" in user and "[1]" not in user, "the model is not asked to write markers"


def test_the_best_sentences_are_chosen_and_duplicates_kept_once():
    prompt = build_prompt("Quand la production a-t-elle triplé ?", HITS, "fr", count_tokens, 4096, 256, max_sentences=2)
    texts = [s.text for s in prompt.context]
    assert texts[0].startswith("La production a triplé en 2023")
    assert len(prompt.context) <= 2 and len(set((s.hit.chunk.source, s.start) for s in prompt.context)) == len(texts)
    assert [h.chunk.source for h in prompt.passages] == ["a.txt"]


def test_prompt_and_answer_fit_the_context_window():
    long_hits = [hit(i, f"f{i}.txt", "mot " * 400, 0) for i in range(1, 9)]
    n_ctx, answer = 1400, 200
    messages, passages = build_messages("question " * 2000, long_hits, "fr", count_tokens, n_ctx, answer)
    used = sum(count_tokens(m["content"]) + 8 for m in messages)
    assert used + answer <= n_ctx
    assert 1 <= len(passages) < len(long_hits), "the best passages are kept, the rest dropped"
    assert passages[0].rank == 1 or any(p.rank == 1 for p in passages)


def test_best_ranked_passages_win_the_budget():
    hits = [hit(i, f"f{i}.txt", f"passage {i} " + "mot " * 300, 0) for i in range(1, 6)]
    _, passages = build_messages("q", hits, "en", count_tokens, 2000, 200)
    assert sorted(p.rank for p in passages) == list(range(1, len(passages) + 1))


def test_markers_inside_documents_are_defused():
    assert passage_text("voir [1] et [2, 3]\n\n  ici") == "voir (1) et (2, 3) ici"


def test_trim_to_tokens_cuts_on_a_word_and_fits():
    text = "alpha beta gamma delta " * 200
    cut = trim_to_tokens(text, 50, count_tokens)
    assert count_tokens(cut) <= 52 and cut.endswith("…")
    assert trim_to_tokens("court", 50, count_tokens) == "court"


def test_a_sentence_continuing_a_relevant_one_reaches_the_context():
    """The answer is often in the sentence after the one naming the subject ("Elle sera…"): it shares
    no word with the question, and still outranks sentences that share a word or two."""
    text = ("L'initiative Brave1 France-Ukraine doit accélérer les projets communs. Elle sera opérationnelle dès mars 2026. "
            "La France est un soutien de l'Ukraine. L'Ukraine et la France coopèrent. Le conflit dure en Ukraine.")
    far = hit(2, "b.txt", "Ukraine : la France et l'Ukraine signent. Les ministres de France et d'Ukraine parlent.", 0)
    prompt = build_prompt("When will the Brave1 France-Ukraine initiative start?", [hit(1, "a.txt", text), far], "fr",
                          count_tokens, 4096, 256, max_sentences=2)
    assert [s.text for s in prompt.context] == ["L'initiative Brave1 France-Ukraine doit accélérer les projets communs.",
                                               "Elle sera opérationnelle dès mars 2026."]
    # Only the sentence right after: the one after that inherits nothing.
    ranked = rank_sentences("When will the Brave1 France-Ukraine initiative start?", [hit(1, "a.txt", text)], "fr")
    assert [s.text for s in ranked][:2] == [s.text for s in prompt.context]


def test_sentences_far_below_the_best_are_left_out():
    """Prefill time is spent only on sentences about as relevant as the best one, however many are allowed."""
    question = "Quand la production a-t-elle triplé ?"
    ranked = rank_sentences(question, HITS, "fr")
    assert ranked[0].text.startswith("La production a triplé") and ranked[-1].score < 0.5 * ranked[0].score
    shown = build_prompt(question, HITS, "fr", count_tokens, 4096, 256, max_sentences=6, min_share=0.7)
    assert [s.text for s in shown.context] == [s.text for s in ranked if s.score >= 0.7 * ranked[0].score]
    assert len(shown.context) < len(ranked) and [h.chunk.source for h in shown.passages] == ["a.txt"]
    everything = build_prompt(question, HITS, "fr", count_tokens, 4096, 256, max_sentences=6, min_share=0.0)
    assert len(everything.context) == min(6, len(ranked))


def test_a_table_row_cut_into_short_cells_is_one_sentence_the_model_can_be_shown():
    """A cell under a sentence's length ("9") runs on into the next ones instead of being dropped,
    so the row that holds the asked-for number reaches the ranking, and so the prompt (a table whose
    cells are lines of their own, as a PDF's text layer gives it; HTML tables are a row a line)."""
    from rag.retrieval.ranking import sentences_of

    table = "2\n\nSIGINT\n\nterminate the process\n\n9\n\nSIGKILL\n\nterminate the process\n\nUnblockable kill signal"
    texts = [s.text for s in sentences_of([hit(1, "signals.pdf", table, 40)])]
    assert texts == ["2 SIGINT terminate the process", "9 SIGKILL terminate the process", "Unblockable kill signal"]
    first = sentences_of([hit(1, "signals.pdf", table, 40)])[1]
    assert table[first.start - 40:first.end - 40] == "9\n\nSIGKILL\n\nterminate the process"  # a span of the document, as citations need
    prompt = build_prompt("Which number has SIGKILL?", [hit(1, "signals.pdf", table, 40)], "en", count_tokens, 4096, 128)
    assert any("9 SIGKILL" in s.text for s in prompt.context)


def test_a_table_row_is_ranked_with_its_table_s_header():
    """A row holds the asked-for name, the table's first row what its columns are: read together, the
    row that answers ranks above the header and above prose sharing the header's words."""
    from rag.retrieval.ranking import sentences_of, table_header

    table = ("Services are listed with their ports in /etc/services.\n\nservice | port | secure service | port\n\n"
             "telnet | 23 | telnets | 992\n\nimap2 | 143 | imaps | 993\n\nChoose the secure ones.")
    h = hit(1, "net.html", table, 40)
    headers = {s.text: table_header(s) for s in sentences_of([h])}
    assert headers["imap2 | 143 | imaps | 993"] == headers["telnet | 23 | telnets | 992"] == "service | port | secure service | port"
    assert headers["service | port | secure service | port"] == headers["Choose the secure ones."] == ""
    ranked = rank_sentences("Which port does the secure imaps service use?", [h], "en")
    assert ranked[0].text == "imap2 | 143 | imaps | 993"
    assert table[ranked[0].start - 40:ranked[0].end - 40] == ranked[0].text  # its span is the row's, as citations need


def test_a_bullet_is_no_part_of_a_segment_s_length():
    # "• ab cd ef gh" is 13 characters with its bullet and 11 without: it runs on into the next
    # segment like any other short one, instead of being too long to run on and too short to keep.
    from rag.retrieval.ranking import sentences_of

    text = "• ab cd ef gh\n\nThe value that follows it.\n\nA sentence long enough to stand alone."
    texts = [s.text for s in sentences_of([hit(1, "a.txt", text)])]
    assert texts == ["ab cd ef gh The value that follows it.", "A sentence long enough to stand alone."]


def test_a_bullet_is_dropped_and_a_leading_dash_of_a_word_kept():
    from rag.retrieval.ranking import sentence_text

    assert sentence_text("- install the package\n  with apt") == "install the package with apt"
    assert sentence_text("• Le paquet est installé") == "Le paquet est installé"
    assert sentence_text("--purge removes the configuration files too") == "--purge removes the configuration files too"
    assert sentence_text("-rw-r--r-- 1 root root 220 .bashrc") == "-rw-r--r-- 1 root root 220 .bashrc"
    assert sentence_text("**Note** the default is -5") == "**Note** the default is -5"
