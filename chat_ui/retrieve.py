"""A LangChain retriever over our own index, so the pipeline works with standard Documents."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from index_builder.store import IndexReader


class IndexRetriever(BaseRetriever):
    """Return the `k` chunks that best match a query, each with its file, page and score."""

    reader: Any  # IndexReader; pydantic cannot validate the FAISS-backed class itself
    k: int = 5
    mode: str = "hybrid"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
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
