"""A local folder of PDFs, searched recursively."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from index_builder.errors import InvalidSourceError, SourceNotFoundError
from index_builder.sources.base import Source, SourceDocument


class LocalSource(Source):
    """PDFs under one folder and its subfolders, in sorted path order."""

    def __init__(self, root: Path) -> None:
        root = root.expanduser().resolve()
        if not root.is_dir():
            raise SourceNotFoundError(
                f"source folder not found: {root}. Pass an existing folder of PDFs or an s3:// URI."
            )
        self.root = root
        self.uri = root.as_uri()

    def list_documents(self) -> Iterator[SourceDocument]:
        # Sorting makes chunk ids repeatable between two builds of the same folder.
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() != ".pdf" or not path.is_file():
                continue
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC).isoformat(timespec="microseconds")
            yield SourceDocument(
                uri=path.as_uri(),
                file_name=unicodedata.normalize("NFC", path.name),
                size=stat.st_size,
                last_modified=modified,
            )

    def fetch(self, document: SourceDocument, workdir: Path) -> Path:
        return path_from_file_uri(document.uri)


def path_from_file_uri(uri: str) -> Path:
    """Return the local path of a ``file://`` URI, decoding percent-escapes.

    Only URIs without a host (``file:///abs/path`` or ``file://localhost/abs/path``) name
    a local file. Path.from_uri would do this but needs Python 3.13.
    """
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidSourceError(
            f"invalid file URI: {uri!r}. Write an absolute local path as file:///abs/path."
        )
    return Path(unquote(parts.path))
