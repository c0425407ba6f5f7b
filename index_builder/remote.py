"""Index versions in S3: upload a published version, and pull the current one to a chat replica.

The bucket mirrors the local root: ``PREFIX/versions/<id>/<file>`` for every file of a
version, and ``PREFIX/CURRENT``, a small object that names the current id. The upload
writes every file of the version first and CURRENT last, and a pull reads CURRENT first,
so a replica never fetches a version that is only partly uploaded. A single PUT replaces
an S3 object atomically, so a reader of CURRENT reads the old or the new id.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from index_builder.errors import IndexFormatError, PublishError, VersionNotFoundError
from index_builder.publish import EvaluationGate, publish_version, staging_dir
from index_builder.settings import IndexBuilderSettings
from index_builder.sources.s3 import client_config, local_download_path, parse_s3_uri
from index_builder.store import read_manifest
from index_builder.versions import (
    CURRENT_FILE,
    VERSIONS_DIR,
    BuildLock,
    current_version,
    is_version_id,
    remove_stale_staging,
    version_dir,
)

logger = logging.getLogger(__name__)


def _client(endpoint_url: str | None, settings: IndexBuilderSettings):
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=client_config(settings))


def _prefix(uri: str) -> tuple[str, str]:
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def upload_version(
    root: Path,
    version_id: str,
    uri: str,
    *,
    endpoint_url: str | None = None,
    settings: IndexBuilderSettings | None = None,
) -> None:
    """Upload ``root/versions/<version_id>`` to ``uri`` and then point the bucket's CURRENT at it."""
    settings = settings or IndexBuilderSettings()
    bucket, prefix = _prefix(uri)
    client = _client(endpoint_url, settings)
    folder = version_dir(root, version_id)
    try:
        # 1. Every file of the version, before anything names it.
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        for path in files:
            key = f"{prefix}{VERSIONS_DIR}/{version_id}/{path.relative_to(folder).as_posix()}"
            client.upload_file(str(path), bucket, key)

        # 2. The pointer, in one PUT.
        client.put_object(Bucket=bucket, Key=f"{prefix}{CURRENT_FILE}", Body=f"{version_id}\n".encode())
    except (ClientError, BotoCoreError, OSError) as error:
        raise PublishError(
            f"upload of version {version_id} to {uri} failed: {error}. The version is published locally "
            f"in {root}; run the build again or upload it with `veraclaim-index push`."
        ) from error
    logger.info("Uploaded version %s (%d files) to %s and switched its CURRENT", version_id, len(files), uri)


def pull_current(
    uri: str,
    out: Path,
    *,
    endpoint_url: str | None = None,
    settings: IndexBuilderSettings | None = None,
) -> tuple[str, bool]:
    """Fetch the version that ``uri``'s CURRENT names into the local root ``out`` and publish it there.

    Returns the version id and whether it was fetched (False: ``out`` already served it).
    The local copy is validated like a build's, so a replica never switches to a version
    that does not load. It is not evaluated: the evaluation gate runs where the version is
    built, and ``settings``' eval_* fields are ignored here.
    """
    settings = settings or IndexBuilderSettings()
    bucket, prefix = _prefix(uri)
    client = _client(endpoint_url, settings)
    out = Path(out).expanduser().resolve()

    # 1. The id that the bucket serves.
    try:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}{CURRENT_FILE}")["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            raise VersionNotFoundError(
                f"no {CURRENT_FILE} object under {uri}. Publish a version there with "
                "`veraclaim-index rebuild --publish-to`."
            ) from error
        raise PublishError(f"reading {uri}{CURRENT_FILE} failed: {error}") from error
    except BotoCoreError as error:
        raise PublishError(f"reading {uri}{CURRENT_FILE} failed: {error}. Check --endpoint-url.") from error
    version_id = body.decode("utf-8", errors="replace").strip()
    if not is_version_id(version_id):
        raise IndexFormatError(f"{uri}{CURRENT_FILE} contains {version_id[:80]!r}, which is not a version id")

    with BuildLock(out):
        if current_version(out) == version_id:
            logger.info("%s already serves version %s", out, version_id)
            return version_id, False
        remove_stale_staging(out)

        # 2. The version's files into a staging folder, with the same key checks as documents.
        staging = staging_dir(out, version_id)
        version_prefix = f"{prefix}{VERSIONS_DIR}/{version_id}/"
        try:
            staging.mkdir(parents=True)
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=version_prefix)
            count = 0
            for page in pages:
                for item in page.get("Contents", []):
                    target = local_download_path(staging, item["Key"][len(version_prefix) :])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(bucket, item["Key"], str(target))
                    count += 1
            if count == 0:
                raise VersionNotFoundError(f"{uri}{CURRENT_FILE} names version {version_id}, but {version_prefix} is empty")
        except (ClientError, BotoCoreError, OSError) as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise PublishError(f"download of version {version_id} from {uri} failed: {error}") from error
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        # 3. Validated and switched like a local build, but never evaluated: the builder's gate
        #    judged this version before it was uploaded, and a replica with its own golden
        #    set or thresholds must not refuse what every other replica serves.
        manifest = read_manifest(staging)
        publish_version(
            out,
            staging,
            version_id,
            embedding_model=str(manifest["embedding_model"]),
            dimension=int(manifest["dimension"]),
            keep_versions=settings.keep_versions,
            gate=EvaluationGate.OFF,
        )
    logger.info("Pulled version %s (%d files) from %s into %s", version_id, count, uri, out)
    return version_id, True
