"""Keep the embedded default's index in step with its folder of sample PDFs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from chat_ui.settings import ChatSettings
from index_builder.build import build_index
from serving.budget import TokenLimits

logger = logging.getLogger(__name__)

# `transformers serve` on a CPU generates for one request at a time, and a request waiting
# inside it sends no token, so the client's stall timeout can end it. Gradio's queue, which
# shows each user their position, holds the rest. 2 is the lowest limit ChatSettings allows.
LOCAL_ENGINE_CONCURRENCY = 2


def ensure_index(samples: Path, index_dir: Path, *, force: bool = False) -> None:
    """Bring `index_dir` up to date with the PDFs in `samples`.

    The build is incremental: with no PDF changed it publishes nothing and takes about a
    second, so it runs on every start. `force` re-reads every PDF.
    """
    if not samples.is_dir():
        raise FileNotFoundError(f"sample folder {samples} not found: pass --samples with a folder of PDFs")

    logger.info("updating index %s from the PDFs in %s", index_dir, samples)
    build_index(str(samples), index_dir, full=force)


def local_token_limits(model_dir: Path) -> TokenLimits:
    """Token limits of the local model: its context length, a quarter of it kept for the answer."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    context = int(config["max_position_embeddings"])
    return TokenLimits(context * 3 // 4, context, source=f"{model_dir / 'config.json'} max_position_embeddings")


def match_local_engine(settings: ChatSettings) -> ChatSettings:
    """Limit concurrent answers to what the local engine serves, unless the operator set a limit."""
    if "concurrency_limit" in settings.model_fields_set:
        return settings
    logger.info(
        "answering %d questions at a time, as the local engine generates one at a time; "
        "set VERACLAIM_CONCURRENCY_LIMIT to change it",
        LOCAL_ENGINE_CONCURRENCY,
    )
    return settings.model_copy(update={"concurrency_limit": LOCAL_ENGINE_CONCURRENCY})
