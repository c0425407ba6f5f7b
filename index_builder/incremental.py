"""Incremental rebuilds: which documents the current version already covers, and their stored data.

A document is unchanged when its listing matches the manifest record of the current
version: the same size, and the same ETag (S3) or modification time (local folder). A
document whose listing differs is fetched and hashed. If its SHA-256 equals the recorded
one, as after a re-upload or a touched file, its stored chunks are still reused. Everything
else is read and embedded again.

Stored chunks are reused only when the current version was made by the same text pipeline:
the same embedding model, chunk sizes, PIPELINE_VERSION and text normalization
(normalize.NORMALIZATION_VERSION, which changes the embedded text). Otherwise the build is cold.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_builder.errors import IndexBuilderError
from index_builder.normalize import NORMALIZATION_VERSION
from index_builder.report import DocumentStatus
from index_builder.sources import SourceDocument
from index_builder.store import CHUNKS_FILE, INDEX_FILE, Chunk, iter_chunks, read_manifest
from index_builder.versions import current_version, version_dir

logger = logging.getLogger(__name__)

# Bump when extraction, cleaning or chunking changes what chunks a PDF yields, so that the
# next build re-reads every document instead of reusing chunks made the old way.
PIPELINE_VERSION = 2

_HASH_BLOCK_BYTES = 1024 * 1024


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def same_listing(document: SourceDocument, record: DocumentStatus) -> bool:
    """Return whether ``document`` lists as it did when ``record`` was made."""
    if document.size is None or document.size != record.size:
        return False
    if document.etag is not None or record.etag is not None:
        return document.etag == record.etag
    return document.last_modified is not None and document.last_modified == record.last_modified


@dataclass
class PreviousVersion:
    """The current version of an index root, opened for reuse by the next build."""

    version: str
    folder: Path
    manifest: dict[str, Any]
    records: dict[str, DocumentStatus]
    _chunks: dict[str, list[Chunk]] | None = field(default=None, repr=False)
    _vectors: tuple[np.ndarray, dict[int, int]] | None = field(default=None, repr=False)

    @property
    def next_chunk_id(self) -> int:
        """The smallest chunk id that no version so far has used."""
        recorded = self.manifest.get("next_chunk_id")
        if isinstance(recorded, int):
            return recorded
        return max((chunk.chunk_id for chunks in self._chunks_by_uri().values() for chunk in chunks), default=-1) + 1

    def chunks_of(self, uri: str) -> list[Chunk]:
        return self._chunks_by_uri().get(uri, [])

    def vectors_of(self, chunks: list[Chunk]) -> np.ndarray:
        """Return the stored vectors of ``chunks``, one row each, in their order."""
        vectors, row_of_id = self._stored_vectors()
        rows = [row_of_id[chunk.chunk_id] for chunk in chunks]
        return vectors[rows]

    def _chunks_by_uri(self) -> dict[str, list[Chunk]]:
        if self._chunks is None:
            grouped: dict[str, list[Chunk]] = defaultdict(list)
            for chunk in iter_chunks(self.folder / CHUNKS_FILE):
                grouped[chunk.source_uri].append(chunk)
            self._chunks = dict(grouped)
        return self._chunks

    def _stored_vectors(self) -> tuple[np.ndarray, dict[int, int]]:
        if self._vectors is None:
            index = faiss.read_index(str(self.folder / INDEX_FILE))
            ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
            flat = faiss.downcast_index(faiss.downcast_index(index).index)
            vectors = flat.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
            self._vectors = (vectors, {int(chunk_id): row for row, chunk_id in enumerate(ids)})
        return self._vectors


def pipeline_signature(
    *, embedding_model: str, chunk_tokens: int | None, chunk_overlap_tokens: int
) -> dict[str, Any]:
    """Return the manifest entry that two builds must share to reuse each other's chunks.

    ``chunk_tokens`` is the setting as given: None means the model's own limit, which the
    model name already determines, so the signature can be made without loading the model.
    """
    return {
        "embedding_model": embedding_model,
        "chunk_tokens": chunk_tokens,
        "chunk_overlap_tokens": chunk_overlap_tokens,
        "pipeline_version": PIPELINE_VERSION,
        "normalization": NORMALIZATION_VERSION,
    }


def load_previous(root: Path, signature: dict[str, Any]) -> PreviousVersion | None:
    """Return the current version of ``root`` for reuse, or None when there is none to reuse."""
    version = current_version(root)
    if version is None:
        return None
    folder = version_dir(root, version)
    try:
        manifest = read_manifest(folder)
    except IndexBuilderError as error:
        logger.warning("Current version %s cannot be reused, building from scratch: %s", version, error)
        return None
    if manifest.get("pipeline") != signature:
        logger.info(
            "Current version %s was built with %s, not %s; building from scratch",
            version,
            manifest.get("pipeline"),
            signature,
        )
        return None
    records = {
        record["uri"]: DocumentStatus.from_manifest(record)
        for record in manifest.get("documents", [])
        if isinstance(record, dict) and "uri" in record
    }
    return PreviousVersion(version=version, folder=folder, manifest=manifest, records=records)
