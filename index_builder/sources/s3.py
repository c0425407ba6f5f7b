"""PDFs under an S3 prefix, listed with the list_objects_v2 paginator.

The endpoint is AWS unless ``endpoint_url`` or the AWS_ENDPOINT_URL environment variable
(read by boto3 itself) names another, such as MinIO or a moto server. Credentials and
region come from boto3's usual chain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from index_builder.errors import (
    DownloadError,
    InvalidSourceError,
    SourceNotFoundError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from index_builder.sources.base import Source, SourceDocument

logger = logging.getLogger(__name__)

SCHEME = "s3://"

# boto3's "standard" retry mode retries throttling and 5xx errors with backoff.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into bucket and prefix.

    The prefix is taken verbatim: keys may contain ``?``, ``#``, ``+`` or spaces, which a
    URL parser would cut or decode.
    """
    if not uri.startswith(SCHEME):
        raise InvalidSourceError(f"invalid S3 URI: {uri!r}. Write it as s3://bucket/prefix.")
    bucket, _, prefix = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise InvalidSourceError(f"S3 URI without a bucket: {uri!r}. Write it as s3://bucket/prefix.")
    return bucket, prefix


def local_download_path(workdir: Path, relative_key: str) -> Path:
    """Return the path under ``workdir`` where the object with this key is saved.

    The key's ``/`` separators become folders, and empty or ``.`` segments are dropped.
    Raises UnsafeKeyError for a key with a ``..`` segment, a NUL byte, or any other
    reason to resolve outside ``workdir``.
    """
    segments = [segment for segment in relative_key.split("/") if segment not in ("", ".")]
    if not segments or ".." in segments or "\x00" in relative_key:
        raise UnsafeKeyError(f"unsafe S3 key {relative_key!r}: it would be saved outside the download folder")

    root = workdir.resolve()
    target = root.joinpath(*segments).resolve()
    if not target.is_relative_to(root) or target == root:
        raise UnsafeKeyError(f"unsafe S3 key {relative_key!r}: it resolves to {target}, outside {root}")
    return target


class S3Source(Source):
    """Every ``.pdf`` object (any case) under ``s3://bucket/prefix``.

    A prefix that does not end in ``/`` is treated as a folder, so ``s3://b/patents`` lists
    ``patents/…`` and not ``patents-old/…``.
    """

    def __init__(self, uri: str, *, endpoint_url: str | None = None) -> None:
        self.bucket, prefix = parse_s3_uri(uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        self.uri = f"{SCHEME}{self.bucket}/{self.prefix}"
        self.endpoint_url = endpoint_url
        self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=_CLIENT_CONFIG)

    def list_documents(self) -> Iterator[SourceDocument]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix)
        page_count = 0
        try:
            for page in pages:
                page_count += 1
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if not key.lower().endswith(".pdf"):
                        continue
                    yield SourceDocument(
                        uri=f"{SCHEME}{self.bucket}/{key}",
                        file_name=PurePosixPath(key).name,
                        size=item.get("Size"),
                    )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise SourceNotFoundError(
                    f"S3 bucket not found: {self.bucket!r} (endpoint {self._endpoint()}). "
                    "Check the bucket name and --endpoint-url."
                ) from error
            raise SourceUnavailableError(
                f"listing {self.uri} failed: {error}. Check the credentials and the bucket policy."
            ) from error
        except NoCredentialsError as error:
            raise SourceUnavailableError(
                f"listing {self.uri} failed: no AWS credentials. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE."
            ) from error
        except BotoCoreError as error:
            raise SourceUnavailableError(
                f"listing {self.uri} failed at {self._endpoint()}: {error}. Check the endpoint URL "
                "and the network."
            ) from error
        logger.info("Listed %s in %d page(s)", self.uri, page_count)

    def fetch(self, document: SourceDocument, workdir: Path) -> Path:
        key = self._key_of(document)
        target = local_download_path(workdir, key[len(self.prefix) :])
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client.download_file(self.bucket, key, str(target))
        except (ClientError, BotoCoreError, OSError) as error:
            raise DownloadError(f"download of {document.uri} failed: {error}") from error
        return target

    def _key_of(self, document: SourceDocument) -> str:
        bucket_uri = f"{SCHEME}{self.bucket}/"
        if not document.uri.startswith(bucket_uri):
            raise InvalidSourceError(f"document {document.uri!r} is not in bucket {self.bucket!r}")
        return document.uri[len(bucket_uri) :]

    def _endpoint(self) -> str:
        return self._client.meta.endpoint_url
