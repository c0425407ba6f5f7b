"""Document sources: a local folder or an S3 prefix, chosen by the form of the source argument."""

from __future__ import annotations

from pathlib import Path

from index_builder.errors import InvalidSourceError
from index_builder.settings import IndexBuilderSettings
from index_builder.sources.base import Source, SourceDocument
from index_builder.sources.local import LocalSource, path_from_file_uri

__all__ = ["Source", "SourceDocument", "open_source"]


def open_source(
    source: str, *, endpoint_url: str | None = None, settings: IndexBuilderSettings | None = None
) -> Source:
    """Return the Source for ``s3://bucket/prefix``, ``file:///abs/path`` or a folder path.

    ``endpoint_url`` and the download settings apply to S3 only.
    """
    if source.startswith("s3://"):
        # boto3 is imported only for S3 sources.
        from index_builder.sources.s3 import S3Source

        return S3Source(source, endpoint_url=endpoint_url, settings=settings)

    if source.startswith("file:"):
        return LocalSource(path_from_file_uri(source))

    if "://" in source:
        raise InvalidSourceError(
            f"unsupported source {source!r}. Pass a local folder, file:///abs/path or s3://bucket/prefix."
        )
    return LocalSource(Path(source))
