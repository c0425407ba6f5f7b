"""The reading side of a build: fetch, hash, read and chunk documents ahead of the embedder.

A background thread turns the documents to (re)index into ReadResults and puts them in a
small queue, while the main thread embeds the chunks of earlier documents. Downloads run
in a thread pool of the source's concurrency, PDFs are read in the worker process
(worker.py), and chunking uses the embedder's tokenizer, which releases the GIL. So on two
cores, reading and embedding overlap instead of taking turns.

At most ``_READ_AHEAD`` documents wait in the queue and at most the download pool's size
sits on disk, so memory does not grow with the size of the corpus.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from index_builder.chunk import PageChunker, TextChunk
from index_builder.errors import (
    DownloadError,
    GarbledTextError,
    NoTextLayerError,
    UnreadablePdfError,
    UnsafeKeyError,
)
from index_builder.incremental import file_sha256
from index_builder.report import DocumentStatus
from index_builder.sources import Source, SourceDocument
from index_builder.worker import ExtractionWorker

logger = logging.getLogger(__name__)

# Documents read ahead of the embedder.
_READ_AHEAD = 8


@dataclass
class ReadResult:
    """One document after reading: its status and chunks, or the hash that showed it unchanged."""

    document: SourceDocument
    status: DocumentStatus
    chunks: list[TextChunk] = field(default_factory=list)
    # Set when the content hash equals ``known_sha256``: the stored chunks stay valid.
    unchanged_content: bool = False


@dataclass(frozen=True)
class ReadRequest:
    """A document to read, with the hash of the content the current version holds for it, if any."""

    document: SourceDocument
    known_sha256: str | None = None
    change: str = "new"


def new_status(document: SourceDocument, change: str) -> DocumentStatus:
    return DocumentStatus(
        uri=document.uri,
        file_name=document.file_name,
        size=document.size,
        etag=document.etag,
        last_modified=document.last_modified,
        change=change,  # type: ignore[arg-type]
    )


def fetch_document(source: Source, request: ReadRequest, workdir: Path) -> tuple[DocumentStatus, Path | None]:
    """Fetch one document and hash it. Returns the status and the local path, or None on failure."""
    status = new_status(request.document, request.change)
    try:
        path = source.fetch(request.document, workdir)
    except UnsafeKeyError as error:
        status.reason = str(error)
        return status, None
    except DownloadError as error:
        status.reason = str(error)
        status.transient = True
        return status, None
    try:
        status.sha256 = file_sha256(path)
        if status.size is None:
            status.size = path.stat().st_size
    except OSError as error:
        status.reason = f"cannot read file: {error}"
        return status, None
    return status, path


def read_document(
    status: DocumentStatus, path: Path, worker: ExtractionWorker, chunker: PageChunker
) -> list[TextChunk]:
    """Read and chunk the fetched PDF at ``path``, filling in ``status``.

    A PDF that cannot be read sets ``status.reason`` and returns no chunks instead of raising.
    """
    try:
        text = worker.read(path)
    except NoTextLayerError as error:
        status.reason, status.ocr_pages = error.reason, error.pages
        return []
    except GarbledTextError as error:
        status.reason, status.garbled_pages = error.reason, error.pages
        return []
    except UnreadablePdfError as error:
        status.reason = error.reason
        return []

    status.pages = text.page_count
    status.ocr_pages = text.ocr_pages
    status.garbled_pages = text.garbled_pages
    chunks = chunker.chunk_pages(text.pages)
    if not chunks:
        status.reason = "no text left after cleaning"
        return []
    status.status = "ok"
    status.chunks = len(chunks)
    return chunks


class ReadAhead:
    """Reads ``requests`` in a background thread; iterate over it to get ReadResults in order."""

    def __init__(
        self,
        source: Source,
        requests: Sequence[ReadRequest],
        workdir: Path,
        worker: ExtractionWorker,
        chunker: PageChunker,
    ) -> None:
        self._source = source
        self._requests = requests
        self._workdir = workdir
        self._worker = worker
        self._chunker = chunker
        self._results: queue.Queue[ReadResult | BaseException | None] = queue.Queue(maxsize=_READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="veraclaim-read-ahead", daemon=True)
        self.busy_seconds = 0.0

    def __iter__(self) -> Iterator[ReadResult]:
        self._thread.start()
        while True:
            item = self._results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread, as when the build fails."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._results.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()

    def _put(self, item: ReadResult | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            with ThreadPoolExecutor(
                max_workers=self._source.concurrency, thread_name_prefix="veraclaim-download"
            ) as downloads:
                # Keep a bounded window of downloads in flight, in request order.
                window = max(1, self._source.concurrency)
                pending: list[tuple[ReadRequest, Future[tuple[DocumentStatus, Path | None]]]] = []
                requests = iter(self._requests)
                for request in requests:
                    pending.append((request, downloads.submit(fetch_document, self._source, request, self._workdir)))
                    if len(pending) > window:
                        if not self._finish(*pending.pop(0)):
                            return
                for request, future in pending:
                    if not self._finish(request, future):
                        return
            self._put(None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(error)

    def _finish(self, request: ReadRequest, future: Future[tuple[DocumentStatus, Path | None]]) -> bool:
        status, path = future.result()
        started = time.perf_counter()
        result = ReadResult(document=request.document, status=status)
        if path is not None:
            try:
                if request.known_sha256 is not None and status.sha256 == request.known_sha256:
                    result.unchanged_content = True
                else:
                    result.chunks = read_document(status, path, self._worker, self._chunker)
            finally:
                if path.is_relative_to(self._workdir.resolve()):
                    path.unlink(missing_ok=True)
        status.seconds = time.perf_counter() - started
        self.busy_seconds += status.seconds
        return self._put(result)
