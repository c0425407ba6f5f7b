"""An optional cross-encoder that reorders retrieved chunks before they reach the model.

A cross-encoder reads the query and a chunk together and scores the pair, which ranks
better than comparing two separately made embeddings, but costs one model call per chunk.
The pipeline therefore retrieves `rerank_candidates` times `top_k` chunks, reranks them,
and keeps the best `top_k`. Set ChatSettings.reranker_model (VERACLAIM_RERANKER_MODEL) to
a sentence-transformers CrossEncoder folder, or to a hub id already in the local cache:
the chat app keeps the model hub offline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.documents import Document

from chat_ui.errors import RerankerLoadError

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

logger = logging.getLogger(__name__)

SETTING = "VERACLAIM_RERANKER_MODEL"


class Reranker:
    """A loaded CrossEncoder that sorts documents by its score for the query, best first."""

    def __init__(self, name: str, model: CrossEncoder) -> None:
        self.name = name
        self._model = model
        # NOTE: torch modules are not documented as safe for concurrent forward passes, and
        # the chat answers several questions at once, so calls are serialised.
        self._lock = threading.Lock()

    def scores(self, query: str, documents: Sequence[Document]) -> list[float]:
        """Return the cross-encoder's score of each (query, document text) pair."""
        if not documents:
            return []
        pairs = [(query, document.metadata.get("chunk_text", document.page_content)) for document in documents]
        with self._lock:
            scores = self._model.predict(pairs, show_progress_bar=False, convert_to_numpy=True)
        return [float(score) for score in scores]

    def rerank(self, query: str, documents: Sequence[Document]) -> list[Document]:
        """Return `documents` sorted by cross-encoder score, each with metadata["rerank_score"].

        The sort is stable, so documents with equal scores keep their retrieval order.
        """
        scored = zip(self.scores(query, documents), documents, strict=True)
        reranked = sorted(scored, key=lambda pair: -pair[0])
        return [
            Document(page_content=document.page_content, metadata={**document.metadata, "rerank_score": score})
            for score, document in reranked
        ]


def load_reranker(name: str) -> Reranker:
    """Load the CrossEncoder at `name`, a local folder or a hub id in the local cache.

    Raises RerankerLoadError naming the setting when sentence-transformers is missing or
    the model cannot be loaded, as for a hub id that is not cached while the hub is offline.
    """
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as error:
        raise RerankerLoadError(
            f"{SETTING}={name!r} needs sentence-transformers, which is not installed. "
            f"Install it with `pip install sentence-transformers`, or unset {SETTING}."
        ) from error

    is_local = Path(name).expanduser().is_dir()
    logger.info("loading reranker %s", name)
    try:
        # The chat never downloads: a hub id must already be in the local cache.
        model = CrossEncoder(str(Path(name).expanduser()) if is_local else name, local_files_only=True)
    except (OSError, ValueError) as error:
        where = "the folder" if is_local else "the hub id, which is not in the local cache (the model hub is offline)"
        raise RerankerLoadError(
            f"cannot load the reranker {SETTING}={name!r} from {where}: {str(error).rstrip('.')}. Set {SETTING} to a local "
            "sentence-transformers CrossEncoder folder, or unset it to turn reranking off."
        ) from error
    return Reranker(name, model)
