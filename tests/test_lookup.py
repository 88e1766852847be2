"""Prompt lookup: the guess is what followed the latest earlier occurrence of the history's last n-gram."""

from rag.generation.lookup import prompt_lookup


def test_the_tokens_after_the_latest_earlier_occurrence_of_the_longest_ngram():
    history = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 6, 2, 3]
    # "2 3" occurs at 1 and 6; the latest earlier one is followed by 7 8 6 2 3
    assert prompt_lookup(history, max_ngram=2, min_ngram=2, max_tokens=3) == [7, 8, 6]
    # the trigram "6 2 3" never occurred before: fall back to the bigram
    assert prompt_lookup(history, max_ngram=3, min_ngram=2, max_tokens=2) == [7, 8]


def test_a_longer_match_wins_over_a_more_recent_shorter_one():
    history = [5, 1, 2, 3, 40, 41, 9, 2, 3, 50, 1, 2, 3]
    assert prompt_lookup(history, max_ngram=3, min_ngram=2, max_tokens=2) == [40, 41]


def test_no_guess_without_an_earlier_occurrence():
    assert prompt_lookup([1, 2, 3, 4], max_ngram=3, min_ngram=2) == []
    assert prompt_lookup([7], max_ngram=3, min_ngram=1) == []
    assert prompt_lookup([], max_ngram=2, min_ngram=1) == []


def test_the_guess_stops_at_the_end_of_the_history():
    assert prompt_lookup([8, 9, 1, 8, 9], max_ngram=2, min_ngram=2, max_tokens=10) == [1, 8, 9]


def test_guessing_is_the_preset_s_measured_choice_unless_set():
    from rag.answer.assistant import lookup_tokens
    from rag.generation.models import PRESETS

    assert lookup_tokens("default", -1) == PRESETS["default"].lookup_tokens > 0
    assert lookup_tokens("quality", -1) == PRESETS["quality"].lookup_tokens == 0
    assert lookup_tokens("/models/other.gguf", -1) == 0, "an unmeasured model decodes a token at a time"
    assert lookup_tokens("quality", 4) == 4 and lookup_tokens("default", 0) == 0


def test_the_comparison_script_reads_its_configurations():
    from helpers import load_script

    script = load_script("compare_lookup")
    assert script.drafter("0") is None
    guess = script.drafter("4:2:3")
    assert guess([1, 2, 3, 9, 9, 1, 2, 3]) == [9, 9, 1, 2]
