"""A LangChain retriever over our own index, which follows the index's published version.

The scheduled rebuild publishes a new version by switching the index's CURRENT pointer. The
retriever checks that pointer at most every `reload_interval_s` seconds and opens the new
version when it changes, so a running chat picks it up without a restart. A question that
already retrieved its chunks keeps them, so answers streaming at the switch finish on the
old version.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import PrivateAttr

from index_builder.errors import IndexBuilderError
from index_builder.store import Hit, IndexReader, current_version, open_index

logger = logging.getLogger(__name__)


class IndexRetriever(BaseRetriever):
    """Return the `k` chunks that best match a query, each with its file, page and scores.

    Besides the mode's own `score`, each document's metadata carries the index's
    `dense_score` (cosine similarity) and `keyword_score` (BM25), None where that ranking did
    not return the chunk. `invoke(query, k=...)` overrides `k` for one call.
    """

    reader: Any  # IndexReader; pydantic cannot validate the FAISS-backed class itself
    k: int = 5
    mode: str = "hybrid"
    index_path: Path | None = None  # the index root to follow; None keeps `reader` for good
    reload_interval_s: float = 15.0

    _checked_at: float = PrivateAttr(default_factory=time.monotonic)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        self.follow_published_version()
        reader: IndexReader = self.reader
        k = self.k if k is None else k
        return [_document(hit) for hit in reader.search(query, k=k, mode=self.mode)]

    def follow_published_version(self) -> None:
        """Open the index's newly published version, if CURRENT changed since the last check."""
        if self.index_path is None or time.monotonic() - self._checked_at < self.reload_interval_s:
            return
        # One thread reloads; the others keep searching the version they have meanwhile.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked_at = time.monotonic()
            published = current_version(self.index_path)
            if published is None or published == getattr(self.reader, "version", None):
                return
            reader = open_index(self.index_path)
            logger.info("switched to index version %s (%d chunks)", reader.version, reader.chunk_count)
            self.reader = reader
        except IndexBuilderError:
            # A broken new version must not stop the chat: keep serving the one that works.
            logger.exception("could not open the newly published version of %s", self.index_path)
        finally:
            self._lock.release()


def _document(hit: Hit) -> Document:
    return Document(
        page_content=hit.text,
        metadata={
            "chunk_id": hit.chunk_id,
            "score": hit.score,
            "dense_score": hit.dense_score,
            "keyword_score": hit.keyword_score,
            "file_name": hit.file_name,
            "page": hit.page,
            "chunk_no": hit.chunk_no,
            "source_uri": hit.source_uri,
        },
    )


def widen(reader: IndexReader, documents: list[Document], max_chars: int) -> list[Document]:
    """Replace each chunk's text with its neighbourhood of up to `max_chars` characters.

    The neighbourhood is the chunk with the chunks just before and after it on the same
    page (`IndexReader.context`), so the chunk's page stays the page to cite. The matched
    chunk's own text moves to metadata["chunk_text"]. `max_chars` 0 keeps each chunk alone.
    """
    widened = []
    for document in documents:
        chunk_text = document.page_content
        context = chunk_text
        if max_chars > 0:
            context = reader.context(document.metadata["chunk_id"], max_chars=max_chars)
            # The reader cuts a chunk longer than max_chars; the model still gets the whole chunk.
            if len(context) < len(chunk_text):
                context = chunk_text
        widened.append(Document(page_content=context, metadata={**document.metadata, "chunk_text": chunk_text}))
    return widened


def drop_repeated(documents: list[Document]) -> list[Document]:
    """Drop each document whose chunk is already inside an earlier document's neighbourhood.

    Two matched chunks side by side on one page would otherwise reach the model twice,
    under two numbers.
    """
    kept: list[Document] = []
    for document in documents:
        chunk_text = document.metadata.get("chunk_text", document.page_content).strip()
        if not any(chunk_text in earlier.page_content for earlier in kept):
            kept.append(document)
    return kept
