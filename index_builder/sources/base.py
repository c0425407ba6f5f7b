"""The interface that every document source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceDocument:
    """One PDF in a source.

    ``uri`` identifies the document in the index and in citations: ``s3://bucket/key``
    with the key as stored, or a ``file:///`` URI with percent-encoding as in RFC 8089.
    ``file_name`` is the last path segment in NFC, for display. ``size`` (bytes), ``etag``
    (S3 only, quotes included) and ``last_modified`` (ISO 8601, UTC) come from the listing,
    and let a rebuild recognise an unchanged document without reading it.
    """

    uri: str
    file_name: str
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None


class Source(ABC):
    """A folder of PDFs: list them, then fetch each as a local file to read."""

    uri: str
    # Documents that the build may fetch at the same time: 1 for a local folder.
    concurrency: int = 1

    @abstractmethod
    def list_documents(self) -> Iterator[SourceDocument]:
        """Yield every PDF in the source (a name ending in .pdf, any case), each once."""

    @abstractmethod
    def fetch(self, document: SourceDocument, workdir: Path) -> Path:
        """Return a local path to the document's bytes.

        A remote source downloads into ``workdir``, which the caller owns and deletes. A
        local source returns the file where it is.
        """
