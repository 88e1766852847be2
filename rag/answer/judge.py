"""A second look before a quote stands: does the larger model read it as an answer to the question?

A quote is what the engine shows when neither model's own answer passed the checks: the sentence
that covers most of the question. Covering the question's words is not answering it: for a question
the documents do not answer, the best sentence is about the subject and says nothing of the asked
fact. The checks read words and shapes and cannot tell the two apart; a model reading the passages
can, in any language (docs/quality.md, fourth and fourteenth rounds: the bundled 1.5B asked this
yes/no question separated right answers from wrong ones better than the checks, AUC 0.83).

The judge is the second model, already loaded when a quote stands (it was just asked the question),
so it costs one prefill of a short prompt there and nothing anywhere else. Without a second model
(RAG_SECOND_MODEL=, or a model server, which gives no logits) nothing is judged and the quote stands.
Its score is the log-odds of "yes" over "no" for the next word, read from the logits, not a generated
reply: the model's greedy yes/no is nearly always the same word. scripts/judge_probe.py asks the same
question of a whole eval run's answers.
"""

from __future__ import annotations

import time

from rag.answer.check import Verdict
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


def messages(question: str, answer: str, passage: Hit) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT.format(text=passage.chunk.text[:MAX_CHARS], question=question, answer=answer)}]


def support_odds(model, question: str, answer: str, passage: Hit) -> float | None:
    """The model's log-odds that the passage says what the answer says and that it answers the
    question; None when the model gives no logits (a model server) or fails: then nothing is judged."""
    try:
        score = model.log_odds
    except Exception:  # noqa: BLE001 - AttributeError, or a model that could not be made
        return None
    try:
        return score(messages(question, answer, passage), YES, NO)
    except Exception:  # noqa: BLE001 - a judge that cannot run leaves the answer as the checks made it
        return None


def judged(verdict: Verdict, model, question: str, prompt: Prompt, lang: str, timings: dict) -> Verdict:
    """A quote's verdict as it stands, or a refusal when the model reads it as no answer; the score
    and its time go into timings (judge_odds, judge_s), and the refused quote (judge_refused)."""
    t0 = time.perf_counter()
    quoted, n = verdict.quoted
    odds = support_odds(model, question, quoted, prompt.passages[n - 1])
    timings.update(judge_s=round(time.perf_counter() - t0, 4), judge_odds=odds)
    if odds is not None and odds < MIN_ODDS:
        timings["judge_refused"] = quoted  # what `rag eval`'s ablation of the judge weighs
        return Verdict(refusal_text(lang), True, "refusal", "judge", verdict.failed)
    return verdict
