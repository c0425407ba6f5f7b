"""The on-disk index format: the writer the builder uses and the reader the chat app opens.

An index is a folder with three files and one subfolder:
- ``index.faiss``: faiss.IndexIDMap2 over an IndexFlatIP. Vectors are L2-normalised, so
  scores are cosine similarities. Ids are the chunk ids, kept stable for later
  incremental rebuilds.
- ``chunks.jsonl``: one JSON object per chunk with id, text, source_uri, file_name, page
  (1-based) and chunk_no (0-based within its document). Plain JSON, so loading it runs no
  code, unlike a pickled LangChain docstore.
- ``keyword/``: the BM25 index over Korean morphemes (see keyword.py), for keyword and
  hybrid search.
- ``manifest.json``: format_version, embedding_model (as the user named it), dimension,
  metric, normalized, chunk_count, created_at, and one status record per source document.

The writer builds the folder beside its destination and renames it into place.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_builder.embed import Embedder, canonical_model_name, load_embedder
from index_builder.keyword import KEYWORD_DIR, KeywordIndex, reciprocal_rank_fusion, write_keyword_index
from index_builder.errors import (
    ChunkNotFoundError,
    IndexFormatError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidQueryError,
    OutputDirError,
)

logger = logging.getLogger(__name__)

# Version 2 added the keyword index.
FORMAT_VERSION = 2
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
MANIFEST_FILE = "manifest.json"
METRIC = "inner_product"

SEARCH_MODES = ("dense", "keyword", "hybrid")
# Hybrid search fuses this many candidates from each ranking (at least k), so a chunk that
# ranks well in only one of them can still reach the top k.
_HYBRID_CANDIDATES = 30

_CHUNK_FIELDS = ("id", "text", "source_uri", "file_name", "page", "chunk_no")


@dataclass(frozen=True)
class Chunk:
    """One stored chunk. ``page`` is 1-based, ``chunk_no`` counts from 0 within its document."""

    chunk_id: int
    text: str
    source_uri: str
    file_name: str
    page: int
    chunk_no: int


@dataclass(frozen=True)
class Hit:
    """A search result: a stored chunk with its cosine similarity to the query."""

    chunk_id: int
    score: float
    text: str
    source_uri: str
    file_name: str
    page: int
    chunk_no: int


# Writer.


def check_output_dir(out: Path) -> None:
    """Raise OutputDirError unless ``out`` is missing, empty, or an index folder.

    A build replaces ``out`` as a whole, so it must never be a folder with other files.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a folder. Choose another --out.")
    if (out / MANIFEST_FILE).is_file() or not any(out.iterdir()):
        return
    raise OutputDirError(
        f"output folder {out} is not empty and contains no {MANIFEST_FILE}, so it is not an index "
        "that a build may replace. Choose a new or empty folder for --out."
    )


def write_index(
    out: Path,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    *,
    embedding_model: str,
    documents: Sequence[Mapping[str, Any]],
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an index of ``chunks`` and their ``vectors`` to ``out`` and return its manifest.

    ``vectors`` must be L2-normalised, one row per chunk. ``details`` adds fields to the
    manifest, such as the source and the chunking settings.
    """
    if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
        raise ValueError(f"vectors of shape {vectors.shape} do not match {len(chunks)} chunks")
    out = out.expanduser().resolve()
    check_output_dir(out)

    # 1. The manifest. ``details`` may add fields but not replace the ones readers check.
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "embedding_model": embedding_model,
        "dimension": int(vectors.shape[1]),
        "metric": METRIC,
        "normalized": True,
        "chunk_count": len(chunks),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    clashes = sorted(set(details or {}) & {*manifest, "documents"})
    if clashes:
        raise ValueError(f"details must not replace manifest fields {clashes}")
    manifest.update(details or {})
    manifest["documents"] = [dict(document) for document in documents]

    # 2. Build the folder beside its destination, so the final rename stays on one filesystem.
    #    mkdir, unlike tempfile.mkdtemp, applies the umask instead of mode 0700, so the chat
    #    app can read an index that another user built.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(int(vectors.shape[1])))
        ids = np.array([chunk.chunk_id for chunk in chunks], dtype=np.int64)
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        faiss.write_index(index, str(staging / INDEX_FILE))

        with (staging / CHUNKS_FILE).open("w", encoding="utf-8") as file:
            for chunk in chunks:
                file.write(json.dumps(_chunk_to_record(chunk), ensure_ascii=False) + "\n")

        write_keyword_index(staging, [chunk.chunk_id for chunk in chunks], [chunk.text for chunk in chunks])

        manifest_text = json.dumps(manifest, ensure_ascii=False, indent=2)
        (staging / MANIFEST_FILE).write_text(manifest_text, encoding="utf-8")
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    logger.info("Wrote index with %d chunks to %s", len(chunks), out)
    return manifest


def _publish(staging: Path, out: Path) -> None:
    # NOTE: two renames, so a reader that opens ``out`` between them finds no index. Versioned
    # index folders behind a pointer that is swapped in one rename will close that gap.
    if not out.exists():
        staging.rename(out)
        return
    retired = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def _chunk_to_record(chunk: Chunk) -> dict[str, Any]:
    record = asdict(chunk)
    record["id"] = record.pop("chunk_id")
    return {field: record[field] for field in _CHUNK_FIELDS}


# Reader.


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
    ) -> None:
        self.path = path
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
    """Open the index folder at ``path`` for searching.

    ``embedding_model``, when given, must name the model the index was built with.
    Raises IndexNotFoundError for a missing folder or file, IndexMismatchError for another
    model or dimension, and IndexFormatError for damaged or inconsistent files.
    """
    path = Path(path).expanduser().resolve()

    # 1. The manifest: format version, model and dimension.
    manifest = _read_manifest(path)
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
    chunks = _read_chunks(_required_file(path, CHUNKS_FILE))
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
    return IndexReader(path, manifest, index, chunks, embedder, keyword_index)


def _required_file(path: Path, name: str) -> Path:
    file = path / name
    if not file.is_file():
        raise IndexNotFoundError(
            f"index file {file} is missing. "
            f"Rebuild the index with `veraclaim-index build SOURCE --out {path}`."
        )
    return file


def _read_manifest(path: Path) -> dict[str, Any]:
    if not (path / MANIFEST_FILE).is_file():
        raise IndexNotFoundError(
            f"no index at {path} (no {MANIFEST_FILE}). "
            f"Build one with `veraclaim-index build SOURCE --out {path}`."
        )
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFormatError(
            f"{path / MANIFEST_FILE} is not valid JSON ({error}). Rebuild the index."
        ) from error

    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"index at {path} has format_version {version!r}; this reader supports {FORMAT_VERSION}. "
            "Rebuild the index with this version of veraclaim-index."
        )
    missing = [
        key for key in ("embedding_model", "dimension", "chunk_count", "metric") if key not in manifest
    ]
    if missing or manifest["metric"] != METRIC:
        raise IndexFormatError(
            f"{path / MANIFEST_FILE} lacks {missing or 'nothing'} or has metric {manifest.get('metric')!r} "
            f"instead of {METRIC!r}. Rebuild the index."
        )
    return manifest


def _read_chunks(file: Path) -> dict[int, Chunk]:
    chunks: dict[int, Chunk] = {}
    with file.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                chunk = Chunk(
                    chunk_id=int(record["id"]),
                    text=str(record["text"]),
                    source_uri=str(record["source_uri"]),
                    file_name=str(record["file_name"]),
                    page=int(record["page"]),
                    chunk_no=int(record["chunk_no"]),
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise IndexFormatError(
                    f"{file} line {line_no} is not a valid chunk record ({error}). Rebuild the index."
                ) from error
            chunks[chunk.chunk_id] = chunk
    return chunks
