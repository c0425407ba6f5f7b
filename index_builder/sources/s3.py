"""PDFs under an S3 prefix, listed with the list_objects_v2 paginator.

The endpoint is AWS unless ``endpoint_url`` or the AWS_ENDPOINT_URL environment variable
(read by boto3 itself) names another, such as MinIO or a moto server. Credentials and
region come from boto3's usual chain.

Throttling (503 SlowDown) and 5xx responses are retried by botocore itself, in the retry
mode and with the attempts that the settings give. A download that ends short of the
object's ContentLength is retried here, because botocore does not retry a body that
breaks off after the headers arrived.

Keys are used exactly as listed, so a key whose Hangul is in NFD (decomposed jamo, as
macOS writes file names) is fetched with its own bytes. Only ``file_name`` is shown in NFC.
"""

from __future__ import annotations

import logging
import unicodedata
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
from index_builder.settings import IndexBuilderSettings
from index_builder.sources.base import Source, SourceDocument

logger = logging.getLogger(__name__)

SCHEME = "s3://"

_DOWNLOAD_BLOCK_BYTES = 1024 * 1024


def client_config(settings: IndexBuilderSettings) -> Config:
    """Return the botocore configuration: retries, and a connection pool for the download threads."""
    return Config(
        # botocore's "max_attempts" counts retries only; "total_max_attempts" counts the first try too.
        retries={"mode": settings.s3_retry_mode, "total_max_attempts": settings.s3_max_attempts},
        max_pool_connections=max(10, settings.download_concurrency),
    )


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

    def __init__(
        self, uri: str, *, endpoint_url: str | None = None, settings: IndexBuilderSettings | None = None
    ) -> None:
        self.bucket, prefix = parse_s3_uri(uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        self.uri = f"{SCHEME}{self.bucket}/{self.prefix}"
        self.endpoint_url = endpoint_url
        self.settings = settings or IndexBuilderSettings()
        self.concurrency = self.settings.download_concurrency
        try:
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, config=client_config(self.settings)
            )
        except ValueError as error:
            # botocore rejects a malformed endpoint (from --endpoint-url or AWS_ENDPOINT_URL) here.
            raise InvalidSourceError(
                f"S3 endpoint {endpoint_url or '(from AWS_ENDPOINT_URL)'} is invalid ({error}). "
                "Pass --endpoint-url http://HOST:PORT or unset AWS_ENDPOINT_URL."
            ) from error

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
                    modified = item.get("LastModified")
                    yield SourceDocument(
                        uri=f"{SCHEME}{self.bucket}/{key}",
                        file_name=unicodedata.normalize("NFC", PurePosixPath(key).name),
                        size=item.get("Size"),
                        etag=item.get("ETag"),
                        last_modified=modified.isoformat() if modified is not None else None,
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

        attempts = self.settings.download_attempts
        for attempt in range(1, attempts + 1):
            # 1. The object, streamed to disk. botocore has already retried throttling and 5xx.
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
                expected = int(response["ContentLength"])
                written = _save_body(response["Body"], target)
            except ClientError as error:
                raise DownloadError(f"download of {document.uri} failed: {error}") from error
            except (BotoCoreError, OSError) as error:
                # A body that breaks off (IncompleteReadError, ResponseStreamingError) is retried.
                logger.warning(
                    "Download of %s broke off (attempt %d of %d): %s", document.uri, attempt, attempts, error
                )
                continue

            # 2. A short file is a truncated download, even if the server reported it complete.
            listed = document.size if document.size is not None else expected
            if written == expected == listed:
                return target
            logger.warning(
                "Download of %s is truncated (attempt %d of %d): %d bytes, ContentLength %d, listed size %d",
                document.uri,
                attempt,
                attempts,
                written,
                expected,
                listed,
            )
        target.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {document.uri} failed: truncated or broken off in all {attempts} attempts "
            "(fewer bytes than the object's size)"
        )

    def _key_of(self, document: SourceDocument) -> str:
        # The URI carries the key exactly as listed, NFD included.
        bucket_uri = f"{SCHEME}{self.bucket}/"
        if not document.uri.startswith(bucket_uri):
            raise InvalidSourceError(f"document {document.uri!r} is not in bucket {self.bucket!r}")
        return document.uri[len(bucket_uri) :]

    def _endpoint(self) -> str:
        return self._client.meta.endpoint_url


def _save_body(body, target: Path) -> int:
    """Write a botocore StreamingBody to ``target`` and return the number of bytes written."""
    written = 0
    with target.open("wb") as file:
        for block in body.iter_chunks(_DOWNLOAD_BLOCK_BYTES):
            file.write(block)
            written += len(block)
    return written
