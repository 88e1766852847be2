"""The lexical half of the index: BM25 over chunk texts (bm25s), built at indexing time, saved beside
the vectors and searched by rag.retrieval."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.text.lexical import tokenize


class LexicalIndex:
    """BM25 over chunk texts."""

    def __init__(self, bm25, lang: str):
        self.bm25 = bm25
        self.lang = lang

    @classmethod
    def build(cls, texts: list[str], lang: str) -> "LexicalIndex":
        import bm25s

        tok = word_tokenizer(lang)
        corpus = [tok(t) or ["\u2205"] for t in texts]
        bm25 = bm25s.BM25()
        bm25.index(_as_tokenized(corpus), show_progress=False)
        return cls(bm25, lang)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(chunk position, BM25 score) of the best k chunks with a positive score."""
        terms = [t for t in tokenize(query, self.lang) if t in self.bm25.vocab_dict]
        if not terms or k <= 0:
            return []
        scores = self.bm25.get_scores(terms)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def known_share(self, query: str) -> float:
        """Share of the query's terms that occur in the corpus (0 for a query without terms)."""
        terms = tokenize(query, self.lang)
        return sum(t in self.bm25.vocab_dict for t in terms) / len(terms) if terms else 0.0

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder))

    @classmethod
    def load(cls, folder: Path, lang: str, mmap: bool = False) -> "LexicalIndex":
        """mmap: the score arrays stay on disk and are paged in as queries touch them (large indexes)."""
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=mmap), lang)


def word_tokenizer(lang: str):
    """tokenize() for many texts, each distinct word tokenized once: tokenize works word by word
    after removing elisions, so the tokens are the same (tests/test_large_index.py checks it);
    building BM25 over a million chunks spent most of its time folding and stemming otherwise."""
    from rag.text.lexical import _ELISION, _WORD

    memo: dict[str, list[str]] = {}

    def run(text: str) -> list[str]:
        out: list[str] = []
        for w in _WORD.findall(_ELISION.sub(" ", text)):
            toks = memo.get(w)
            if toks is None:
                toks = memo[w] = tokenize(w, lang)
            out += toks
        return out

    return run


def _as_tokenized(corpus: list[list[str]]):
    """bm25s wants token ids plus a vocabulary."""
    from bm25s.tokenization import Tokenized

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in corpus]
    return Tokenized(ids=ids, vocab=vocab)
