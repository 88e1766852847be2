"""Follow-up questions: rewrite "and in 2024?" into a question that can be searched on its own.

Retrieval sees one question, not a conversation, so a follow-up that leans on earlier turns
("Et en 2024 ?", "who signed it?") is first rewritten by the same model into a standalone question.
The rewrite is checked, and the original question is kept whenever the result looks wrong: an
unchanged question is never worse than a hallucinated one.
"""

from __future__ import annotations

import re

from rag.citations import MARKER
from rag.generation import Generator
from rag.language import detect_language
from rag.lexical import tokenize
from rag.prompts import REFUSAL_SENTINEL

# How much of the conversation the rewrite sees: the last turns matter most, and a short prompt
# keeps the extra model call cheap (its prefill is paid on every follow-up).
MAX_TURNS = 3
MAX_ANSWER_CHARS = 400
MAX_REWRITE_TOKENS = 80

REWRITE_SYSTEM = """You rewrite follow-up questions so they can be understood without the conversation.
Rules:
1. Replace pronouns and missing words in the follow-up question with what they refer to in the conversation.
2. Keep every name, number and date that the follow-up question mentions.
3. If the follow-up question is already complete, repeat it unchanged.
4. Write in the same language as the follow-up question.
5. Do not answer the question. Reply with the rewritten question only, on one line."""

# Demonstrations on topics unrelated to any corpus: pronoun resolution, an elliptical question
# ("and X?") in French, and a new question that must be left alone.
EXAMPLES = [
    (
        [("user", "When was the Charles Bridge in Prague completed?"),
         ("assistant", "The Charles Bridge was completed in 1402.")],
        "How long is it?",
        "How long is the Charles Bridge in Prague?",
    ),
    (
        [("user", "Quelle est la population de Lyon selon le recensement ?"),
         ("assistant", "Lyon compte environ 520 000 habitants selon le recensement.")],
        "Et celle de Marseille ?",
        "Quelle est la population de Marseille selon le recensement ?",
    ),
    (
        [("user", "Who designed the bridge towers?"),
         ("assistant", "The documents do not contain the answer to this question.")],
        "What did the restoration of the towers cost in 2019?",
        "What did the restoration of the towers cost in 2019?",
    ),
]

_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:standalone|rewritten|reformulated|full)?\s*(?:question|reformulation|question autonome)\s*(?:\*\*)?\s*:\s*",
                     re.IGNORECASE)
_QUOTES = "\"'“”«»`"


def conversation_text(history: list[dict]) -> str:
    """The last turns as plain text, answers shortened and without citation markers."""
    lines = []
    for turn in history[-2 * MAX_TURNS:]:
        content = " ".join(str(turn.get("content") or "").split())
        if turn.get("role") == "assistant":
            content = re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", content))
            if len(content) > MAX_ANSWER_CHARS:
                content = content[:MAX_ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
            lines.append(f"Assistant: {content}")
        elif turn.get("role") == "user":
            lines.append(f"User: {content}")
    return "\n".join(lines)


def rewrite_request(turns: list[dict], question: str) -> str:
    return f"Conversation:\n{conversation_text(turns)}\n\nFollow-up question: {question}\n\nStandalone question:"


def build_rewrite_messages(question: str, history: list[dict]) -> list[dict]:
    """Chat messages asking the model for a standalone version of question."""
    messages = [{"role": "system", "content": REWRITE_SYSTEM}]
    for turns, follow_up, standalone in EXAMPLES:
        example = [{"role": r, "content": c} for r, c in turns]
        messages.append({"role": "user", "content": rewrite_request(example, follow_up)})
        messages.append({"role": "assistant", "content": standalone})
    messages.append({"role": "user", "content": rewrite_request(history, question)})
    return messages


def clean_rewrite(raw: str) -> str:
    """The first line of the model's reply, without a label or surrounding quotes."""
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line).strip().strip(_QUOTES).strip()
    return " ".join(line.split())


def key_terms(text: str, lang: str) -> set[str]:
    return set(tokenize(text, lang))


def plausible_rewrite(question: str, rewrite: str, lang: str) -> bool:
    """A rewrite is kept only if it is a short question that keeps the follow-up's own terms."""
    if not rewrite or REFUSAL_SENTINEL.lower() in rewrite.lower() or MARKER.search(rewrite):
        return False
    if len(rewrite) > max(300, 4 * len(question)):
        return False  # an answer or a rambling, not a question
    wanted = key_terms(question, lang)
    if wanted:
        kept = len(wanted & key_terms(rewrite, lang)) / len(wanted)
        if kept < 0.5:
            return False  # the model dropped what the user just asked about
    # A rewrite into another language would make the answer come back in that language too.
    if len(question.split()) >= 4 and detect_language(rewrite, lang) != lang:
        return False
    return True


def standalone_question(question: str, history: list[dict] | None, generator: Generator, lang: str | None = None) -> str:
    """question rewritten with the conversation so far; question itself when there is no history
    or the rewrite does not look right."""
    turns = [t for t in (history or []) if t.get("role") in ("user", "assistant") and str(t.get("content") or "").strip()]
    if not any(t["role"] == "user" for t in turns):
        return question
    lang = lang or detect_language(" ".join([*(t["content"] for t in turns if t["role"] == "user"), question]))
    raw = "".join(generator.stream(build_rewrite_messages(question, turns), MAX_REWRITE_TOKENS, 0.0))
    rewrite = clean_rewrite(raw)
    return rewrite if plausible_rewrite(question, rewrite, lang) else question
