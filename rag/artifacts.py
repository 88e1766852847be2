"""Cached artefacts (model files, the ONNX export, prompt snapshots): atomic publication, the stamps
that let a verified file be trusted while its size and mtime are unchanged, and a file's content
digest remembered so that it is hashed once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from rag.errors import ModelError


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

def content_digest(path: Path, memo_dir: Path) -> str:
    """sha256 of path's content, hashed once per change: remembered in memo_dir (one small file per
    path) with the size and mtime it was computed at. A cache keyed on this instead of an mtime is
    shared by two copies of the same file (two checkouts' virtualenvs) without either remaking it."""
    path = Path(path).resolve()
    memo = Path(memo_dir) / f"{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.json"
    now = file_stamp(path)
    try:
        known = json.loads(memo.read_text())
        if known.get("path") == str(path) and {k: known.get(k) for k in now} == now and isinstance(known.get("sha256"), str):
            return known["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    digest = sha256_file(path)
    with contextlib.suppress(OSError):  # only an optimisation: a read-only cache hashes again next time
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"path": str(path), **now, "sha256": digest}))
        os.replace(tmp, memo)
    return digest

def file_stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

def read_stamp(path: Path) -> dict | None:
    """What was recorded when path was hashed, while its size and mtime are unchanged; else None."""
    try:
        stamp = json.loads(path.with_suffix(".verified.json").read_text())
        if isinstance(stamp, dict) and path.is_file() and {k: stamp.get(k) for k in ("size", "mtime_ns")} == file_stamp(path):
            return stamp
    except (OSError, ValueError):
        pass
    return None

def write_stamp(target: Path, **recorded) -> None:
    """Record that target was hashed; only an optimisation, so a read-only cache just hashes again."""
    with contextlib.suppress(OSError):
        target.with_suffix(".verified.json").write_text(json.dumps({**file_stamp(target), **recorded}))

@contextlib.contextmanager
def publishing(target: Path, doing: str):
    """A temporary path to write target's content to, renamed onto target in one step on success;
    removed whatever happens. doing ("assemble model x.gguf") names the step in the error."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        # A full disk or a read-only cache is the usual cause; the half-written file is removed below.
        raise ModelError(f"cannot {doing} in {target.parent} ({_os_reason(e)}); "
                         "free some disk space or set RAG_CACHE_DIR to a writable folder") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()

def _os_reason(e: OSError) -> str:
    return f"{e.strerror or e}: {e.filename}" if e.filename else str(e.strerror or e)
