"""Quality metrics for one answer and for a whole run: pure functions over the `rag ask --json`
object (Answer.to_dict()), so a saved results.jsonl can be re-scored without re-running."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterable

from rag.answer.citations import MARKER, is_refusal
from rag.generation.prompts import REFUSALS
from rag.text.lexical import fold

# Dropped before token F1 (SQuAD's normalisation, extended with French articles and elisions).
ARTICLES = frozenset({"le", "la", "les", "l", "un", "une", "des", "du", "de", "d", "a", "an", "the"})
# Answers shorter than this do not count towards decode_tps_p50.
MIN_DECODE_TOKENS = 8
_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)

# Refusals the engine's own detector may miss; worded narrowly so that an answer containing a
# negation ("ne voulait pas dépendre…") is not mistaken for one.
_EXTRA_REFUSALS = tuple(re.compile(p) for p in (
    r"\bi (do not|don't) know\b",
    r"\b(cannot|can't|unable to) (answer|determine|find|tell)\b",
    r"\bnot (mentioned|specified|stated|provided|given) in the (documents?|passages?|texts?|context)\b",
    r"\bje ne (sais|peux) pas\b",
    r"\bimpossible de (repondre|determiner|savoir|dire)\b",
    r"\b(pas|aucune?) d?'?\s?(information|indication|precision)s?\b.{0,40}\b(document|passage|texte|contexte)",
    r"\bn'?(est|sont) pas (mentionnee?s?|precisee?s?|indiquee?s?)\b",
))
_REFUSAL_TEXTS = frozenset(fold(t) for t in REFUSALS.values())


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str = ""
    keywords: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    answerable: bool = True
    lang: str | None = None
    line: int = 0
    extra: dict = field(default_factory=dict)  # unknown fields, kept as written

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "answer": self.answer, "keywords": list(self.keywords),
                "sources": list(self.sources), "answerable": self.answerable, "lang": self.lang, **self.extra}


# --- text normalisation -------------------------------------------------------------------------

def strip_markers(text: str) -> str:
    """Answer text without [n] citation markers (their digits must not match a numeric keyword)."""
    return MARKER.sub(" ", text or "")


def normalize(text: str) -> str:
    """Case, accents and punctuation (’ « » - included) folded away; words separated by one space."""
    return " ".join(_NON_ALNUM.sub(" ", fold(text)).split())


def answer_tokens(text: str) -> list[str]:
    """Tokens for F1: normalised, markers removed, articles and elided l'/d' dropped."""
    return [t for t in normalize(strip_markers(text)).split() if t not in ARTICLES]


# --- answers ------------------------------------------------------------------------------------

def keyword_alternatives(keyword: str) -> list[str]:
    return [n for n in (normalize(a) for a in keyword.split("|")) if n]


def contains_keyword(text: str, keyword: str) -> bool:
    """Any `|` alternative appears at the start of a word ("drone" matches "drones", "intent"
    matches "intention"); a number must match whole ("6" does not match "2026" or "60")."""
    hay = " " + normalize(strip_markers(text)) + " "
    for alt in keyword_alternatives(keyword):
        tail = r"(?![0-9])" if alt[-1].isdigit() else ""
        if re.search(r" " + re.escape(alt) + tail, hay):
            return True
    return False


def missing_keywords(text: str, keywords: Iterable[str]) -> list[str]:
    return [k for k in keywords if keyword_alternatives(k) and not contains_keyword(text, k)]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def detects_refusal(text: str, refused_flag: bool = False) -> bool:
    """The answer declines to answer: the engine said so, or the text says so in its own words."""
    if refused_flag:
        return True
    plain = strip_markers(text).strip()
    if not plain:
        return True
    folded = fold(plain).replace("\u2019", "'")
    if folded in _REFUSAL_TEXTS or is_refusal(text):  # with its markers: a cited passage makes it an answer
        return True
    # Like the engine: an answer that cites a passage is an answer, even if it hedges part of it.
    return not MARKER.search(text) and any(p.search(folded) for p in _EXTRA_REFUSALS)


# --- sources and citations ------------------------------------------------------------------------

def same_source(gold: str, retrieved: str) -> bool:
    """Same relative path, or the same file name (gold sources may be written from another root)."""
    g, r = gold.strip().replace("\\", "/").removeprefix("./"), retrieved.replace("\\", "/")
    return g == r or PurePosixPath(g).name == PurePosixPath(r).name


def is_gold(source: str, gold: Iterable[str]) -> bool:
    return any(same_source(g, source) for g in gold)


def ranked_sources(answer: dict) -> list[str]:
    """Retrieved passages' files in retrieval rank order (the prompt lists them in document order)."""
    return [p["source"] for p in sorted(answer.get("retrieved", []), key=lambda p: p.get("rank", 0))]


def retrieval_scores(answer: dict, gold: list[str]) -> dict:
    """hit, recall of the gold files and reciprocal rank of the first gold passage."""
    ranked = ranked_sources(answer)
    found = [g for g in gold if any(same_source(g, s) for s in ranked)]
    first = next((i for i, s in enumerate(ranked, start=1) if is_gold(s, gold)), None)
    return {"hit": bool(found), "recall": len(found) / len(gold), "rr": 1.0 / first if first else 0.0, "first_gold_rank": first}


def marker_numbers(text: str) -> list[int]:
    return [int(n) for m in MARKER.finditer(text or "") for n in re.findall(r"\d+", m.group(1))]


def citation_scores(answer: dict, raw_text: str | None, gold: list[str]) -> dict:
    """Validity of the model's own markers, and precision/recall of the cited files against gold."""
    n_passages = len(answer.get("retrieved", []))
    numbers = marker_numbers(raw_text if raw_text is not None else answer.get("answer", ""))
    invalid = sorted({n for n in numbers if not 1 <= n <= n_passages})
    cited = list(dict.fromkeys(c["source"] for c in answer.get("citations", [])))
    out = {"n_markers": len(numbers), "invalid_markers": invalid, "citation_valid": not invalid, "cited_sources": cited,
           "citation_precision": None, "citation_recall": None}
    if gold:
        if cited:
            out["citation_precision"] = sum(is_gold(s, gold) for s in cited) / len(cited)
        out["citation_recall"] = sum(any(same_source(g, s) for s in cited) for g in gold) / len(gold)
    return out


# --- one question ---------------------------------------------------------------------------------

def score(question: Question, answer: dict | None, raw_text: str | None = None, *, retrieval_only: bool = False,
          answer_lang: str | None = None, expected_lang: str | None = None, error: str | None = None) -> dict:
    """Every per-question metric, plus `passed` and the human-readable reasons it failed.

    answer_lang is the detected language of the answer text (None when too short to tell).
    """
    gold = list(question.sources)
    m: dict = {"passed": False, "reasons": [], "error": error}
    if error or answer is None:
        m["reasons"].append(f"error: {error or 'no answer'}")
        return m
    if question.answerable and gold:
        m.update(retrieval_scores(answer, gold))
        if not m["hit"]:
            m["reasons"].append("no gold source retrieved")
    if question.answerable and question.keywords:
        # Passage-level check: with few files a file-level hit is almost free, but the passage
        # holding the fact may still be missing from the prompt.
        lacking = missing_keywords(" ".join(p.get("text", "") for p in answer.get("retrieved", [])), question.keywords)
        m["support"] = not lacking
        if lacking:
            m["reasons"].append("retrieved passages lack: " + ", ".join(lacking))
    t = answer.get("timings", {})
    m["retrieval_ms"] = t.get("retrieval_ms")
    if retrieval_only:
        m["passed"] = m.get("hit", True) and m.get("support", True)
        return m

    text = answer.get("answer", "")
    refused = detects_refusal(text, bool(answer.get("refused")))
    m.update(refused=refused, refused_flag=bool(answer.get("refused")))
    m.update({k: t.get(k) for k in ("ttft_s", "total_s", "decode_tps", "prompt_tokens", "completion_tokens")})
    m["answer_lang"] = answer_lang
    m["expected_lang"] = expected_lang
    m["lang_match"] = None if answer_lang is None or expected_lang is None else answer_lang == expected_lang
    if m["lang_match"] is False:
        m["reasons"].append(f"answered in {answer_lang}, expected {expected_lang}")
    if not refused:
        m.update(citation_scores(answer, raw_text, gold if question.answerable else []))
        if not m["citation_valid"]:
            m["reasons"].append(f"invalid citation markers {m['invalid_markers']}")

    # How the final answer was made, and whether the model's own answer would have passed as it
    # stood: what dropping a check would do (summarize's "ablation").
    m["outcome"] = answer.get("outcome")
    m["decided_by"] = answer.get("decided_by")
    m["checks_failed"] = answer.get("checks_failed") or []
    # The second model (Settings.second_model) was asked in place of a quote, and its answer given.
    m["second_asked"] = "second_s" in t
    m["second_used"] = bool(t.get("second_used"))
    # The judge refused a quote (rag.answer.judge): would the quote have been right? (the judge's ablation)
    if "judge_refused" in t:
        m["judged_quote_right"] = question.answerable and not missing_keywords(t["judge_refused"], question.keywords)
    if raw_text is not None:
        raw_refused = is_refusal(raw_text)
        m["raw_passed"] = ((not raw_refused and not missing_keywords(raw_text, question.keywords))
                           if question.answerable else raw_refused)

    if question.answerable:
        missing = missing_keywords(text, question.keywords) if not refused else list(question.keywords)
        m["missing_keywords"] = missing
        m["correct"] = not refused and not missing
        m["f1"] = round(token_f1(text, question.answer), 4) if question.answer else None
        if refused:
            m["reasons"].append("refused an answerable question")
        elif missing:
            m["reasons"].append("missing keyword(s): " + ", ".join(missing))
        m["passed"] = m["correct"]
    else:
        m["passed"] = refused
        if not refused:
            m["reasons"].append("answered a question the documents cannot answer")
    return m


# --- a whole run ------------------------------------------------------------------------------------

def mean(values: Iterable[float | bool | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), on the non-missing values."""
    vals = sorted(float(v) for v in values if v is not None)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(vals[lo] + (vals[hi] - vals[lo]) * (pos - lo), 4)


METRIC_KEYS = (
    "hit_at_k", "recall_at_k", "mrr", "support_at_k", "answer_accuracy", "token_f1", "language_match",
    "refusal_rate_unanswerable", "false_refusal_rate", "citation_validity", "citation_precision", "citation_recall",
    "direct_answer_rate", "quote_rate", "refusal_rate", "second_answer_rate",
    "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s", "decode_tps_p50",
)
# Metrics where a higher value is worse (used to colour deltas and bars).
LOWER_IS_BETTER = frozenset({"false_refusal_rate", "quote_rate", "refusal_rate", "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s", "retrieval_ms_p50"})


def summarize(records: list[dict], retrieval_only: bool = False) -> dict:
    """The summary.json metrics over per-question records ({"question": {...}, "metrics": {...}})."""
    ans = [r["metrics"] for r in records if r["question"]["answerable"]]
    unans = [r["metrics"] for r in records if not r["question"]["answerable"]]
    with_gold = [r["metrics"] for r in records if r["question"]["answerable"] and r["question"]["sources"]]
    allm = [r["metrics"] for r in records]
    s: dict = {"n": len(records), "n_answerable": len(ans), "n_unanswerable": len(unans),
               "n_errors": sum(1 for m in allm if m.get("error"))}
    # Retrieval: a question that errored counts as a miss, not as absent.
    s["hit_at_k"] = mean(m.get("hit", False) for m in with_gold)
    s["recall_at_k"] = mean(m.get("recall", 0.0) for m in with_gold)
    s["mrr"] = mean(m.get("rr", 0.0) for m in with_gold)
    s["support_at_k"] = mean(m.get("support", False) for r, m in zip(records, allm)
                             if r["question"]["answerable"] and r["question"]["keywords"])
    s["retrieval_ms_p50"] = percentile((m.get("retrieval_ms") for m in allm), 50)
    s["pass_rate"] = mean(m["passed"] for m in allm)
    if retrieval_only:
        s.update({k: None for k in METRIC_KEYS if k not in s})
        return s
    answered = [m for m in allm if not m.get("error")]
    s["answer_accuracy"] = mean(m.get("correct", False) for m in ans)
    # No reference answer -> not scored; an error -> 0.
    s["token_f1"] = mean(m["f1"] if "f1" in m else (0.0 if m.get("error") else None) for m in ans)
    s["language_match"] = mean(m.get("lang_match") for m in answered)
    s["refusal_rate_unanswerable"] = mean(m.get("refused", False) for m in unans)
    s["false_refusal_rate"] = mean(m.get("refused", False) for m in ans)
    not_refused = [m for m in answered if not m.get("refused")]
    s["citation_validity"] = mean(m.get("citation_valid") for m in not_refused)
    s["citation_precision"] = mean(m.get("citation_precision") for m in not_refused)
    s["citation_recall"] = mean(m.get("citation_recall") for m in not_refused)
    # What users feel: of the answerable questions, how often the model's own answer was given,
    # replaced by a quote, or refused (whatever the reason).
    for key, outcome in (("direct_answer_rate", "direct"), ("quote_rate", "quote"), ("refusal_rate", "refusal")):
        s[key] = mean(m.get("outcome") == outcome for m in ans if m.get("outcome"))
    asked = [m for m in ans if m.get("outcome")]
    s["second_answer_rate"] = mean(bool(m.get("second_used")) for m in asked) if asked else None
    s["decided_by"] = dict(Counter(m["decided_by"] for m in answered if m.get("decided_by")).most_common())
    s["ablation"] = ablation(records)
    generated = [m for m in answered if (m.get("prompt_tokens") or 0) > 0]
    s["ttft_p50_s"] = percentile((m.get("ttft_s") for m in generated if m.get("completion_tokens")), 50)
    s["ttft_p95_s"] = percentile((m.get("ttft_s") for m in generated if m.get("completion_tokens")), 95)
    s["latency_p50_s"] = percentile((m.get("total_s") for m in answered), 50)
    s["latency_p95_s"] = percentile((m.get("total_s") for m in answered), 95)
    # A short reply ("NOT FOUND" is 2 tokens) has one or two decode steps: a rate from it is noise.
    s["decode_tps_p50"] = percentile((m.get("decode_tps") for m in generated
                                      if (m.get("completion_tokens") or 0) >= MIN_DECODE_TOKENS), 50)
    return s


def ablation(records: list[dict]) -> dict:
    """What each answer check does on this run, without re-running it: a check that alone turned the
    model's answer down decided that question, so without it the model's answer would have stood.
    made_right: questions that pass because of the check; made_wrong: questions that fail because of it.
    For the quote fallback, a question it answered would have been a refusal without it; for the judge,
    a quote it refused, or an answer it overruled, would have stood."""
    out: dict[str, dict] = {}
    for r in records:
        m = r["metrics"]
        failed = m.get("checks_failed") or []
        if m.get("error") or "raw_passed" not in m:
            continue
        if len(failed) == 1:
            c = out.setdefault(failed[0], {"decided": 0, "made_right": 0, "made_wrong": 0})
            c["decided"] += 1
            c["made_right"] += m["passed"] and not m["raw_passed"]
            c["made_wrong"] += not m["passed"] and m["raw_passed"]
        # Without the judge the quote would stand: wrong for an unanswerable question. (Where the judge
        # overruled the model's answer first, the row above weighs that answer against the final one.)
        if "judged_quote_right" in m and failed != ["judge"]:
            c = out.setdefault("judge", {"decided": 0, "made_right": 0, "made_wrong": 0})
            c["decided"] += 1
            c["made_right"] += not r["question"]["answerable"]
            c["made_wrong"] += m["judged_quote_right"]
        if m.get("outcome") == "quote":
            refusal_passes = not r["question"]["answerable"]
            c = out.setdefault("quote", {"decided": 0, "made_right": 0, "made_wrong": 0})
            c["decided"] += 1
            c["made_right"] += m["passed"] and not refusal_passes
            c["made_wrong"] += not m["passed"] and refusal_passes
    return {k: out[k] for k in sorted(out)}


def by_language(records: list[dict], retrieval_only: bool = False) -> dict:
    """pass rate and hit rate per question language: French and English retrieval differ a lot."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["question"].get("lang") or "?", []).append(r)
    out = {}
    for lang, rs in sorted(groups.items()):
        out[lang] = {"n": len(rs), "pass_rate": mean(r["metrics"]["passed"] for r in rs),
                     "hit_at_k": mean(r["metrics"].get("hit", False) for r in rs
                                      if r["question"]["answerable"] and r["question"]["sources"])}
        if not retrieval_only:
            answerable = [r["metrics"] for r in rs if r["question"]["answerable"]]
            out[lang]["answer_accuracy"] = mean(m.get("correct", False) for m in answerable)
            out[lang]["direct_answer_rate"] = mean(m.get("outcome") == "direct" for m in answerable if m.get("outcome"))
            out[lang]["language_match"] = mean(r["metrics"].get("lang_match") for r in rs)
    return out
