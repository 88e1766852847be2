"""The held-out question sets the quality numbers rest on (eval/*.jsonl but the seeds', which
test_evaluate.py checks against the seed documents): each one's shape, the issue's minimum mix, and a
split fixed by the id alone, so no question can move between dev and test after a run. Their
keywords are checked against the documents only where the corpus is built (eval/corpora/build.py)."""

import hashlib

import pytest
from helpers import ROOT, load_script

from rag.ingest.loaders.html import parse_html
from rag.measure.evaluate import load_questions
from rag.measure.metrics import contains_keyword, normalize

# The corpora and their languages, from the script that builds them.
CORPORA = load_script("build", ROOT / "eval" / "corpora").CORPORA
HELD_OUT = sorted(CORPORA)


def split_of(qid: str) -> str:
    return "dev" if hashlib.sha256(qid.encode()).digest()[0] >= 128 else "test"


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_set_has_the_issue_minimum_and_a_hash_split(name):
    qset = load_questions(ROOT / "eval" / f"{name}.jsonl")
    assert qset.warnings == []
    qs = qset.questions
    corpus_lang = CORPORA[name][3]
    assert len(qs) >= 60 and len({q.id for q in qs}) == len(qs)
    assert sum(not q.answerable for q in qs) >= 0.15 * len(qs)
    assert sum(q.lang != corpus_lang for q in qs) >= 0.20 * len(qs)
    assert sum(len(q.keywords) > 1 for q in qs) >= 3  # some need two facts
    for q in qs:
        assert q.extra.get("split") == split_of(q.id), q.id
        if q.answerable:
            assert q.keywords and q.sources and normalize(q.answer), q.id
        else:
            assert not q.keywords and not q.sources, q.id


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_keywords_are_in_their_sources(name):
    folder = ROOT / "eval" / "corpora" / name
    if not folder.is_dir():
        pytest.skip(f"eval/corpora/{name} is not built: python eval/corpora/build.py {name} (apt-get install {CORPORA[name][0]})")
    texts: dict[str, str] = {}
    for q in load_questions(ROOT / "eval" / f"{name}.jsonl").questions:
        if not q.answerable:
            continue
        for s in q.sources:
            if s not in texts:
                path = folder / s  # sources are paths below the corpus folder ("faq/general.html")
                assert path.is_file(), (q.id, s)
                texts[s] = normalize(parse_html(path.read_text(encoding="utf-8", errors="replace"))[0])
        gold = " ".join(texts[s] for s in q.sources)
        for k in q.keywords:
            assert contains_keyword(gold, k), (q.id, k)
