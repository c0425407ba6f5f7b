"""The reader of an index: open_index and IndexReader, which the chat app uses.

open_index accepts an index root, whose CURRENT file names the version to load, or a
version folder (also an index in the older flat layout) directly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_builder.embed import Embedder, canonical_model_name, load_embedder
from index_builder.errors import (
    ChunkNotFoundError,
    IndexFormatError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidQueryError,
)
from index_builder.keyword import KEYWORD_DIR, KeywordIndex, reciprocal_rank_fusion
from index_builder.store import CHUNKS_FILE, INDEX_FILE, MANIFEST_FILE, Chunk, Hit, iter_chunks, read_manifest
from index_builder.versions import current_version, version_dir

logger = logging.getLogger(__name__)

SEARCH_MODES = ("dense", "keyword", "hybrid")
# Hybrid search fuses this many candidates from each ranking (at least k), so a chunk that
# ranks well in only one of them can still reach the top k.
_HYBRID_CANDIDATES = 30


class IndexReader:
    """A loaded index. Searching is safe from several threads, because faiss reads only."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        index: faiss.Index,
        chunks: dict[int, Chunk],
        embedder: Embedder,
        keyword_index: KeywordIndex,
        *,
        version: str | None = None,
    ) -> None:
        self.path = path
        # The version id when the index was opened through a root's CURRENT file.
        self.version = version
        self._manifest = manifest
        self._index = index
        self._chunks = chunks
        self._embedder = embedder
        self._keyword_index = keyword_index

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest.json. Callers must not modify it."""
        return self._manifest

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    @property
    def embedding_model(self) -> str:
        """The embedding model named in the manifest, which also embeds queries."""
        return str(self._manifest["embedding_model"])

    @property
    def dimension(self) -> int:
        return int(self._manifest["dimension"])

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """Return up to ``k`` chunks that best match ``query``, best first.

        ``mode`` is "dense" (cosine similarity of embeddings), "keyword" (BM25 over Korean
        morphemes) or "hybrid" (reciprocal rank fusion of both). Each hit's score is the
        cosine similarity, the BM25 score or the fused score, respectively.
        """
        if not query or not query.strip():
            raise InvalidQueryError("search query is empty. Pass a question or a phrase to search for.")
        if mode not in SEARCH_MODES:
            raise InvalidQueryError(f"search mode {mode!r} is unknown. Use one of {', '.join(SEARCH_MODES)}.")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidQueryError(f"k must be a positive integer, got {k!r}")
        query = query.strip()

        if mode == "keyword":
            return [self._hit(chunk_id, score) for chunk_id, score in self._keyword_index.search(query, k)]

        vector = self._embedder.embed([query])[0]
        if mode == "dense":
            return self.search_vector(vector, k)

        candidates = max(int(k), _HYBRID_CANDIDATES)
        dense = [hit.chunk_id for hit in self.search_vector(vector, candidates)]
        keyword = [chunk_id for chunk_id, _ in self._keyword_index.search(query, candidates)]
        fused = reciprocal_rank_fusion([dense, keyword])[: int(k)]
        return [self._hit(chunk_id, score) for chunk_id, score in fused]

    def _hit(self, chunk_id: int, score: float) -> Hit:
        chunk = self._chunks[int(chunk_id)]
        return Hit(
            chunk_id=chunk.chunk_id,
            score=float(score),
            text=chunk.text,
            source_uri=chunk.source_uri,
            file_name=chunk.file_name,
            page=chunk.page,
            chunk_no=chunk.chunk_no,
        )

    def search_vector(self, vector: np.ndarray, k: int) -> list[Hit]:
        """Return up to ``k`` chunks nearest to ``vector``, best first.

        ``vector`` has shape (dimension,) or (1, dimension). It is L2-normalised here, so
        scores are cosine similarities whatever its length. A ``k`` above chunk_count
        returns every chunk.
        """
        query = np.asarray(vector, dtype=np.float32)
        if query.ndim == 2 and query.shape[0] == 1:
            query = query[0]
        if query.ndim != 1 or query.shape[0] != self.dimension:
            raise InvalidQueryError(
                f"query vector of shape {np.shape(vector)} does not fit this index. "
                f"Pass one vector of dimension {self.dimension}."
            )
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidQueryError(f"k must be a positive integer, got {k!r}")
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidQueryError("query vector is zero or not finite, so it has no direction to search.")

        k = min(int(k), self._index.ntotal)
        if k == 0:
            return []
        scores, ids = self._index.search(np.ascontiguousarray(query[np.newaxis, :] / norm), k)

        # faiss pads with id -1 when it finds fewer than k vectors.
        return [self._hit(chunk_id, score) for score, chunk_id in zip(scores[0], ids[0], strict=True) if chunk_id >= 0]

    def chunk(self, chunk_id: int) -> Chunk:
        """Return the stored chunk with this id."""
        try:
            return self._chunks[int(chunk_id)]
        except KeyError:
            raise ChunkNotFoundError(
                f"chunk id {chunk_id} is not in the index at {self.path} ({self.chunk_count} chunks)"
            ) from None


def open_index(path: str | Path, embedding_model: str | None = None) -> IndexReader:
    """Open the index at ``path`` for searching.

    ``path`` is an index root (the version that its CURRENT file names is loaded) or a
    version folder. ``embedding_model``, when given, must name the model the index was
    built with. Raises IndexNotFoundError for a missing folder or file, IndexMismatchError
    for another model or dimension, and IndexFormatError for damaged or inconsistent files.
    """
    path = Path(path).expanduser().resolve()
    version = current_version(path)
    if version is None:
        return load_version(path, embedding_model)

    # A build may switch CURRENT and delete an old version while this reader loads it.
    # Then CURRENT names a newer version, and loading that one succeeds.
    try:
        return load_version(version_dir(path, version), embedding_model, version=version)
    except IndexNotFoundError:
        newer = current_version(path)
        if newer is None or newer == version:
            raise
        logger.info("Version %s of %s vanished while loading; loading %s", version, path, newer)
        return load_version(version_dir(path, newer), embedding_model, version=newer)


def load_version(path: Path, embedding_model: str | None = None, *, version: str | None = None) -> IndexReader:
    """Load the version folder at ``path``, checking that its files agree with each other."""
    # 1. The manifest: format version, model and dimension.
    manifest = read_manifest(path)
    built_with = str(manifest["embedding_model"])
    if embedding_model is not None and canonical_model_name(embedding_model) != canonical_model_name(
        built_with
    ):
        raise IndexMismatchError(
            f"index at {path} was built with embedding model {built_with!r}, not {embedding_model!r}. "
            f"Open it with {built_with!r}, or rebuild it with `veraclaim-index build --embedding-model`."
        )

    # 2. The vectors.
    index_file = _required_file(path, INDEX_FILE)
    index = faiss.read_index(str(index_file))
    if index.d != manifest["dimension"]:
        raise IndexMismatchError(
            f"{index_file} contains vectors of dimension {index.d}, but the manifest gives "
            f"{manifest['dimension']}. Rebuild the index with `veraclaim-index build`."
        )

    # 3. The chunk texts and metadata, one per vector.
    chunks = {chunk.chunk_id: chunk for chunk in iter_chunks(_required_file(path, CHUNKS_FILE))}
    if not (len(chunks) == index.ntotal == manifest["chunk_count"]):
        raise IndexFormatError(
            f"index at {path} is inconsistent: {len(chunks)} chunks in {CHUNKS_FILE}, {index.ntotal} vectors "
            f"in {INDEX_FILE}, chunk_count {manifest['chunk_count']} in {MANIFEST_FILE}. Rebuild it."
        )

    # 4. The query embedder, which must produce vectors of the index's dimension.
    embedder = load_embedder(built_with)
    if embedder.dimension != manifest["dimension"]:
        raise IndexMismatchError(
            f"embedding model {built_with!r} produces vectors of dimension {embedder.dimension}, but the "
            f"index at {path} has dimension {manifest['dimension']}. Rebuild the index with this model."
        )

    # 5. The keyword index, whose rows must map to the same chunks.
    if not (path / KEYWORD_DIR).is_dir():
        raise IndexNotFoundError(
            f"keyword index {path / KEYWORD_DIR} is missing. "
            f"Rebuild the index with `veraclaim-index build SOURCE --out {path}`."
        )
    keyword_index = KeywordIndex.load(path)
    if sorted(keyword_index.chunk_ids) != sorted(chunks):
        raise IndexFormatError(
            f"keyword index in {path} covers other chunks than {CHUNKS_FILE}. Rebuild the index."
        )

    logger.info("Opened index %s: %d chunks, model %s", path, len(chunks), built_with)
    return IndexReader(path, manifest, index, chunks, embedder, keyword_index, version=version)


def _required_file(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise IndexNotFoundError(
            f"index file {file} is missing. "
            f"Rebuild the index with `veraclaim-index build SOURCE --out {path}`."
        )
    return file
