"""The on-disk format of one index version, and its writer.

A version folder contains three files and one subfolder:
- ``index.faiss``: faiss.IndexIDMap2 over an IndexFlatIP. Vectors are L2-normalised, so
  scores are cosine similarities. Ids are the chunk ids. An incremental rebuild keeps the
  ids of unchanged documents and gives new chunks ids that were never used before.
- ``chunks.jsonl``: one JSON object per chunk with id, text, source_uri, file_name, page
  (1-based) and chunk_no (0-based within its document). Plain JSON, so loading it runs no
  code, unlike a pickled LangChain docstore.
- ``keyword/``: the BM25 index over Korean morphemes (see keyword.py), for keyword and
  hybrid search.
- ``manifest.json``: format_version, embedding_model (as the user named it), dimension,
  metric, normalized, normalization, chunk_count, next_chunk_id, created_at, and one
  record per source document (see report.py), which the next build compares with the source.

The vectors and the BM25 tokens are made from the chunk texts after normalize.py rewrites
them, and queries are rewritten in the same way. ``normalization`` records the version of
those rules, and a reader with other rules rejects the index instead of searching it with
queries that no longer match its tokens.

Version folders sit behind a CURRENT pointer in an index root (versions.py). The reader
is in reader.py; this module re-exports it for callers that import it from here.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_builder.errors import IndexFormatError, IndexNotFoundError, OutputDirError, repair_advice
from index_builder.keyword import write_keyword_index
from index_builder.normalize import NORMALIZATION_VERSION
from index_builder.versions import CURRENT_FILE, VERSIONS_DIR, is_own_entry

logger = logging.getLogger(__name__)

# Version 2 added the keyword index. Version 3 normalizes chunk texts before embedding and
# BM25 analysis (normalize.py), and records the rules' version as "normalization".
FORMAT_VERSION = 3
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
MANIFEST_FILE = "manifest.json"
METRIC = "inner_product"

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
    """A search result: a stored chunk with the score of the search mode (see IndexReader.search).

    ``dense_score`` (cosine similarity) and ``keyword_score`` (BM25) are the chunk's scores
    in the two rankings, None where that ranking did not return the chunk. Unlike a hybrid
    score, they do not depend on ranks, so they tell a good match from the least bad one.
    """

    chunk_id: int
    score: float
    text: str
    source_uri: str
    file_name: str
    page: int
    chunk_no: int
    dense_score: float | None = None
    keyword_score: float | None = None


def check_output_dir(out: Path) -> None:
    """Raise OutputDirError unless ``out`` is missing, empty, or an index root or folder.

    A build adds versions to ``out`` and deletes old ones, so it must never be a folder
    with other files.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a folder. Choose another --out.")
    markers = (CURRENT_FILE, VERSIONS_DIR, MANIFEST_FILE)
    if any((out / marker).exists() for marker in markers):
        return
    # A root whose first build failed or still runs contains only the builder's own files.
    if all(is_own_entry(entry.name) for entry in out.iterdir()):
        return
    raise OutputDirError(
        f"output folder {out} is not empty and contains no {CURRENT_FILE} or {MANIFEST_FILE}, so it is "
        "not an index that a build may write into. Choose a new or empty folder for --out."
    )


class VersionWriter:
    """Writes one version folder: chunks are streamed to disk as they arrive.

    Only the vectors (4 bytes per dimension per chunk) stay in memory until finish().
    """

    def __init__(self, folder: Path, dimension: int) -> None:
        self.folder = folder
        self.dimension = dimension
        self.count = 0
        folder.mkdir(parents=True)
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._chunks_file = (folder / CHUNKS_FILE).open("w", encoding="utf-8")

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Append ``chunks`` with their L2-normalised ``vectors``, one row per chunk."""
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks) or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"vectors of shape {vectors.shape} do not match {len(chunks)} chunks of dimension {self.dimension}"
            )
        if not chunks:
            return
        ids = np.array([chunk.chunk_id for chunk in chunks], dtype=np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        for chunk in chunks:
            self._chunks_file.write(json.dumps(_chunk_to_record(chunk), ensure_ascii=False) + "\n")
        self.count += len(chunks)

    def finish(
        self,
        *,
        embedding_model: str,
        documents: Sequence[Mapping[str, Any]],
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the vectors, the keyword index and the manifest, and return the manifest."""
        self._chunks_file.close()

        # 1. The manifest. ``details`` may add fields but not replace the ones readers check.
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "embedding_model": embedding_model,
            "dimension": self.dimension,
            "metric": METRIC,
            "normalized": True,
            "normalization": NORMALIZATION_VERSION,
            "chunk_count": self.count,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        clashes = sorted(set(details or {}) & {*manifest, "documents"})
        if clashes:
            raise ValueError(f"details must not replace manifest fields {clashes}")
        manifest.update(details or {})
        manifest["documents"] = [dict(document) for document in documents]

        # 2. The vectors and the keyword index. BM25 is rebuilt from the stored texts, which
        #    takes seconds where embedding takes minutes (docs/benchmarks.md).
        faiss.write_index(self._index, str(self.folder / INDEX_FILE))
        ids: list[int] = []
        texts: list[str] = []
        for chunk in iter_chunks(self.folder / CHUNKS_FILE):
            ids.append(chunk.chunk_id)
            texts.append(chunk.text)
        write_keyword_index(self.folder, ids, texts)

        # 3. The manifest last: a folder without one is not an index.
        manifest_text = json.dumps(manifest, ensure_ascii=False, indent=2)
        (self.folder / MANIFEST_FILE).write_text(manifest_text, encoding="utf-8")
        logger.info("Wrote index version with %d chunks to %s", self.count, self.folder)
        return manifest

    def close(self) -> None:
        """Close the chunks file without finishing, as on an error."""
        self._chunks_file.close()


def write_version(
    folder: Path,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    *,
    embedding_model: str,
    documents: Sequence[Mapping[str, Any]],
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a version folder at ``folder``, which must not exist, and return its manifest."""
    if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
        raise ValueError(f"vectors of shape {vectors.shape} do not match {len(chunks)} chunks")
    writer = VersionWriter(folder, int(vectors.shape[1]))
    try:
        writer.add(chunks, vectors)
        return writer.finish(embedding_model=embedding_model, documents=documents, details=details)
    finally:
        writer.close()


def _chunk_to_record(chunk: Chunk) -> dict[str, Any]:
    record = asdict(chunk)
    record["id"] = record.pop("chunk_id")
    return {field: record[field] for field in _CHUNK_FIELDS}


def read_manifest(path: Path) -> dict[str, Any]:
    """Return the checked manifest of the version folder ``path``."""
    if not (path / MANIFEST_FILE).is_file():
        raise IndexNotFoundError(
            f"no index at {path} (no {MANIFEST_FILE} or {CURRENT_FILE}). "
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
    if manifest.get("normalization") != NORMALIZATION_VERSION:
        raise IndexFormatError(
            f"index at {path} was built with text normalization {manifest.get('normalization')!r}, but this "
            f"reader normalizes queries with version {NORMALIZATION_VERSION}, so its search would miss. "
            f"{repair_advice(path)}"
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


def iter_chunks(file: Path) -> Iterator[Chunk]:
    """Yield the chunks of a chunks.jsonl file in file order.

    Raises IndexFormatError for a line that is not a complete chunk record, as a truncated
    file ends, and for bytes that are not UTF-8.
    """
    with file.open("rb") as lines:
        for line_no, raw_line in enumerate(lines, start=1):
            try:
                record = json.loads(raw_line.decode("utf-8"))
                chunk = Chunk(
                    chunk_id=int(record["id"]),
                    text=str(record["text"]),
                    source_uri=str(record["source_uri"]),
                    file_name=str(record["file_name"]),
                    page=int(record["page"]),
                    chunk_no=int(record["chunk_no"]),
                )
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise IndexFormatError(
                    f"{file} line {line_no} is not a valid chunk record ({error}). {repair_advice(file.parent)}"
                ) from error
            yield chunk


# The reader and the publishing writer live in their own modules, which import this one.
# Callers have imported them from here since the first index format, so they resolve lazily.
_MOVED = {
    "IndexReader": "index_builder.reader",
    "SEARCH_MODES": "index_builder.reader",
    "open_index": "index_builder.reader",
    "write_index": "index_builder.publish",
    "current_version": "index_builder.versions",
}


def __getattr__(name: str) -> Any:
    module_name = _MOVED.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


__all__ = [
    "CHUNKS_FILE",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "MANIFEST_FILE",
    "METRIC",
    "SEARCH_MODES",
    "Chunk",
    "Hit",
    "IndexReader",
    "VersionWriter",
    "check_output_dir",
    "current_version",
    "iter_chunks",
    "open_index",
    "read_manifest",
    "write_index",
    "write_version",
]
