"""Print the project's pinned requirements, extras expanded, without the ones named on the command
line: scripts/setup.sh installs them while llama-cpp-python compiles (it goes in afterwards, built here).

    python scripts/pinned_requirements.py llama-cpp-python > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503); `packaging` is not in a new venv yet."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Path, extra: str = "dev", without: tuple[str, ...] = ()) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    name = project["name"]
    skip = {canonical(n) for n in without}

    def expand(reqs):
        for req in reqs:
            if req.startswith(f"{name}["):  # the project's own extras: their requirements instead
                for inner in req[len(name) + 1:-1].split(","):
                    yield from expand(extras[inner.strip()])
            elif canonical(re.split(r"[\[=<>!~; ]", req, maxsplit=1)[0]) not in skip:
                yield req

    return list(dict.fromkeys(expand(project["dependencies"] + extras[extra])))


if __name__ == "__main__":
    print("\n".join(requirements(Path(__file__).resolve().parent.parent / "pyproject.toml", without=tuple(sys.argv[1:]))))
