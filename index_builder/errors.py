"""Exceptions raised by the index builder and the index reader.

Every class derives from IndexBuilderError, so a caller can catch the whole package with
one clause. Each class also derives from the stdlib type that callers already catch: a
missing index is a FileNotFoundError, a model mismatch is a ValueError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from index_builder.build import BuildReport


class IndexBuilderError(Exception):
    """Base class of every error that index_builder raises on purpose."""


class InvalidSettingsError(IndexBuilderError, ValueError):
    """A combination of settings that cannot work, such as chunks longer than the model's input."""


# Sources: the folder or S3 prefix that contains the PDFs.


class InvalidSourceError(IndexBuilderError, ValueError):
    """A source argument that is neither a local folder nor an s3:// or file:// URI."""


class SourceNotFoundError(IndexBuilderError, FileNotFoundError):
    """A local source folder or S3 bucket that does not exist."""


class SourceUnavailableError(IndexBuilderError, ConnectionError):
    """A source that exists in principle but could not be listed (network, credentials)."""


class UnsafeKeyError(IndexBuilderError, ValueError):
    """An S3 key whose local download path would fall outside the download folder."""


class DownloadError(IndexBuilderError, OSError):
    """One object that could not be downloaded. The build skips that document."""


# Documents: one PDF that cannot be indexed. The build records the reason and goes on.


class UnreadablePdfError(IndexBuilderError, ValueError):
    """A PDF that yields no text. ``reason`` is the short text stored in the build report.

    ``pages`` lists the 1-based pages that the reason applies to, where it applies to pages
    (scanned pages for NoTextLayerError, garbled ones for GarbledTextError).
    """

    def __init__(self, path: object, reason: str, pages: list[int] | None = None) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason
        self.pages = list(pages or [])


class EncryptedPdfError(UnreadablePdfError):
    """A PDF that needs a password to open."""


class CorruptPdfError(UnreadablePdfError):
    """A file that is not a PDF, or a PDF that is truncated or damaged beyond repair."""


class NoTextLayerError(UnreadablePdfError):
    """A PDF whose pages contain no extractable text, such as a scan without OCR."""


class GarbledTextError(UnreadablePdfError):
    """A PDF whose extracted text is garbage on every page, as from fonts without a usable ToUnicode map."""


class DocumentLimitError(UnreadablePdfError):
    """A PDF whose extraction exceeded the time or memory limit per document, or crashed its worker."""


# Models and indexes.


class EmbeddingModelError(IndexBuilderError, OSError):
    """An embedding model that could not be found or loaded."""


class QueryEncoderUnavailableError(EmbeddingModelError):
    """A model that cannot embed queries on ONNX Runtime with the same output as in torch."""


class IndexNotFoundError(IndexBuilderError, FileNotFoundError):
    """An index folder, or a file inside it, that does not exist."""


class IndexFormatError(IndexBuilderError, ValueError):
    """An index folder whose files are damaged, inconsistent or of an unsupported version."""


def repair_advice(folder: Path) -> str:
    """Return the commands that replace the damaged index version at ``folder``, as a sentence for error messages.

    A version folder under an index root can be rebuilt or rolled back. A folder in the
    older flat layout can only be rebuilt. ``--full`` makes the build read every PDF
    instead of reusing chunks from the damaged version.
    """
    # Imported here because versions.py imports this module.
    from index_builder.versions import STAGING_PREFIX, VERSIONS_DIR

    # A published version sits in ROOT/versions/, one being validated in ROOT/.staging-<id>.
    root = None
    if folder.parent.name == VERSIONS_DIR:
        root = folder.parent.parent
    elif folder.name.startswith(STAGING_PREFIX):
        root = folder.parent
    if root is not None:
        return (
            f"Rebuild the index with `veraclaim-index build SOURCE --out {root} --full`, "
            f"or serve the previous version with `veraclaim-index rollback {root}`."
        )
    return f"Rebuild the index with `veraclaim-index build SOURCE --out {folder} --full`."


class IndexMismatchError(IndexBuilderError, ValueError):
    """An index opened with another embedding model or dimension than it was built with."""


class InvalidQueryError(IndexBuilderError, ValueError):
    """A search request with an empty query, a wrong vector shape or a k below 1."""


class ChunkNotFoundError(IndexBuilderError, KeyError):
    """A chunk id that the index does not contain."""

    def __str__(self) -> str:
        # KeyError.__str__ would print the message with quotes around it.
        return str(self.args[0]) if self.args else ""


class NothingIndexedError(IndexBuilderError, RuntimeError):
    """A build in which no document produced a chunk. ``report`` gives the reason for each."""

    def __init__(self, message: str, report: BuildReport) -> None:
        super().__init__(message)
        self.report = report


class OutputDirError(IndexBuilderError, FileExistsError):
    """An output folder that exists and does not contain an index, so a build will not replace it."""


# Versions and publishing.


class BuildLockedError(IndexBuilderError, BlockingIOError):
    """Another build, rollback or pull holds the lock of the index folder."""


class ValidationFailedError(IndexBuilderError, ValueError):
    """A new index version that failed validation, so CURRENT still names the old one."""


class VersionNotFoundError(IndexBuilderError, LookupError):
    """A rollback or pull that names a version the index folder or bucket does not contain."""


class PublishError(IndexBuilderError, ConnectionError):
    """An upload to or download from S3 of an index version that failed."""
