"""The package layout holds: imports only go down the pipeline, and modules stay small."""

import ast
from pathlib import Path

RAG = Path(__file__).resolve().parent.parent / "rag"

# Lowest first: a module may import its own package and any package ranked below it.
LAYERS = ["core", "text", "ingest", "retrieval", "generation", "answer", "measure", "apps"]
MAX_LINES = 400


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "core"


def rag_imports(path: Path) -> list[tuple[int, str]]:
    """Every rag module path imports, at any depth (lazy imports inside functions count too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rag":
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "rag"]
    return out


def modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(RAG.parent).with_suffix("").parts).removesuffix(".__init__"), p)
            for p in sorted(RAG.rglob("*.py"))]


def test_imports_only_go_down_the_pipeline():
    upward = []
    for name, path in modules():
        own = LAYERS.index(layer(name))
        for line, target in rag_imports(path):
            if target == "rag":
                continue
            if LAYERS.index(layer(target)) > own:
                upward.append(f"{path.relative_to(RAG.parent)}:{line} imports {target}")
    assert not upward, "imports going up the pipeline:\n" + "\n".join(upward)


def test_layer_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from rag.answer.assistant import Assistant\n")
    assert [t for _, t in rag_imports(bad)] == ["rag.answer.assistant"]
    assert LAYERS.index(layer("rag.answer.assistant")) > LAYERS.index(layer("rag.ingest.loaders"))


def test_every_package_says_what_it_owns_and_may_import():
    for pkg in LAYERS[1:]:
        doc = ast.get_docstring(ast.parse((RAG / pkg / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"rag/{pkg}/__init__.py needs a docstring saying what it may import"


def test_no_module_over_the_size_limit():
    big = [f"{p.relative_to(RAG.parent)}: {n} lines" for _, p in modules()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not big, "split these modules:\n" + "\n".join(big)
