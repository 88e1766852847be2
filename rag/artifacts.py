"""Cached artefacts (model files, the ONNX export, prompt snapshots): atomic publication and the stamps
that let a verified file be trusted while its size and mtime are unchanged."""

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
