"""A second look before an answer stands: does the larger model read it as said by the documents and
as an answer to the question?

A quote is what the engine shows when neither model's own answer passed the checks: the sentence
that covers most of the question. Covering the question's words is not answering it: for a question
the documents do not answer, the best sentence is about the subject and says nothing of the asked
fact. The checks read words and shapes and cannot tell the two apart; a model reading the passages
can, in any language (docs/quality.md, fourth and fourteenth rounds: the bundled 1.5B asked this
yes/no question separated right answers from wrong ones better than the checks, AUC 0.83).

The same question is put to the first model's own answer when the checks accept it, on the passages
the answer cites: the 0.5B gives true-looking facts the passages do not say (a port of another
service, a command of another task), which words and shapes cannot catch. Below the bar the answer
goes the way of one the checks turned down: quoted, the second model asked, or refused
(docs/quality.md, "Seventeenth round"). Off by default (Settings.judge_answers): it costs seconds
after every answer. The second model's own answers are not judged by it: on them its score
separated right from wrong poorly (AUC 0.74, "Sixteenth round").

The judge is the second model (the bundled 1.5B), so it costs one prefill of a short prompt, nothing
generated. Without a second model (RAG_SECOND_MODEL=, or a model server, which gives no logits)
nothing is judged. Its score is the log-odds of "yes" over "no" for the next word, read from the
logits, not a generated reply: the model's greedy yes/no is nearly always the same word.
scripts/judge_probe.py asks the same question of a whole eval run's answers.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from rag.answer.check import Verdict
from rag.answer.citations import resolve
from rag.generation.prompts import Prompt, refusal_text
from rag.schema import Hit

SYSTEM = "You check answers. Reply with one word: yes or no."
PROMPT = ("Text: {text}\n\nQuestion: {question}\nAnswer: {answer}\n"
          "Does the text say what the answer says, and does the answer answer the question? yes or no")
# A quote judged below this log-odds is refused instead. The bar the fourteenth round's probe found safe
# for answers; on the dev splits it refused 7 quotes to unanswerable questions and no right one
# (docs/quality.md, "Sixteenth round").
MIN_ODDS = 1.5
YES = ("yes", "Yes", " yes", " Yes")
NO = ("no", "No", " no", " No")
# The judge reads the passage the quote comes from (about 160 tokens: a prompt of some 300, about 2.6 s
# for the 1.5B on two cores), not the four passages the fourteenth round's probe read: on the dev
# splits the quoted passage alone put all 7 quotes to unanswerable questions below the bar (the four
# passages 6), and no right quote either way (docs/quality.md, "Sixteenth round"). MAX_CHARS bounds
# the prompt for an index built with much larger chunks.
MAX_CHARS = 2400


def messages(question: str, answer: str, passages: Sequence[Hit]) -> list[dict]:
    """The judge's chat: the passages (a quote's, or those an answer cites, in order) bounded by MAX_CHARS."""
    text = "\n\n".join(h.chunk.text for h in passages)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT.format(text=text[:MAX_CHARS], question=question, answer=answer)}]


def support_odds(model, question: str, answer: str, passages: Sequence[Hit]) -> float | None:
    """The model's log-odds that the passage says what the answer says and that it answers the
    question; None when the model gives no logits (a model server) or fails: then nothing is judged."""
    try:
        score = model.log_odds
    except Exception:  # noqa: BLE001 - AttributeError, or a model that could not be made
        return None
    try:
        return score(messages(question, answer, passages), YES, NO)
    except Exception:  # noqa: BLE001 - a judge that cannot run leaves the answer as the checks made it
        return None


def judged(verdict: Verdict, model, question: str, prompt: Prompt, lang: str, timings: dict) -> Verdict:
    """A quote's verdict as it stands, or a refusal when the model reads it as no answer; the score
    and its time go into timings (judge_odds, judge_s), and the refused quote (judge_refused)."""
    t0 = time.perf_counter()
    quoted, n = verdict.quoted
    odds = support_odds(model, question, quoted, [prompt.passages[n - 1]])
    timings.update(judge_s=round(time.perf_counter() - t0, 4), judge_odds=odds)
    if odds is not None and odds < MIN_ODDS:
        timings["judge_refused"] = quoted  # what `rag eval`'s ablation of the judge weighs
        return Verdict(refusal_text(lang), True, "refusal", "judge", verdict.failed)
    return verdict


# The first model's accepted answer judged below this is overruled. Higher than MIN_ODDS: an overruled
# answer is not refused outright, the second model is asked (via the quote). Chosen on the dev splits
# from 2.0, 2.5 and 3.0: +2/-0, +9/-2 and +10/-3 answers, 9, 29 and 58 answers overruled; 2.5 scores
# as 3.0 and asks the second model half as often (docs/quality.md, "Seventeenth round").
MIN_ANSWER_ODDS = 2.5


def answer_judged(verdict: Verdict, model, question: str, answer: str, prompt: Prompt, timings: dict,
                  overruled: Callable[[], Verdict]) -> Verdict:
    """The first model's accepted answer as it stands, or what a failed answer gets (overruled(): a
    quote, which the second model may then replace, or a refusal) when the larger model reads the
    passages it cites as not saying it."""
    cited = [prompt.passages[c.n - 1] for c in resolve(verdict.text, prompt.passages)]  # distinct, in order
    if not cited:
        return verdict
    t0 = time.perf_counter()
    odds = support_odds(model, question, answer, cited)
    timings.update(answer_judge_s=round(time.perf_counter() - t0, 4), answer_judge_odds=odds)
    if odds is not None and odds < MIN_ANSWER_ODDS:
        timings["judge_overruled"] = answer
        return overruled()
    return verdict
