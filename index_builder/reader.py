"""The reader of an index: open_index and IndexReader, which the chat app uses.

open_index accepts an index root, whose CURRENT file names the version to load, or a
version folder (also an index in the older flat layout) directly. Loading checks that the
files agree with each other, so a damaged version fails at open_index with an
IndexFormatError that names the file and the fix, never later in a search.
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
    repair_advice,
)
from index_builder.keyword import KeywordIndex, query_identifiers, reciprocal_rank_fusion
from index_builder.store import CHUNKS_FILE, INDEX_FILE, MANIFEST_FILE, Chunk, Hit, iter_chunks, read_manifest
from index_builder.versions import current_version, version_dir

logger = logging.getLogger(__name__)

SEARCH_MODES = ("dense", "keyword", "hybrid")
# Hybrid search fuses this many candidates from each ranking (at least k), so a chunk that
# ranks well in only one of them can still reach the top k.
_HYBRID_CANDIDATES = 30

# Weight of the dense ranking against BM25's in the fusion. The default embedding model was
# trained on English and ranks Korean chunks almost at random, so at equal weight it pushes
# right pages down. On the 100-question golden set (data/eval) and the sample index, hybrid
# recall@5 was 0.86 at weight 1.0, 0.91 at 0.5 and 0.3, and 0.93 at 0.2 (MRR 0.57 -> 0.78).
# NOTE: measured for all-MiniLM-L6-v2; a Korean-capable embedding model deserves more weight.
DENSE_RRF_WEIGHT = 0.2
# The default length of IndexReader.context. Chunks of the index of data/samples are at most
# 374 characters long (median 128), so a chunk and both its neighbours fit.
DEFAULT_CONTEXT_CHARS = 1200
# Neighbouring chunks overlap by whole words (chunk.py), so a shorter common part is a coincidence.
_MIN_OVERLAP_CHARS = 3


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
        # Neighbour lookup for context(): (source_uri, page, chunk_no) -> chunk id.
        self._positions = {(chunk.source_uri, chunk.page, chunk.chunk_no): chunk.chunk_id for chunk in chunks.values()}

    def pages(self) -> set[tuple[str, int]]:
        """Return the (file name, page) pairs that at least one chunk comes from."""
        return {(chunk.file_name, chunk.page) for chunk in self._chunks.values()}

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
        cosine similarity, the BM25 score or the fused score, respectively, and the hit also
        carries the dense and keyword scores it has.

        The fused score is the reciprocal rank fusion score (below 0.04) plus the number of
        identifiers that the query cites (articles, paragraphs, application numbers, see
        keyword.query_identifiers) and the chunk contains. The embedding model cannot
        tell "제64조" from "제63조", so when a query cites one, the chunks that contain it
        come first. A ``k`` above chunk_count returns at most chunk_count hits, and an index
        without chunks returns [].
        """
        if not query or not query.strip():
            raise InvalidQueryError("search query is empty. Pass a question or a phrase to search for.")
        if mode not in SEARCH_MODES:
            raise InvalidQueryError(f"search mode {mode!r} is unknown. Use one of {', '.join(SEARCH_MODES)}.")
        _check_k(k)
        query = query.strip()
        if not self._chunks:
            return []

        if mode == "keyword":
            return [
                self._hit(chunk_id, score, keyword_score=score)
                for chunk_id, score in self._keyword_index.search(query, k)
            ]

        vector = self._embedder.embed_query(query)
        if mode == "dense":
            return self.search_vector(vector, k)
        return self._hybrid(query, vector, int(k))

    def _hybrid(self, query: str, vector: np.ndarray, k: int) -> list[Hit]:
        # 1. Both rankings, with enough candidates that a chunk found by one can reach the top k.
        candidates = max(k, _HYBRID_CANDIDATES)
        dense = {hit.chunk_id: hit.score for hit in self.search_vector(vector, candidates)}
        keyword = dict(self._keyword_index.search(query, candidates))
        fused = reciprocal_rank_fusion([list(dense), list(keyword)], weights=(DENSE_RRF_WEIGHT, 1.0))

        # 2. Chunks that contain more of the identifiers the query cites come first.
        identifiers = query_identifiers(query)
        if identifiers:
            matches = self._keyword_index.count_matches(identifiers)
            fused = sorted(
                ((chunk_id, score + matches.get(chunk_id, 0)) for chunk_id, score in fused),
                key=lambda item: (-item[1], item[0]),
            )
        return [
            self._hit(chunk_id, score, dense_score=dense.get(chunk_id), keyword_score=keyword.get(chunk_id))
            for chunk_id, score in fused[:k]
        ]

    def _hit(
        self, chunk_id: int, score: float, *, dense_score: float | None = None, keyword_score: float | None = None
    ) -> Hit:
        chunk = self._chunks[int(chunk_id)]
        return Hit(
            chunk_id=chunk.chunk_id,
            score=float(score),
            text=chunk.text,
            source_uri=chunk.source_uri,
            file_name=chunk.file_name,
            page=chunk.page,
            chunk_no=chunk.chunk_no,
            dense_score=dense_score,
            keyword_score=keyword_score,
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
        _check_k(k)
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidQueryError("query vector is zero or not finite, so it has no direction to search.")

        k = min(int(k), self._index.ntotal)
        if k == 0:
            return []
        scores, ids = self._index.search(np.ascontiguousarray(query[np.newaxis, :] / norm), k)

        # faiss pads with id -1 when it finds fewer than k vectors, as when a stored vector
        # is NaN, so -1 must never reach the chunk lookup.
        return [
            self._hit(chunk_id, score, dense_score=float(score))
            for score, chunk_id in zip(scores[0], ids[0], strict=True)
            if chunk_id >= 0
        ]

    def chunk(self, chunk_id: int) -> Chunk:
        """Return the stored chunk with this id."""
        try:
            return self._chunks[int(chunk_id)]
        except KeyError:
            raise ChunkNotFoundError(
                f"chunk id {chunk_id} is not in the index at {self.path} ({self.chunk_count} chunks)"
            ) from None

    def context(self, chunk_id: int, max_chars: int = DEFAULT_CONTEXT_CHARS) -> str:
        """Return the text of chunk ``chunk_id`` joined with its neighbours on the same page.

        The neighbours are the chunks just before and after it in its document (chunk_no - 1
        and chunk_no + 1) if they are on the same page, in document order. Text that two
        neighbours share through the chunk overlap appears once. The result has at most
        ``max_chars`` characters: the chunk's whole text, and as much neighbour text on each
        side as fits, cut at a space where one is near. A chunk longer than ``max_chars``
        is cut to its first ``max_chars`` characters. Raises ChunkNotFoundError for an
        unknown id and InvalidQueryError for a ``max_chars`` below 1.

        A call makes two dictionary lookups and compares the three chunk texts, so its cost
        does not grow with the size of the index.
        """
        if isinstance(max_chars, bool) or not isinstance(max_chars, int | np.integer) or max_chars < 1:
            raise InvalidQueryError(f"max_chars must be a positive integer, got {max_chars!r}")
        chunk = self.chunk(chunk_id)
        text = chunk.text
        if len(text) >= max_chars:
            return text[:max_chars]

        # 1. The neighbours' text outside the overlap, with a space where they do not overlap.
        before = after = ""
        previous = self._neighbour(chunk, -1)
        if previous is not None:
            shared = _overlap(previous.text, text)
            before = previous.text[: len(previous.text) - shared] + ("" if shared else " ")
        following = self._neighbour(chunk, +1)
        if following is not None:
            shared = _overlap(text, following.text)
            after = ("" if shared else " ") + following.text[shared:]

        # 2. The room left, split evenly between both sides. A side that needs less gives the rest away.
        room = max_chars - len(text)
        before_chars = min(len(before), room // 2)
        after_chars = min(len(after), room - before_chars)
        before_chars = min(len(before), room - after_chars)
        return (_tail(before, before_chars) + text + _head(after, after_chars)).strip()

    def _neighbour(self, chunk: Chunk, step: int) -> Chunk | None:
        neighbour_id = self._positions.get((chunk.source_uri, chunk.page, chunk.chunk_no + step))
        return None if neighbour_id is None else self._chunks[neighbour_id]


def _check_k(k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidQueryError(f"k must be a positive integer, got {k!r}")


def _overlap(left: str, right: str) -> int:
    """Return the length of the longest end of ``left`` that starts ``right``, or 0 below the minimum."""
    for start in range(max(0, len(left) - len(right)), len(left) - _MIN_OVERLAP_CHARS + 1):
        if right.startswith(left[start:]):
            return len(left) - start
    return 0


def _tail(text: str, chars: int) -> str:
    """Return the last ``chars`` characters of ``text``, starting after a space if the cut splits a word."""
    if chars >= len(text):
        return text
    tail = text[len(text) - chars :]
    if text[len(text) - chars - 1] == " ":
        return tail
    space = tail.find(" ")
    return tail[space + 1 :] if space >= 0 else tail


def _head(text: str, chars: int) -> str:
    """Return the first ``chars`` characters of ``text``, ending before a space if the cut splits a word."""
    if chars >= len(text):
        return text
    head = text[:chars]
    if text[chars] == " ":
        return head
    space = head.rfind(" ")
    return head[:space] if space >= 0 else head


def open_index(path: str | Path, embedding_model: str | None = None) -> IndexReader:
    """Open the index at ``path`` for searching.

    ``path`` is an index root (the version that its CURRENT file names is loaded) or a
    version folder. ``embedding_model``, when given, must name the model the index was
    built with. Raises IndexNotFoundError for a missing folder or file, IndexMismatchError
    for another model or dimension, and IndexFormatError for damaged or inconsistent files.
    """
    reader = _load_current(Path(path).expanduser().resolve(), embedding_model)

    # The query encoder is built here, once per process, so that the first search does not
    # wait for it. load_version leaves it to embed_query, because a build validates every
    # version with load_version and searches only when the evaluation gate is on.
    reader._embedder.prepare_queries()
    return reader


def _load_current(path: Path, embedding_model: str | None) -> IndexReader:
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
    # 1. The manifest: format version, normalization, model and dimension.
    manifest = read_manifest(path)
    built_with = str(manifest["embedding_model"])
    if embedding_model is not None and canonical_model_name(embedding_model) != canonical_model_name(
        built_with
    ):
        raise IndexMismatchError(
            f"index at {path} was built with embedding model {built_with!r}, not {embedding_model!r}. "
            f"Open it with {built_with!r}, or rebuild it with `veraclaim-index build --embedding-model`."
        )

    # 2. The vectors, in a faiss.IndexIDMap2 whose ids are the chunk ids.
    index = _read_vectors(path)
    if index.d != manifest["dimension"]:
        raise IndexMismatchError(
            f"{path / INDEX_FILE} contains vectors of dimension {index.d}, but the manifest gives "
            f"{manifest['dimension']}. Rebuild the index with `veraclaim-index build`."
        )

    # 3. The chunk texts and metadata, one per vector and under the same ids.
    chunk_list = list(iter_chunks(_required_file(path, CHUNKS_FILE)))
    chunks = {chunk.chunk_id: chunk for chunk in chunk_list}
    if not (len(chunk_list) == len(chunks) == index.ntotal == manifest["chunk_count"]):
        raise IndexFormatError(
            f"index at {path} is inconsistent: {len(chunk_list)} chunks ({len(chunks)} distinct ids) in "
            f"{CHUNKS_FILE}, {index.ntotal} vectors in {INDEX_FILE}, chunk_count {manifest['chunk_count']} "
            f"in {MANIFEST_FILE}. {repair_advice(path)}"
        )
    vector_ids = faiss.vector_to_array(index.id_map)
    if set(vector_ids.tolist()) != set(chunks):
        raise IndexFormatError(
            f"{path / INDEX_FILE} stores its vectors under other ids than the chunks in {CHUNKS_FILE}. "
            f"{repair_advice(path)}"
        )

    # 4. The query embedder, which must produce vectors of the index's dimension.
    embedder = load_embedder(built_with)
    if embedder.dimension != manifest["dimension"]:
        raise IndexMismatchError(
            f"embedding model {built_with!r} produces vectors of dimension {embedder.dimension}, but the "
            f"index at {path} has dimension {manifest['dimension']}. Rebuild the index with this model."
        )

    # 5. The keyword index, whose rows must map to the same chunks.
    keyword_index = KeywordIndex.load(path)
    if sorted(keyword_index.chunk_ids) != sorted(chunks):
        raise IndexFormatError(
            f"keyword index in {path} covers other chunks than {CHUNKS_FILE}. {repair_advice(path)}"
        )

    logger.info("Opened index %s: %d chunks, model %s", path, len(chunks), built_with)
    return IndexReader(path, manifest, index, chunks, embedder, keyword_index, version=version)


def _read_vectors(path: Path) -> faiss.IndexIDMap2:
    file = _required_file(path, INDEX_FILE)
    # faiss raises RuntimeError for a truncated file or one of another format.
    try:
        index = faiss.read_index(str(file))
    except RuntimeError as error:
        reason = str(error).strip() or type(error).__name__
        raise IndexFormatError(f"{file} is damaged: faiss cannot read it ({reason}). {repair_advice(path)}") from error
    if not isinstance(index, faiss.IndexIDMap2):
        raise IndexFormatError(
            f"{file} contains a {type(index).__name__}, not the faiss.IndexIDMap2 that maps vectors to "
            f"chunk ids. {repair_advice(path)}"
        )
    return index


def _required_file(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise IndexNotFoundError(f"index file {file} is missing. {repair_advice(path)}")
    return file
