"""A one-shot command's clock starts with its process, and answering reads the lexical index without scipy."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from rag.apps.startup import Stages, process_age


def test_a_fresh_process_knows_its_age_from_its_start():
    code = "import time; time.sleep(0.3); from rag.apps.startup import process_age; print(process_age())"
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    outside = time.perf_counter() - t0
    age = float(done.stdout)
    assert 0.3 <= age <= outside + 0.02  # the kernel's start time has a 10 ms tick
    assert process_age() is not None  # this process reads its own too


def test_stages_are_moments_and_durations_on_one_clock():
    stages = Stages()
    stages.mark("a")
    with stages.timed("work"):
        time.sleep(0.01)
    stages.mark("b")
    stages.mark("a")  # a moment is recorded once: the first time it happens
    assert stages.times["a"] <= stages.times["b"] and stages.times["work"] >= 0.01
    assert stages.times["b"] - stages.times["a"] >= stages.times["work"] - 0.001


def test_a_saved_index_searched_without_scipy_scores_as_with_it(tmp_path):
    """bm25s builds with scipy (rag index); a process that only answers imports it without (0.26 s)."""
    from rag.ingest.bm25 import LexicalIndex

    texts = ["Le ministre a signé la lettre d'intention avec la France.", "Les drones sont produits en Ukraine.",
             "La France et l'Ukraine produisent des drones ensemble.", "Rien à voir ici."]
    index = LexicalIndex.build(texts, "fr")
    index.save(tmp_path)
    expected = index.search("drones France Ukraine", 4)
    code = ("import sys, json\nfrom rag.apps.startup import import_bm25s_for_search\nimport_bm25s_for_search()\n"
            "from rag.ingest.bm25 import LexicalIndex\n"
            f"hits = LexicalIndex.load(__import__('pathlib').Path({str(tmp_path)!r}), 'fr').search('drones France Ukraine', 4)\n"
            "print(json.dumps([hits, 'scipy.sparse' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    hits, scipy_loaded = json.loads(done.stdout)
    assert not scipy_loaded
    assert [(i, round(s, 6)) for i, s in hits] == [(i, round(s, 6)) for i, s in expected] and hits


@pytest.mark.slow
def test_a_real_one_shot_ask_loads_only_what_it_uses(seed_index):
    """The real models on the seeds: the model loads in its thread, start-up stages are reported, and
    no library the answer does not use is imported (transformers, torch, scipy, lingua, the web stack)."""
    index = seed_index
    heavy = ["transformers", "torch", "scipy", "lingua", "gradio", "fastapi", "httpx", "sentence_transformers"]
    code = ("import sys\nfrom rag.apps.cli import main\ntry:\n"
            f"    main(['ask', \"Qu'ont signé l'Ukraine et la France ?\", '--json', '--index', {str(index)!r}])\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr[-500:]
    answer = json.loads(done.stdout)
    startup = answer["timings"]["startup"]
    assert answer["citations"] and startup["model_load_s"] > 0
    assert startup["imports_s"] < startup["first_token_s"] < startup["total_s"]
