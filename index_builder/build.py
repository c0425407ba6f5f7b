"""The build pipeline: list → plan → fetch → read → chunk → embed → write a version → publish.

Every build writes a new version folder and switches the root's CURRENT pointer to it only
after validation (publish.py), so readers never see a half-written index and a failed or
killed build leaves the served version as it was. A document that cannot be fetched or
read is skipped with its reason, and the build goes on. The build fails only when no
document yields a chunk.

Rebuilds are incremental (incremental.py): unchanged documents keep their chunks, chunk
ids and vectors, and a rebuild in which nothing changed publishes nothing.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index_builder.chunk import PageChunker, TextChunk
from index_builder.embed import Embedder, canonical_model_name, load_embedder
from index_builder.errors import NothingIndexedError
from index_builder.incremental import PreviousVersion, load_previous, pipeline_signature, same_listing
from index_builder.publish import EvaluationGate, publish_version, staging_dir
from index_builder.reading import ReadAhead, ReadRequest
from index_builder.report import BuildReport, DocumentStatus
from index_builder.settings import IndexBuilderSettings
from index_builder.sources import Source, SourceDocument, open_source
from index_builder.store import Chunk, VersionWriter, check_output_dir
from index_builder.versions import BuildLock, new_version_id, remove_stale_staging
from index_builder.worker import ExtractionWorker

logger = logging.getLogger(__name__)

# A progress bar appears only for builds that take longer than this many seconds.
_PROGRESS_DELAY_SECONDS = 1.0
# Chunks embedded in one call. Larger than the model's batch so that short documents share
# batches, small enough that the read-ahead thread keeps working between calls.
_EMBED_GROUP_CHUNKS = 256

__all__ = ["BuildReport", "DocumentStatus", "build_index"]


def build_index(
    source: str,
    out: Path,
    *,
    settings: IndexBuilderSettings | None = None,
    endpoint_url: str | None = None,
    progress: bool = True,
    full: bool = False,
) -> BuildReport:
    """Build a new version of the index root ``out`` from every PDF in ``source``, and publish it.

    ``source`` is a local folder, ``file:///abs/path`` or ``s3://bucket/prefix``.
    ``endpoint_url`` overrides the S3 endpoint. ``full`` re-reads every document instead
    of reusing the chunks of unchanged ones. Raises NothingIndexedError, carrying the
    report, when no document yields a chunk, and BuildLockedError when another build of
    ``out`` is running. In both cases CURRENT keeps naming the version it named.
    """
    started = time.perf_counter()
    settings = settings or IndexBuilderSettings()
    out = Path(out).expanduser().resolve()

    # 1. Fail on a bad output folder or source before loading the model.
    check_output_dir(out)
    document_source = open_source(source, endpoint_url=endpoint_url, settings=settings)
    report = BuildReport(source=document_source.uri, out=out)

    with BuildLock(out):
        remove_stale_staging(out)
        logger.info("Building index from %s into %s", document_source.uri, out)
        stage = time.perf_counter()
        documents = list(document_source.list_documents())
        report.stages["list"] = time.perf_counter() - stage
        logger.info("Found %d PDF(s) in %s", len(documents), document_source.uri)
        if not documents:
            report.duration = time.perf_counter() - started
            raise NothingIndexedError(
                f"no PDF files found in {document_source.uri}. Check the source path or prefix.", report
            )

        # 2. What the current version offers. The model is loaded only when there is work,
        #    so a rebuild in which nothing changed costs a listing and a manifest read.
        stage = time.perf_counter()
        signature = pipeline_signature(
            embedding_model=canonical_model_name(settings.embedding_model),
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap_tokens=settings.chunk_overlap_tokens,
        )
        previous = None if full else load_previous(out, signature)
        report.previous_version = previous.version if previous else None

        # 3. Unchanged documents, and those to read. Nothing to read or remove: nothing to publish.
        reused, requests = _plan(documents, previous)
        listed = {document.uri for document in documents}
        report.removed_documents = sorted(set(previous.records) - listed) if previous else []
        if previous is not None and not requests and not report.removed_documents:
            report.documents = reused
            report.version = previous.version
            report.chunk_count = int(previous.manifest["chunk_count"])
            report.duration = time.perf_counter() - started
            logger.info("No document changed since version %s; nothing to publish", previous.version)
            return report

        embedder = load_embedder(settings.embedding_model)
        chunker = PageChunker(
            embedder, chunk_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap_tokens
        )
        report.stages["load"] = time.perf_counter() - stage

        # 4. The new version, written beside the root and published only when complete.
        version_id = new_version_id()
        staging = staging_dir(out, version_id)
        writer = VersionWriter(staging, embedder.dimension)
        try:
            next_chunk_id = _write_chunks(
                writer, report, reused, requests, previous, document_source, embedder, chunker, settings, progress
            )
            report.chunk_count = writer.count
            if writer.count == 0:
                report.duration = time.perf_counter() - started
                raise NothingIndexedError(
                    f"none of the {len(documents)} PDF(s) in {document_source.uri} could be indexed; "
                    "see the reasons in the report.",
                    report,
                )

            stage = time.perf_counter()
            writer.finish(
                embedding_model=settings.embedding_model,
                documents=[status.to_manifest() for status in report.documents],
                details={
                    "version": version_id,
                    "source": document_source.uri,
                    "max_seq_length": embedder.max_seq_length,
                    "chunk_tokens": chunker.chunk_tokens,
                    "chunk_overlap_tokens": chunker.overlap_tokens,
                    "pipeline": signature,
                    "next_chunk_id": next_chunk_id,
                },
            )
            report.stages["write"] = time.perf_counter() - stage
            logger.info("Wrote staging version %s", version_id)
        except BaseException:
            writer.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise

        # 5. Validate and switch CURRENT.
        stage = time.perf_counter()
        publish_version(
            out,
            staging,
            version_id,
            embedding_model=settings.embedding_model,
            dimension=embedder.dimension,
            keep_versions=settings.keep_versions,
            gate=EvaluationGate.from_settings(settings),
        )
        report.stages["publish"] = time.perf_counter() - stage
        report.version = version_id
        report.published = True

    report.duration = time.perf_counter() - started
    logger.info(
        "Published version %s of %s: %d document(s) indexed (%d reused, %d read), %d skipped, "
        "%d removed, %d chunks in %.1f s",
        report.version,
        out,
        len(report.indexed),
        sum(1 for document in report.documents if document.change == "unchanged"),
        sum(1 for document in report.documents if document.change != "unchanged"),
        len(report.skipped),
        len(report.removed_documents),
        report.chunk_count,
        report.duration,
    )
    return report


def _plan(
    documents: list[SourceDocument], previous: PreviousVersion | None
) -> tuple[list[DocumentStatus], list[ReadRequest]]:
    """Split the listing into statuses reused from ``previous`` and documents to read."""
    reused: list[DocumentStatus] = []
    requests: list[ReadRequest] = []
    for document in documents:
        record = previous.records.get(document.uri) if previous else None
        if record is None:
            requests.append(ReadRequest(document))
        elif record.transient or not same_listing(document, record):
            # A changed listing may still be the same content; the hash decides after the fetch.
            requests.append(ReadRequest(document, known_sha256=None if record.transient else record.sha256, change="changed"))
        else:
            record.change = "unchanged"
            reused.append(record)
    return reused, requests


def _write_chunks(
    writer: VersionWriter,
    report: BuildReport,
    reused: list[DocumentStatus],
    requests: list[ReadRequest],
    previous: PreviousVersion | None,
    source: Source,
    embedder: Embedder,
    chunker: PageChunker,
    settings: IndexBuilderSettings,
    progress: bool,
) -> int:
    """Add reused and newly read chunks to ``writer``; return the next unused chunk id."""
    next_chunk_id = previous.next_chunk_id if previous else 0

    # 1. Unchanged documents: stored chunks and vectors, under their old ids.
    stage = time.perf_counter()
    for status in reused:
        _reuse(writer, report, status, previous)
    report.stages["reuse"] = time.perf_counter() - stage

    # 2. New and changed documents: read ahead in a thread, embed here in groups.
    stage = time.perf_counter()
    logger.info("Reading and embedding %d new or changed document(s)", len(requests))
    pending: list[Chunk] = []
    embed_seconds = 0.0
    with (
        tempfile.TemporaryDirectory(prefix="veraclaim-download-") as workdir,
        ExtractionWorker(
            timeout_seconds=settings.document_timeout_seconds, memory_mb=settings.document_memory_mb
        ) as worker,
    ):
        reader = ReadAhead(source, requests, Path(workdir), worker, chunker)
        try:
            results = tqdm(
                reader,
                total=len(requests),
                desc="Reading PDFs",
                unit="pdf",
                disable=not progress,
                delay=_PROGRESS_DELAY_SECONDS,
            )
            for result in results:
                if result.unchanged_content and previous is not None:
                    # Same bytes under a new ETag or time: the stored chunks still hold.
                    status = previous.records[result.document.uri]
                    status.size, status.etag = result.status.size, result.status.etag
                    status.last_modified, status.change = result.status.last_modified, "unchanged"
                    _reuse(writer, report, status, previous)
                    continue
                report.documents.append(result.status)
                if result.status.status == "skipped":
                    logger.warning("Skipped %s: %s", result.document.uri, result.status.reason)
                    continue
                pending.extend(_stored_chunk(next_chunk_id + offset, result.document, chunk) for offset, chunk in enumerate(result.chunks))
                next_chunk_id += len(result.chunks)
                if len(pending) >= _EMBED_GROUP_CHUNKS:
                    embed_seconds += _embed_and_add(writer, report, pending, embedder, settings)
                    pending = []
            embed_seconds += _embed_and_add(writer, report, pending, embedder, settings)
        finally:
            reader.close()
    report.stages["read_and_embed"] = time.perf_counter() - stage
    report.stages["embed"] = embed_seconds
    report.stages["read"] = reader.busy_seconds
    return next_chunk_id


def _reuse(writer: VersionWriter, report: BuildReport, status: DocumentStatus, previous: PreviousVersion | None) -> None:
    report.documents.append(status)
    if previous is None or status.status != "ok":
        return
    chunks = previous.chunks_of(status.uri)
    writer.add(chunks, previous.vectors_of(chunks))
    report.reused_chunks += len(chunks)


def _embed_and_add(
    writer: VersionWriter, report: BuildReport, chunks: list[Chunk], embedder: Embedder, settings: IndexBuilderSettings
) -> float:
    if not chunks:
        return 0.0
    started = time.perf_counter()
    logger.debug("Embedding %d chunks (%d embedded so far)", len(chunks), report.embedded_chunks)
    vectors = embedder.embed_documents([chunk.text for chunk in chunks], batch_size=settings.embedding_batch_size)
    writer.add(chunks, np.asarray(vectors))
    report.embedded_chunks += len(chunks)
    return time.perf_counter() - started


def _stored_chunk(chunk_id: int, document: SourceDocument, chunk: TextChunk) -> Chunk:
    return Chunk(
        chunk_id=chunk_id,
        text=chunk.text,
        source_uri=document.uri,
        file_name=document.file_name,
        page=chunk.page,
        chunk_no=chunk.chunk_no,
    )
