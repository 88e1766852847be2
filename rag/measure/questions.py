"""Question sets: the JSONL file `rag eval` reads (one question object a line), its checks and its dev/test split."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InputError
from rag.measure.metrics import Question, is_gold


@dataclass
class QuestionSet:
    path: Path
    questions: list[Question]
    warnings: list[str] = field(default_factory=list)
    sha256: str = ""

def _str_list(obj: dict, key: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'"{key}" must be a list of strings')
    return tuple(v for v in value if v.strip())

def parse_question(obj: object, line: int) -> Question:
    """One JSONL object -> Question; ValueError with the reason when it is malformed."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    qid = obj.get("id")
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError('"id" is missing or not a string')
    text = obj.get("question")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('"question" is missing or empty')
    answerable = obj.get("answerable", True)
    if not isinstance(answerable, bool):
        raise ValueError('"answerable" must be true or false')
    answer = obj.get("answer") or ""
    if not isinstance(answer, str):
        raise ValueError('"answer" must be a string')
    lang = obj.get("lang")
    if lang is not None and (not isinstance(lang, str) or not lang.strip()):
        raise ValueError('"lang" must be a language code such as "fr"')
    known = {"id", "question", "answer", "keywords", "sources", "answerable", "lang"}
    return Question(id=qid.strip(), question=text, answer=answer, keywords=_str_list(obj, "keywords"),
                    sources=_str_list(obj, "sources"), answerable=answerable, lang=lang.strip().lower() if lang else None,
                    line=line, extra={k: v for k, v in obj.items() if k not in known})

def load_questions(path: Path) -> QuestionSet:
    """Every valid question of a JSONL file; malformed lines and duplicate ids become warnings."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"question file {path} does not exist; pass a JSONL file with one question object per line")
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path} as UTF-8 text ({e}); save it as UTF-8 JSONL") from None
    qs = QuestionSet(path, [], sha256=hashlib.sha256(data).hexdigest())
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            q = parse_question(json.loads(raw), n)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            problems.append(f"{path.name} line {n}: {e}; line skipped")
            continue
        if q.id in first_line:
            new_id = f"{q.id}@{n}"
            qs.warnings.append(f"{path.name} line {n}: duplicate id {q.id!r} (first on line {first_line[q.id]}); renamed {new_id!r}")
            q = dataclasses.replace(q, id=new_id)
        first_line[q.id] = n
        if not q.answerable and (q.keywords or q.sources):
            qs.warnings.append(f"{path.name} line {n}: {q.id} is unanswerable but lists keywords or sources; they are ignored")
            q = dataclasses.replace(q, keywords=(), sources=())
        if q.answerable and not q.keywords and not q.sources:
            qs.warnings.append(f"{path.name} line {n}: {q.id} has neither keywords nor sources, so only refusals can fail it")
        qs.questions.append(q)
    if not qs.questions:
        if problems:
            raise InputError(f"no valid question in {path} ({len(problems)} malformed lines, first: {problems[0]}); "
                             'fix the file: one JSON object a line with at least "id" and "question"')
        raise InputError(f'{path} has no questions; write one JSON object a line with at least "id" and "question"')
    qs.warnings[:0] = problems
    return qs

def unknown_sources(questions: list[Question], indexed: list[str]) -> list[str]:
    """Warnings for gold sources that name no indexed file (a typo there makes every hit a miss)."""
    out = []
    for q in questions:
        for s in q.sources:
            if not is_gold(s, indexed) and not any(is_gold(i, [s]) for i in indexed):
                out.append(f"{q.id}: source {s!r} is not in the index; check the path (relative to the indexed folder)")
    return out


SPLITS = ("dev", "test")


def select_split(qset: QuestionSet, split: str | None) -> QuestionSet:
    """The questions of one split ("dev" to tune on, "test" to report), fixed in the file's "split"
    field before any tuning; None or "all" keeps every question."""
    if split in (None, "all"):
        return qset
    chosen = [q for q in qset.questions if q.extra.get("split") == split]
    if not chosen:
        raise InputError(f'{qset.path} has no question with "split": "{split}"; '
                         f'give each question a "split" of {" or ".join(SPLITS)}, or leave out --split')
    return dataclasses.replace(qset, questions=chosen)
