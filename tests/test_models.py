"""The runtime quantization of a preset: derived once from the verified shipped file, remade when stale."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from rag.errors import ModelError
from rag.generation import models


class RecordingQuantizer:
    """Writes a deterministic function of the source, so a test can tell which source made a file."""

    def __init__(self, fail: bool = False):
        self.calls = []
        self.fail = fail

    def __call__(self, source, target, type_name):
        self.calls.append((source, target, type_name))
        if self.fail:
            target.write_bytes(b"half")
            raise ModelError("llama.cpp could not re-quantize (disk full)")
        target.write_bytes(b"GGUF" + hashlib.sha256(source.read_bytes()).digest() + type_name.encode())


@pytest.fixture
def runtime_preset(tiny_preset):
    preset, _, blob = tiny_preset
    return dataclasses.replace(preset, runtime_type="q4_0"), blob


def test_runtime_file_is_derived_once_from_the_verified_shipped_file(runtime_preset, tmp_path):
    preset, blob = runtime_preset
    quantize = RecordingQuantizer()
    path = models.ensure_runtime(preset, tmp_path, quantize=quantize)
    assert path == models.runtime_path(preset, tmp_path) and path.name == "tiny.q4_0.gguf"
    (source, _, type_name), = quantize.calls
    assert source.read_bytes() == blob and type_name == "q4_0"
    assert path.read_bytes() == b"GGUF" + hashlib.sha256(blob).digest() + b"q4_0"
    assert models.ensure_runtime(preset, tmp_path, quantize=quantize) == path
    assert len(quantize.calls) == 1, "a fresh runtime file is reused"
    assert models.model_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("change", ["altered-file", "deleted-file", "other-llama-cpp", "bad-stamp"])
def test_stale_runtime_file_is_made_again(runtime_preset, tmp_path, monkeypatch, change):
    preset, _ = runtime_preset
    quantize = RecordingQuantizer()
    path = models.ensure_runtime(preset, tmp_path, quantize=quantize)
    if change == "altered-file":
        path.write_bytes(b"GGUF truncated")
    elif change == "deleted-file":
        path.unlink()
    elif change == "other-llama-cpp":
        recipe = models.runtime_recipe(preset)
        monkeypatch.setattr(models, "runtime_recipe", lambda p: {**recipe, "llama_cpp": "99.0"})
    elif change == "bad-stamp":
        path.with_suffix(".verified.json").write_text("[1, 2]")
    models.ensure_runtime(preset, tmp_path, quantize=quantize)
    assert len(quantize.calls) == 2
    assert path.read_bytes().startswith(b"GGUF") and path.stat().st_size == 4 + 32 + 4


def test_failed_quantization_publishes_nothing(runtime_preset, tmp_path):
    preset, _ = runtime_preset
    with pytest.raises(ModelError, match="re-quantize"):
        models.ensure_runtime(preset, tmp_path, quantize=RecordingQuantizer(fail=True))
    folder = tmp_path / "models"
    assert not models.runtime_path(preset, tmp_path).exists()
    assert not list(folder.glob(".*.tmp")), "no half-written file left behind"
    assert (folder / preset.filename).is_file(), "the shipped file stays usable"


def test_preset_without_runtime_type_and_requantize_off_run_the_shipped_file(tiny_preset, tmp_path, monkeypatch):
    preset, _, blob = tiny_preset
    quantize = RecordingQuantizer()
    assert models.ensure_runtime(preset, tmp_path, quantize=quantize).read_bytes() == blob
    monkeypatch.setitem(models.PRESETS, "tiny", dataclasses.replace(preset, runtime_type="q4_0"))
    assert models.resolve_model("tiny", tmp_path, requantize=False).read_bytes() == blob
    assert quantize.calls == []


def test_unwritable_runtime_folder_is_a_model_error(runtime_preset, tmp_path):
    preset, _ = runtime_preset
    models.ensure_preset(preset, tmp_path)
    target = models.runtime_path(preset, tmp_path)
    target.mkdir()  # a folder where the file should go: the rename fails
    (target / "x").write_text("keep")
    with pytest.raises(ModelError, match="RAG_CACHE_DIR"):
        models.ensure_runtime(preset, tmp_path, quantize=RecordingQuantizer())
    assert (target / "x").read_text() == "keep"


@pytest.mark.slow
def test_real_default_preset_runs_as_q4_0(tmp_path):
    """The real llama.cpp quantizer on the bundled model: a loadable GGUF of type Q4_0 (file type 2)."""
    from llama_cpp import Llama

    settings_cache = tmp_path / "cache"
    shipped = models.ensure_preset(models.PRESETS["default"], settings_cache)
    path = models.ensure_runtime(models.PRESETS["default"], settings_cache)
    assert path != shipped and path.stat().st_size < shipped.stat().st_size
    llm = Llama(str(path), vocab_only=True, verbose=False)
    assert llm.metadata["general.file_type"] == "2"
    assert llm.tokenize(b"Kiev") == Llama(str(shipped), vocab_only=True, verbose=False).tokenize(b"Kiev")
