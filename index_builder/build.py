"""The build pipeline: list → fetch → extract → clean → chunk → embed → write.

A document that cannot be fetched or read is skipped with its reason, and the build goes
on. The build fails only when no document yields a chunk, and then it leaves any existing
index at ``out`` untouched.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from index_builder.chunk import PageChunker, TextChunk
from index_builder.clean import clean_text
from index_builder.embed import load_embedder
from index_builder.errors import DownloadError, NothingIndexedError, UnreadablePdfError, UnsafeKeyError
from index_builder.extract import PageText, extract_pages
from index_builder.settings import IndexBuilderSettings
from index_builder.sources import Source, SourceDocument, open_source
from index_builder.store import Chunk, check_output_dir, write_index

logger = logging.getLogger(__name__)

# A progress bar appears only for builds that take longer than this many seconds.
_PROGRESS_DELAY_SECONDS = 1.0


@dataclass
class DocumentStatus:
    """Outcome of a build for one source document."""

    uri: str
    file_name: str
    status: Literal["ok", "skipped"]
    reason: str | None = None
    pages: int = 0
    chunks: int = 0

    def to_manifest(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "file_name": self.file_name,
            "pages": self.pages,
            "chunks": self.chunks,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class BuildReport:
    """The outcome of one build. ``duration`` is wall-clock seconds."""

    source: str
    out: Path
    documents: list[DocumentStatus] = field(default_factory=list)
    chunk_count: int = 0
    duration: float = 0.0

    @property
    def indexed(self) -> list[DocumentStatus]:
        return [document for document in self.documents if document.status == "ok"]

    @property
    def skipped(self) -> list[DocumentStatus]:
        return [document for document in self.documents if document.status == "skipped"]


def index_document(
    source: Source, document: SourceDocument, workdir: Path, chunker: PageChunker
) -> tuple[DocumentStatus, list[TextChunk]]:
    """Fetch, extract, clean and chunk one document, returning its status and chunks.

    Failures of this one document come back as a skipped status, never as an exception.
    """
    status = DocumentStatus(uri=document.uri, file_name=document.file_name, status="skipped")

    # 1. A local copy: the file itself, or a download into workdir that is deleted after use.
    try:
        path = source.fetch(document, workdir)
    except (UnsafeKeyError, DownloadError) as error:
        status.reason = str(error)
        return status, []

    # 2. Page texts.
    try:
        pages = extract_pages(path)
    except UnreadablePdfError as error:
        status.reason = error.reason
        return status, []
    except OSError as error:
        status.reason = f"cannot read file: {error}"
        return status, []
    finally:
        if path.is_relative_to(workdir.resolve()):
            path.unlink(missing_ok=True)

    # 3. Chunks. Cleaning can empty a page that held only control characters.
    cleaned = [PageText(page=page.page, text=clean_text(page.text)) for page in pages]
    chunks = chunker.chunk_pages(cleaned)
    status.pages = len(pages)
    if not chunks:
        status.reason = "no text left after cleaning"
        return status, []

    status.status = "ok"
    status.chunks = len(chunks)
    return status, chunks


def build_index(
    source: str,
    out: Path,
    *,
    settings: IndexBuilderSettings | None = None,
    endpoint_url: str | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build an index of every PDF in ``source`` and write it to ``out``, replacing any index there.

    ``source`` is a local folder, ``file:///abs/path`` or ``s3://bucket/prefix``.
    ``endpoint_url`` overrides the S3 endpoint. Raises NothingIndexedError, carrying the
    report, when no document yields a chunk.
    """
    started = time.perf_counter()
    settings = settings or IndexBuilderSettings()
    out = Path(out).expanduser().resolve()

    # 1. Fail on a bad output folder or source before loading the model.
    check_output_dir(out)
    document_source = open_source(source, endpoint_url=endpoint_url)
    report = BuildReport(source=document_source.uri, out=out)
    logger.info("Building index from %s into %s", document_source.uri, out)

    documents = list(document_source.list_documents())
    logger.info("Found %d PDF(s) in %s", len(documents), document_source.uri)
    if not documents:
        report.duration = time.perf_counter() - started
        raise NothingIndexedError(
            f"no PDF files found in {document_source.uri}. Check the source path or prefix.", report
        )

    # 2. The model and a splitter that counts its tokens.
    embedder = load_embedder(settings.embedding_model)
    chunker = PageChunker(
        embedder, chunk_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap_tokens
    )

    # 3. Documents one at a time, so that at most one download sits on disk.
    # NOTE: downloads are sequential. A large S3 prefix would gain from fetching a few
    # documents ahead in threads.
    chunks: list[Chunk] = []
    with tempfile.TemporaryDirectory(prefix="veraclaim-download-") as workdir:
        for document in tqdm(
            documents, desc="Reading PDFs", unit="pdf", disable=not progress, delay=_PROGRESS_DELAY_SECONDS
        ):
            status, text_chunks = index_document(document_source, document, Path(workdir), chunker)
            report.documents.append(status)
            if status.status == "skipped":
                logger.warning("Skipped %s: %s", document.uri, status.reason)
                continue
            first_id = len(chunks)
            chunks.extend(
                _stored_chunk(first_id + offset, document, chunk) for offset, chunk in enumerate(text_chunks)
            )

    if not chunks:
        report.duration = time.perf_counter() - started
        raise NothingIndexedError(
            f"none of the {len(documents)} PDF(s) in {document_source.uri} could be indexed; "
            "see the reasons in the report.",
            report,
        )

    # 4. Vectors, in batches across documents.
    vectors = embedder.embed(
        [chunk.text for chunk in chunks], batch_size=settings.embedding_batch_size, progress=progress
    )

    # 5. The index folder, replacing the old one at the end.
    write_index(
        out,
        chunks,
        vectors,
        embedding_model=settings.embedding_model,
        documents=[status.to_manifest() for status in report.documents],
        details={
            "source": document_source.uri,
            "max_seq_length": embedder.max_seq_length,
            "chunk_tokens": chunker.chunk_tokens,
            "chunk_overlap_tokens": chunker.overlap_tokens,
        },
    )
    report.chunk_count = len(chunks)
    report.duration = time.perf_counter() - started
    logger.info(
        "Built index %s: %d document(s) indexed, %d skipped, %d chunks in %.1f s",
        out,
        len(report.indexed),
        len(report.skipped),
        report.chunk_count,
        report.duration,
    )
    return report


def _stored_chunk(chunk_id: int, document: SourceDocument, chunk: TextChunk) -> Chunk:
    return Chunk(
        chunk_id=chunk_id,
        text=chunk.text,
        source_uri=document.uri,
        file_name=document.file_name,
        page=chunk.page,
        chunk_no=chunk.chunk_no,
    )
