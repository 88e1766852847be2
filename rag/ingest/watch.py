"""`rag index --watch`: index the folder again whenever a file in it is added, changed or removed.

Polling, not inotify: watchfiles is not among the dependencies (Gradio 6 does not bring it), and a
stat of every file is what an unchanged `rag index` costs anyway (about 10 ms a thousand files here),
so a 2-second poll is cheap and works on network and container mounts where inotify does not.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from rag.config import Settings
from rag.errors import RagError
from rag.ingest.indexing import IndexStats, build_index, list_folder
from rag.schema import Embedder


def folder_state(root: Path) -> tuple:
    """What a change to any supported file under root changes: paths, sizes, modification times."""
    return tuple((p.rel, p.size, p.mtime_ns) for p in list_folder(Path(root), IndexStats()))


def watch(settings: Settings, embedder: Embedder, on_build: Callable[[IndexStats | RagError], None],
          stop: threading.Event, interval: float = 2.0, build: Callable[[], IndexStats] | None = None) -> None:
    """Build now, then again after every change, until stop is set. A build that fails (a folder
    emptied, a file locked) is reported through on_build and the watch goes on."""
    build = build or (lambda: build_index(settings, embedder))
    seen = None
    while not stop.is_set():
        try:
            state = folder_state(settings.docs_dir)
        except RagError as e:  # the folder itself vanished: say so once, keep watching for it
            state = e.args
        if state != seen:
            seen = state
            try:
                on_build(build())
            except RagError as e:
                on_build(e)
        stop.wait(interval)
