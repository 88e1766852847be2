"""scripts/pinned_requirements.py: what scripts/setup.sh installs while llama.cpp compiles."""

from __future__ import annotations

import tomllib

from tests.helpers import ROOT, load_script


def test_every_pinned_requirement_but_the_compiled_one_with_extras_expanded():
    reqs = load_script("pinned_requirements").requirements(ROOT / "pyproject.toml", without=("llama_cpp_python",))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(r.lower().startswith("llama-cpp-python") for r in reqs), "the compiled package is left out, whatever its spelling"
    assert not any(r.startswith("rag[") for r in reqs), "the project's own extras are expanded"
    for group in ("quality", "milvus"):  # extras the dev extra names
        assert set(project["optional-dependencies"][group]) <= set(reqs)
    assert "pytest==9.2.0" in reqs and "torch==2.13.0" in reqs
    assert all("==" in r for r in reqs), "set-up installs exact pins only"
    assert len(reqs) == len(set(reqs))


def test_nothing_left_out_when_nothing_is_named(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\ndependencies = ["a==1", "b-c==2"]\n'
        '[project.optional-dependencies]\nx = ["d==3"]\ndev = ["demo[x]", "a==1", "e==4"]\n')
    script = load_script("pinned_requirements")
    assert script.requirements(tmp_path / "pyproject.toml") == ["a==1", "b-c==2", "d==3", "e==4"]
    assert script.requirements(tmp_path / "pyproject.toml", without=("B_C",)) == ["a==1", "d==3", "e==4"]
