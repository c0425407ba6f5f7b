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
from index_builder.store import IndexReader, current_version, open_index

logger = logging.getLogger(__name__)


class IndexRetriever(BaseRetriever):
    """Return the `k` chunks that best match a query, each with its file, page and score."""

    reader: Any  # IndexReader; pydantic cannot validate the FAISS-backed class itself
    k: int = 5
    mode: str = "hybrid"
    index_path: Path | None = None  # the index root to follow; None keeps `reader` for good
    reload_interval_s: float = 15.0

    _checked_at: float = PrivateAttr(default_factory=time.monotonic)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        self.follow_published_version()
        reader: IndexReader = self.reader
        hits = reader.search(query, k=self.k, mode=self.mode)
        return [
            Document(
                page_content=hit.text,
                metadata={
                    "chunk_id": hit.chunk_id,
                    "score": hit.score,
                    "file_name": hit.file_name,
                    "page": hit.page,
                    "chunk_no": hit.chunk_no,
                    "source_uri": hit.source_uri,
                },
            )
            for hit in hits
        ]

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
