"""A disk cache of llama.cpp KV state for stable prompt prefixes (system prompt + worked examples).

A fresh process would otherwise recompute the same few hundred prefix tokens before every first
answer (about 2.5 s on 2 cores). An entry is addressed by the SHA-256 of a fingerprint (model
SHA-256, context size, attention layout, llama.cpp version, format) together with the exact prefix
tokens, so a changed model, setting or prompt can never load a stale state: it simply misses, and
least-recently-used entries beyond `max_entries` are deleted.

The KV bytes are read and written by callables, so this module holds no llama.cpp code and is
testable without a model; `rag.generation.llama` supplies llama_state_seq_save_file/load_file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from pathlib import Path
from typing import Callable, Sequence

FORMAT = 1
SUFFIX = ".kv"

# (path) -> True when the state was written to path.
Writer = Callable[[Path], bool]
# (path) -> the prefix tokens stored with the state (now loaded into the model), or None on failure.
Reader = Callable[[Path], "list[int] | None"]


def prefix_key(fingerprint: dict, tokens: Sequence[int]) -> str:
    """Content address of one prefix state: any change to the fingerprint or the tokens changes it."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, **fingerprint}, sort_keys=True).encode())
    h.update(array("i", tokens).tobytes())
    return h.hexdigest()


class PromptCache:
    def __init__(self, folder: Path, fingerprint: dict, max_entries: int = 8):
        self.folder = Path(folder)
        self.fingerprint = dict(fingerprint)
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def path_for(self, tokens: Sequence[int]) -> Path:
        return self.folder / f"{prefix_key(self.fingerprint, tokens)[:40]}{SUFFIX}"

    def load(self, tokens: Sequence[int], read: Reader) -> bool:
        """Restore the state of exactly these prefix tokens; False (and nothing loaded) on a miss."""
        path = self.path_for(tokens)
        if not path.is_file():
            self.misses += 1
            return False
        try:
            loaded = read(path)
        except OSError:
            loaded = None
        if loaded is None or list(loaded) != list(tokens):
            # Unreadable or not what its name promises (truncated write, foreign file): drop it.
            self._remove(path)
            self.misses += 1
            return False
        self.hits += 1
        try:
            os.utime(path)  # recency for the LRU pruning
        except OSError:
            pass
        return True

    def save(self, tokens: Sequence[int], write: Writer) -> Path | None:
        """Write the state for these tokens atomically (temp file, then rename); None if it failed."""
        path = self.path_for(tokens)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None  # a read-only cache folder costs speed, never an answer
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if not write(tmp):
                return None
            os.replace(tmp, path)
            meta = {**self.fingerprint, "format": FORMAT, "n_tokens": len(tokens), "saved_at": time.time()}
            path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        except OSError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        self.prune()
        return path

    def entries(self) -> list[Path]:
        """Cached states, most recently used first."""
        if not self.folder.is_dir():
            return []
        files = [p for p in self.folder.glob(f"*{SUFFIX}") if p.is_file()]
        return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def prune(self) -> None:
        for stale in self.entries()[self.max_entries:]:
            self._remove(stale)

    def clear(self) -> None:
        for p in self.entries():
            self._remove(p)

    @staticmethod
    def _remove(path: Path) -> None:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)


def cached_model_sha256(model_path: Path, folder: Path) -> str:
    """The model's SHA-256, remembered per (path, size, mtime) so a custom .gguf is hashed once,
    not on every start (about 1 s per GB)."""
    from rag.generation.models import model_sha256

    model_path = Path(model_path).resolve()
    st = model_path.stat()
    stamp = f"{model_path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = Path(folder) / "model-sha256.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if stamp in memo:
        return memo[stamp]
    digest = model_sha256(model_path)
    memo = {k: v for k, v in memo.items() if not k.startswith(f"{model_path}|")}
    memo[stamp] = digest
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".{memo_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        os.replace(tmp, memo_file)
    except OSError:
        pass
    return digest


class SnapshotCache:
    """The last few KV states of this process, in RAM, keyed by their tokens.

    The model has one KV cache, and prompts of a different shape (the follow-up rewrite) replace it;
    restoring a snapshot lets the next answer resume where the previous answer prompt left off
    (its system prompt and, often, its passages) instead of recomputing them. About 12 KB per
    token for the default model, so a few snapshots cost tens of MB.
    """

    def __init__(self, max_entries: int = 2, max_bytes: int = 64 << 20):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: list[tuple[list[int], bytes]] = []  # (tokens, state: bytes or a ctypes buffer)  # most recently used last

    def __len__(self) -> int:
        return len(self._items)

    def best(self, tokens: Sequence[int], common: Callable[[Sequence[int], Sequence[int]], int]) -> tuple[int, int]:
        """(index, common prefix length) of the snapshot sharing the longest prefix; (-1, 0) if none."""
        best, length = -1, 0
        for i, (snap, _) in enumerate(self._items):
            n = common(snap, tokens)
            if n > length:
                best, length = i, n
        return best, length

    def take(self, index: int) -> tuple[list[int], bytes]:
        item = self._items.pop(index)
        self._items.append(item)
        return item

    def holds(self, tokens: Sequence[int]) -> bool:
        return any(len(s) == len(tokens) and list(s) == list(tokens) for s, _ in self._items)

    def put(self, tokens: Sequence[int], data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        self._items = [(s, d) for s, d in self._items if list(s) != list(tokens)]
        self._items.append((list(tokens), data))
        while len(self._items) > self.max_entries or sum(len(d) for _, d in self._items) > self.max_bytes:
            self._items.pop(0)
