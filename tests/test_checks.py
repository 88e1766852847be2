"""Each answer check that remains turns down the failure it exists for, and passes a good answer
(docs/quality.md has what each made right and wrong on the dev splits)."""

import pytest

from rag.answer.check import CHECKS, Reading
from rag.generation.prompts import Prompt
from rag.retrieval.ranking import Sentence, introduces_table, is_heading, sentences_of
from rag.schema import Chunk, Hit

TEXT = ("Le ministre Fedorov a annoncé la production de 500 drones en 2024. La météo était belle à Kiev ce jour-là. "
        "Les usines de Lviv ont été agrandies.")
HIT = Hit(Chunk("a.txt#0", "a.txt", 0, len(TEXT), TEXT), 1.0, 1)
# The first sentence is the best ranked; the others were shown to the model too, ranked lower.
CONTEXT = [Sentence(s.hit, s.start, s.end, s.text, score) for s, score in zip(sentences_of([HIT]), (1.0, 0.5, 0.4))]
PROMPT = Prompt([], [HIT], CONTEXT)
HOW_MANY = "Combien de drones le ministre Fedorov a-t-il annoncés en 2024 ?"


def failed(question: str, answer: str) -> tuple[str, ...]:
    return Reading(question, PROMPT, "fr", "fr").failed_checks(answer)


def test_a_good_answer_passes_every_check():
    assert failed(HOW_MANY, "Le ministre a annoncé 500 drones.") == ()


CASES = {
    # an invented fact: a name and a number no sentence shown holds
    "grounded": (HOW_MANY, "Le ministre a annoncé 900 avions Rafale."),
    # no fact of the asked-for kind (a count for "combien")
    "kind": (HOW_MANY, "Le ministre Fedorov a annoncé des drones."),
    # a true sentence, but far below the best one given
    "rank": (HOW_MANY, "La météo était belle à Kiev."),
    # a who-question's verb is said of nobody in the answer's sentence
    "predicate": ("Qui dirige les usines de Lviv ?", "Les usines de Lviv ont été agrandies par Fedorov."),
}


def test_every_check_has_a_case():
    # "quote" and "judge" act on the quote, not on the model's answer: tests/test_judge.py has the judge's.
    assert set(CASES) == set(CHECKS) - {"quote", "judge"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_check_turns_down_the_failure_it_exists_for(name):
    question, answer = CASES[name]
    assert name in failed(question, answer)


def test_the_quote_fallback_quotes_the_best_sentence_holding_the_asked_for_fact():
    quote = Reading(HOW_MANY, PROMPT, "fr", "fr").quote()
    assert quote is not None and "500 drones" in quote[0] and quote[1] == 1


def hit_over(text: str, section: str | None = None) -> Hit:
    return Hit(Chunk("f.html#0", "f.html", 0, len(text), text, section=section), 1.0, 1)


def heading_and_body(text: str, section: str) -> list[Sentence]:
    return sentences_of([hit_over(text, section)])


def reading_over(text: str, question: str, section: str | None = None) -> Reading:
    hit = hit_over(text, section)
    context = [Sentence(s.hit, s.start, s.end, s.text, 1.0 - i / 10) for i, s in enumerate(sentences_of([hit]))]
    return Reading(question, Prompt([], [hit], context), "en", "en")


def test_a_heading_is_not_quoted_but_the_sentence_under_it_is():
    text = "Why are default values shared between objects?\nDefault values are created exactly once, when the function is defined."
    question = "Why are default values shared between objects?"
    heading, body = heading_and_body(text, "FAQ > " + question)
    assert is_heading(heading) and not is_heading(body)
    quote = reading_over(text, question, section="FAQ > " + question).quote()
    assert quote is not None and "Default values are created exactly once" in quote[0] and quote[0] != question
    # without the section label nothing tells it is a heading, but it adds nothing to the question
    quote = reading_over(text, question).quote()
    assert quote is not None and "Default values are created exactly once" in quote[0] and quote[0] != question


def test_a_sentence_made_of_the_questions_own_words_is_not_quoted():
    text = "Checking the syntax of shell scripts."
    assert reading_over(text, "How do I check the syntax of shell scripts?").quote() is None


def test_coverage_reads_the_question_in_the_documents_language_too():
    """An English question over German text shares almost no words with the sentence that answers
    it; its translation (made for the search) does."""
    text = "Die Standard-Shell für Skripte ist dash, ein kleiner POSIX-Interpreter."
    hit = Hit(Chunk("d.html#0", "d.html", 0, len(text), text), 1.0, 1)
    context = [Sentence(s.hit, s.start, s.end, s.text, 1.0) for s in sentences_of([hit])]
    prompt = Prompt([], [hit], context)
    question, translation = "Which is the default shell for scripts?", "Welche ist die Standard-Shell für Skripte?"
    alone, translated = Reading(question, prompt, "en", "de"), Reading(question, prompt, "en", "de", translation)
    assert translated.covers(text) > alone.covers(text)
    assert translated.covers(text) == 1.0


def test_headings_are_told_in_markdown_with_a_title_holding_the_label_separator_and_not_past_their_line():
    heading, body = heading_and_body("## Installing Python\nRun the installer once.", "Guide > Installing Python")
    assert is_heading(heading) and not is_heading(body)
    heading, body = heading_and_body("Redirect 2 > /dev/null\nErrors are dropped.", "Shell > Redirect 2 > /dev/null")
    assert is_heading(heading) and not is_heading(body)
    # a lower-case body line runs on from the heading into one sentence: it holds the body's fact
    (joined,) = heading_and_body("Disks\ndpkg installs packages.", "Guide > Disks")
    assert not is_heading(joined)


def test_a_heading_that_adds_words_is_still_not_quoted():
    # the heading covers as much of the question as the sentence under it, ranks higher, and adds a word
    text = "Mutable default arguments in Python functions\nDefault arguments of functions are created once, so a mutable one is shared."
    question = "Why are mutable default arguments in functions a problem?"
    quote = reading_over(text, question, section="FAQ > Mutable default arguments in Python functions").quote()
    assert quote is not None and quote[0].startswith("Default arguments of functions are created once")


def test_an_answer_in_the_questions_language_is_read_without_that_languages_stop_words():
    """A German answer about English pages opens with a capitalised article: read with English stop
    words only, "Die" is a name no sentence holds and the right answer fails as invented."""
    text = "Use shutil.copytree() to copy an entire directory tree."
    hit = Hit(Chunk("s.html#0", "s.html", 0, len(text), text), 1.0, 1)
    prompt = Prompt([], [hit], [Sentence(s.hit, s.start, s.end, s.text, 1.0) for s in sentences_of([hit])])
    question, answer = "Welche Funktion kopiert einen ganzen Verzeichnisbaum?", "Die Funktion shutil.copytree() kopiert ihn."
    assert "grounded" not in Reading(question, prompt, "de", "en").failed_checks(answer)
    # read as if it were in the documents' language, the article counts as an invented name
    assert "grounded" in Reading(question, prompt, "en", "en").failed_checks(answer)


def test_a_line_naming_another_section_of_the_document_is_not_quoted():
    """A table of contents lists the document's section titles; the line that matches the question
    names where an answer is, not the answer."""
    text = "Contents\nWhere is the web service hosted in Europe?\nWho runs the service?"
    question = "Where is the service hosted?"
    titles = lambda source: frozenset({"Where is the web service hosted in Europe?", "Who runs the service?"})
    hit = hit_over(text)
    context = [Sentence(s.hit, s.start, s.end, s.text, 1.0 - i / 10) for i, s in enumerate(sentences_of([hit]))]
    prompt = Prompt([], [hit], context)
    assert Reading(question, prompt, "en", "en", titles=titles).quote() is None
    # without the document's titles the line is taken for a sentence about the question
    assert Reading(question, prompt, "en", "en").quote() is not None


def test_a_heading_line_ending_in_its_permalink_sign_is_still_its_sections_heading():
    heading, body = heading_and_body("Installing Python¶\nRun the installer once.", "Guide > Installing Python")
    assert is_heading(heading) and not is_heading(body)
    heading, body = heading_and_body("Why is it slow?¶\nIt is not slow on most machines.", "FAQ > Why is it slow?")
    assert heading.text == "Why is it slow?¶" and is_heading(heading) and not is_heading(body)


def test_a_quote_bringing_what_the_question_does_not_write_is_preferred():
    """Of two quotes about the question, the one holding a number, path or identifier it does not
    write, over one ranked higher that covers as much of the question and announces what it lacks."""
    text = ("The build tool of the project is configured by the following files:\n"
            "The build tool of the project reads its configuration from build/settings.ini first.")
    quote = reading_over(text, "How is the build tool of the project configured?").quote()
    assert quote is not None and quote[0].endswith("build/settings.ini first.")


def _table_prompt(text: str) -> Prompt:
    hit = Hit(Chunk("t.html#0", "t.html", 0, len(text), text), 1.0, 1)
    return Prompt([], [hit], [Sentence(s.hit, s.start, s.end, s.text, 1.0) for s in sentences_of([hit])])


def test_a_value_from_a_table_comes_from_the_column_the_question_names():
    """A package table's size column gives no port, however well its row matches the question; a
    port table's port column does."""
    packages = _table_prompt("Package | Popcon | Size | Description\n\nsamba | V:120, I:200 | 4110 | SMB/CIFS server for Unix\n\n"
                             "nfs-kernel-server | V:40, I:60 | 520 | support for NFS kernel server")
    question = "Which TCP port does the Samba server listen on for SMB?"
    assert "kind" in Reading(question, packages, "en", "en").failed_checks("The Samba server listens on TCP port 4110.")
    assert Reading(question, packages, "en", "en").quote() is None
    ports = _table_prompt("Service | Port | Secure service | Port\n\nimap2 | 143 | imaps | 993\n\npop3 | 110 | pop3s | 995")
    question = "Which TCP port does the secure imaps service use?"
    assert "kind" not in Reading(question, ports, "en", "en").failed_checks("The imaps service uses TCP port 993.")


def test_a_value_inside_a_cell_s_own_sentence_is_read_like_a_sentence():
    """Only a bare value ("4110") means what its column's header says; one told in a cell's sentence is
    read with the words around it, whatever the column is called."""
    table = _table_prompt("File system | Typical use\n\nFAT32 | sharing data on large disks (up to 8 TiB)\n\n"
                          "exFAT | sharing data on large disks, supported by Linux since kernel 5.4 and by macOS")
    question = "Since which Linux kernel version is exFAT supported?"
    assert "kind" not in Reading(question, table, "en", "en").failed_checks("exFAT is supported since Linux kernel 5.4.")


def test_a_tables_title_is_quoted_with_the_row_that_answers():
    """A table's title names what its rows tell: quoted alone for "which command replaces ifconfig?",
    it answers nothing; the row covering most of the question is quoted after it and the column names."""
    text = ("Table 5.3. Correspondence between the obsolete net-tools commands and the new iproute2 commands\n\n"
            "obsolete net-tools | new iproute2 | manipulation\n\n"
            "ifconfig(8) | ip addr | protocol (IP or IPv6) address on a device\n\n"
            "route(8) | ip route | routing table entry")
    table = _table_prompt(text)
    title = next(s for s in table.context if s.text.startswith("Table 5.3"))
    assert introduces_table(title)
    assert not any(introduces_table(s) for s in table.context if s is not title)
    quote, _ = Reading("Which new iproute2 command replaces the obsolete ifconfig command?", table, "en", "en").quote()
    assert quote == ("Table 5.3. Correspondence between the obsolete net-tools commands and the new iproute2 commands "
                     "obsolete net-tools | new iproute2 | manipulation ifconfig(8) | ip addr | protocol (IP or IPv6) address on a device")
    quote, _ = Reading("Which iproute2 command replaces the deprecated route command?", table, "en", "en").quote()
    assert quote.endswith("… route(8) | ip route | routing table entry")
    # A title followed by prose, no table, is a sentence like any other.
    assert not any(introduces_table(s) for s in _table_prompt("Table 5.3 lists the commands.\n\nThe ip command replaces them.").context)


def quote_over(text: str, question: str) -> str | None:
    quote = Reading(question, _table_prompt(text), "en", "en").quote()
    return quote[0] if quote else None


def test_a_sentence_before_a_table_that_no_row_answers_is_quoted_as_before():
    """Any sentence ending the line before a table reads as its title; where no row covers the question
    (or a shell pipeline follows, a "row" too), the sentence is weighed alone, as any other."""
    assert quote_over("Many tools exist. The ip command configures addresses and routes on Linux systems.\n\n"
                      "tool | package\n\nip | iproute2",
                      "Which command configures addresses and routes on Linux?") == \
        "The ip command configures addresses and routes on Linux systems."
    assert quote_over("The journal of the current boot is shown by running journalctl with the option -b.\n\n"
                      "journalctl -b | less", "How is the journal of the current boot shown?").startswith(
        "The journal of the current boot is shown by running journalctl with the option -b.")


def test_a_tables_first_row_can_answer_and_a_row_is_read_whole():
    # No header row: the first row, the one that answers, is still quoted (here alone: the next row's
    # port stands under a "header" that names no port).
    assert "imap2 | 143 | port for IMAP" in quote_over(
        "Table 2. Default ports of the mail services\n\nimap2 | 143 | port for IMAP\n\npop3 | 110 | port for POP3",
        "Which port does imap2 use?")
    # A cell holding full stops is no end of its row: the option the question asks for stays in the quote.
    quote = quote_over("Table 1. Useful options of ls\n\noption | meaning\n\n-a | Lists hidden files. Hidden ones too.\n\n"
                       "-l | Long listing. Shows sizes and owners of the files.",
                       "Which option of ls shows sizes and owners of the files?")
    assert quote.endswith("… -l | Long listing. Shows sizes and owners of the files.")
