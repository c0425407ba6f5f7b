"""Keep the embedded default's index in step with its folder of sample PDFs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from index_builder.build import build_index
from serving.budget import TokenLimits

logger = logging.getLogger(__name__)


def ensure_index(samples: Path, index_dir: Path, *, force: bool = False) -> None:
    """Build `index_dir` from `samples` unless its manifest already lists exactly those PDFs."""
    if not samples.is_dir():
        raise FileNotFoundError(
            f"sample folder {samples} not found: pass --samples with a folder of PDFs"
        )

    expected = sorted(p.name for p in samples.iterdir() if p.suffix.lower() == ".pdf")
    manifest_path = index_dir / "manifest.json"
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        indexed = sorted(doc["file_name"] for doc in manifest.get("documents", []))
        if indexed == expected:
            logger.info("index %s already contains the %d sample PDFs", index_dir, len(expected))
            return

    # NOTE: a changed PDF with an unchanged name is not detected here; pass --rebuild.
    logger.info("building index %s from %d PDFs in %s", index_dir, len(expected), samples)
    build_index(str(samples), index_dir)


def local_token_limits(model_dir: Path) -> TokenLimits:
    """Token limits of the local model: its context length, a quarter of it kept for the answer."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    context = int(config["max_position_embeddings"])
    return TokenLimits(context * 3 // 4, context, source=f"{model_dir / 'config.json'} max_position_embeddings")
