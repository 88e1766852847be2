"""scripts/split_scores.py: the paired comparison of two runs that docs/quality.md decides by."""

import json

from helpers import ROOT, load_script


def script(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports eval_sets beside it
    module = load_script("split_scores")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def write_run(root, label, outcomes):
    """runs/<label>-seeds-dev/results.jsonl with one answerable question per outcome (True: right)."""
    folder = root / "runs" / f"{label}-seeds-dev"
    folder.mkdir(parents=True)
    rows = [{"id": f"q{i}", "question": {"answerable": True, "question": f"q{i}?"}, "answer": {"answer": str(ok)},
             "metrics": {"correct": ok, "outcome": "direct"}} for i, ok in enumerate(outcomes)]
    (folder / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")


def test_the_sign_test_of_flips(monkeypatch, tmp_path):
    s = script(monkeypatch, tmp_path)
    assert s.sign_test(0, 0) == 1.0
    assert abs(s.sign_test(0, 6) - 2 / 64) < 1e-12  # all six flips one way: p 0.03
    assert abs(s.sign_test(2, 4) - 2 * (1 + 6 + 15) / 64) < 1e-12  # p 0.69
    assert s.sign_test(4, 2) == s.sign_test(2, 4)
    assert s.sign_test(3, 3) == 1.0


def test_a_run_is_compared_question_by_question(monkeypatch, tmp_path):
    s = script(monkeypatch, tmp_path)
    write_run(tmp_path, "a", [True, True, False, False, True])
    write_run(tmp_path, "b", [True, False, True, True, True])
    line = s.paired("a", "b", "dev")
    assert "2 made right, 1 made wrong" in line and "p = 1.00" in line
    assert "score   4" in s.summary("b", "dev") and "seeds 4/5" in s.summary("b", "dev")
    assert "python-en -" in s.summary("b", "dev"), "a set without a run is shown as missing"
