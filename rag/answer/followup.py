"""Follow-up questions: rewrite "and in 2024?" into a question that can be searched on its own.

Retrieval sees one question, not a conversation, so a follow-up that leans on the previous turn
("Et en 2024 ?", "who announced it?") is first rewritten by the same model into a standalone
question. The rewrite is checked, and the original question is kept whenever the result looks
wrong: an unchanged question is never worse than a hallucinated one.
"""

from __future__ import annotations

import re

from rag.answer.citations import MARKER, is_refusal
from rag.generation.llama import Generator
from rag.generation.prompts import REFUSAL_SENTINEL
from rag.text.language import detect_language
from rag.text.lexical import tokenize

MAX_ANSWER_CHARS = 300
MAX_REWRITE_TOKENS = 80

REWRITE_SYSTEM = ("You rewrite follow-up questions as complete questions that can be understood alone, in the same "
                  "language. First name what the follow-up question changes or refers to, then write the complete "
                  "question. You never answer questions.")

# Demonstrations on topics unrelated to any corpus, one per kind of follow-up, in English and
# French: a changed place or date ("and in 2018?"), a pronoun ("how long is it?"), and a complete
# question left alone. Each reply first states the substitution ("2015 → 2018: ..."): measured on
# the 0.5B default model, naming it first made the model apply it far more often than a bare
# rewrite, which mostly copied the previous question unchanged.
EXAMPLES = [
    ("Quelle est la population de Lyon selon le recensement ?", "Lyon compte environ 520 000 habitants.",
     "Et celle de Marseille ?", "Lyon → Marseille: Quelle est la population de Marseille selon le recensement ?"),
    ("How many visitors did the museum have in 2015?", "The museum had 80,000 visitors in 2015.",
     "And in 2018?", "2015 → 2018: How many visitors did the museum have in 2018?"),
    ("Quel était le budget de la ville en 2019 ?", "Le budget était de 3 millions d'euros.",
     "Et en 2021 ?", "2019 → 2021: Quel était le budget de la ville en 2021 ?"),
    ("When was the Charles Bridge in Prague completed?", "It was completed in 1402.",
     "How long is it?", "it → the Charles Bridge in Prague: How long is the Charles Bridge in Prague?"),
    ("Qui a dirigé la restauration du pont ?", "L'architecte Marie Novak a dirigé la restauration.",
     "Quel prix a-t-elle reçu ?", "elle → l'architecte Marie Novak: Quel prix l'architecte Marie Novak a-t-elle reçu ?"),
    ("Who designed the bridge towers?", "The documents do not say.",
     "What did the restoration cost in 2019?", "unchanged: What did the restoration cost in 2019?"),
]

_LABEL = re.compile(r"^\s*(?:\*\*)?(?:complete|standalone|rewritten|full)?\s*question\s*(?:\*\*)?\s*:\s*", re.IGNORECASE)
_MAPPING = re.compile(r"^\s*(?:(?P<old>[^:→]{1,80}?)\s*(?:→|->)\s*(?P<new>[^:→]{1,80}?)|unchanged)\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'“”«»`"
_NUMBER = re.compile(r"\d+(?:[.,\s]\d{3})*(?:[.,]\d+)?")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


def _one_line(text: str, limit: int | None = None) -> str:
    text = " ".join(str(text or "").split())
    if limit and len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


def last_exchange(history: list[dict]) -> tuple[str, str]:
    """The last user question and the answer that followed it (markers removed, shortened)."""
    question, answer = "", ""
    for turn in history:
        if turn.get("role") == "user":
            question, answer = _one_line(turn.get("content")), ""
        elif turn.get("role") == "assistant" and question:
            text = str(turn.get("content") or "")
            # A refusal tells the rewrite nothing, and small models copied it into their reply.
            answer = "" if is_refusal(text) else _one_line(_SPACE_BEFORE_PUNCT.sub(r"\1", MARKER.sub("", text)), MAX_ANSWER_CHARS)
    return question, answer


def rewrite_request(previous_question: str, previous_answer: str, follow_up: str) -> str:
    answer = f"Previous answer: {previous_answer}\n" if previous_answer else ""
    return f"Previous question: {previous_question}\n{answer}Follow-up question: {follow_up}\nComplete question:"


def build_rewrite_messages(question: str, history: list[dict]) -> list[dict]:
    """Chat messages asking the model for a standalone version of question."""
    messages = [{"role": "system", "content": REWRITE_SYSTEM}]
    for prev_q, prev_a, follow_up, complete in EXAMPLES:
        messages.append({"role": "user", "content": rewrite_request(prev_q, prev_a, follow_up)})
        messages.append({"role": "assistant", "content": complete})
    prev_q, prev_a = last_exchange(history)
    messages.append({"role": "user", "content": rewrite_request(prev_q, prev_a, _one_line(question))})
    return messages


def parse_rewrite(raw: str) -> tuple[str, tuple[str, str] | None]:
    """(question, (old, new) substitution the model named or None) from the first line of the reply."""
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    mapping = None
    m = _MAPPING.match(line)
    if m:
        if m.group("old") and m.group("new"):
            mapping = (m.group("old").strip().strip(_QUOTES), m.group("new").strip().strip(_QUOTES))
        line = line[m.end():]
    line = _LABEL.sub("", line).strip().strip(_QUOTES).strip()
    head, colon, tail = line.rpartition(": ")
    if colon and "?" not in head and tail.strip():
        line = tail.strip().strip(_QUOTES)  # "<what it refers to>: <question>" with the arrow left out
    return " ".join(line.split()), mapping


def apply_mapping(rewrite: str, mapping: tuple[str, str] | None, follow_up: str, previous: str) -> str | None:
    """The rewrite with the model's own named substitution applied, when it named one and then
    forgot it (copying the previous question unchanged is the small model's typical slip).

    Only a swap of a term of the previous question for a term of the follow-up ("2015 → 2018",
    "Lyon → Marseille") is applied; a pronoun resolution is left to the model's own wording.
    """
    if not mapping or not rewrite:
        return None
    old, new = mapping

    def word(term: str) -> re.Pattern:
        return re.compile(rf"(?<![\w'’-]){re.escape(term)}(?![\w'’-])", re.IGNORECASE)

    if not old or not new or old.lower() == new.lower():
        return None
    if not (word(new).search(follow_up) and word(old).search(previous) and word(old).search(rewrite)) or word(new).search(rewrite):
        return None
    return word(old).sub(new, rewrite)


def _numbers(text: str) -> set[str]:
    return {re.sub(r"\D", "", n) for n in _NUMBER.findall(text)}


def plausible_rewrite(question: str, rewrite: str, lang: str, asked: str = "", conversation: str = "") -> bool:
    """Kept only if it is a short question that keeps every term of the follow-up, brings in
    something from the conversation, and adds no number nobody asked about (a sign the model
    answered instead of rewriting). asked: the earlier questions; conversation: the last exchange."""
    if not rewrite or REFUSAL_SENTINEL.lower() in rewrite.lower() or MARKER.search(rewrite):
        return False
    if len(rewrite) > max(300, 4 * len(question)):
        return False
    if question.rstrip().endswith("?") and not rewrite.rstrip().endswith("?"):
        return False
    wanted, got = set(tokenize(question, lang)), set(tokenize(rewrite, lang))
    if len(wanted - got) > len(wanted) // 4:
        return False  # the model dropped what the user just asked about
    if conversation and not (got - wanted) & set(tokenize(conversation, lang)):
        return False  # nothing from the conversation: the follow-up itself says as much
    if not _numbers(rewrite) <= _numbers(question) | _numbers(asked):
        return False
    # A rewrite into another language would make the answer come back in that language too.
    if len(question.split()) >= 4 and detect_language(rewrite, lang) != lang:
        return False
    return True


def question_language(question: str, standalone: str, history: list[dict]) -> str:
    """The language to answer in. Short follow-ups ("Et en 2024 ?") are too short to detect
    reliably, so the standalone question or the earlier questions decide."""
    if len(re.findall(r"[^\W\d_]{2,}", question)) >= 4:
        return detect_language(question)
    if standalone != question:
        return detect_language(standalone)
    earlier = [str(t.get("content") or "") for t in history if t.get("role") == "user"][-2:]
    return detect_language(" ".join([*earlier, question]))


# A follow-up this short that names one number ("Et en 2024 ?", "What about 2019?") asks the
# previous question again for that number.
SWAP_MAX_WORDS = 5


def swap_number(follow_up: str, previous: str) -> str | None:
    """The previous question with its one number replaced by the follow-up's one number, when the
    follow-up is only that change. Deterministic, and no model call: measured with the real 0.5B
    model, its rewrite of "Et en 2024 ?" copied the previous answer instead whenever that answer
    was a short sentence."""
    if len(re.findall(r"\w+", follow_up)) > SWAP_MAX_WORDS:
        return None
    new, old = _NUMBER.findall(follow_up), _NUMBER.findall(previous)
    if len(new) != 1 or len(old) != 1 or new[0] == old[0]:
        return None
    return re.sub(rf"(?<!\d){re.escape(old[0])}(?!\d)", new[0], previous, count=1)


def rewrite_followup(question: str, history: list[dict] | None, generator: Generator) -> tuple[str, str]:
    """(standalone question, answer language). The question itself when there is no history or
    the rewrite does not look right."""
    turns = [t for t in (history or []) if t.get("role") in ("user", "assistant") and str(t.get("content") or "").strip()]
    if not any(t["role"] == "user" for t in turns):
        return question, detect_language(question)
    lang = question_language(question, question, turns)
    asked = " ".join(str(t["content"]) for t in turns if t["role"] == "user")
    previous, previous_answer = last_exchange(turns)
    swapped = swap_number(question, previous)
    if swapped and plausible_rewrite(question, swapped, lang, asked, f"{previous} {previous_answer}"):
        return swapped, question_language(question, swapped, turns)
    raw = "".join(generator.stream(build_rewrite_messages(question, turns), MAX_REWRITE_TOKENS, 0.0))
    rewrite, mapping = parse_rewrite(raw)
    standalone = question
    for candidate in (rewrite, apply_mapping(rewrite, mapping, question, previous)):
        if candidate and plausible_rewrite(question, candidate, lang, asked, f"{previous} {previous_answer}"):
            standalone = candidate
            break
    return standalone, question_language(question, standalone, turns)
