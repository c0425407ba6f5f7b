"""Publishing a written version folder: validate it, move it under versions/, switch CURRENT.

Order of the steps, and why a SIGKILL at any point leaves the served version loadable:
1. the staging folder is fsynced and validated while CURRENT still names the old version;
2. it is renamed to ``versions/<id>`` (one rename on one filesystem);
3. CURRENT is replaced in one atomic rename (versions.switch_current);
4. versions beyond ``keep_versions`` are deleted, never the current one.
A kill before step 3 leaves CURRENT unchanged and at most an unused folder, which the next
build removes (staging) or prunes (an unpublished version).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index_builder.embed import canonical_model_name
from index_builder.errors import IndexBuilderError, ValidationFailedError
from index_builder.reader import IndexReader, load_version
from index_builder.store import CHUNKS_FILE, INDEX_FILE, MANIFEST_FILE, Chunk, check_output_dir, write_version
from index_builder.versions import (
    STAGING_PREFIX,
    VERSIONS_DIR,
    BuildLock,
    fsync_tree,
    new_version_id,
    prune_versions,
    remove_stale_staging,
    switch_current,
    version_dir,
)

logger = logging.getLogger(__name__)

# The default of VERACLAIM_KEEP_VERSIONS. At least 2, so the version that a chat replica
# may still be loading is never the one a build deletes.
DEFAULT_KEEP_VERSIONS = 3

_FLAT_LAYOUT_ENTRIES = (MANIFEST_FILE, INDEX_FILE, CHUNKS_FILE, "keyword")


def staging_dir(root: Path, version_id: str) -> Path:
    return root / f"{STAGING_PREFIX}{version_id}"


def validate_version(folder: Path, *, embedding_model: str, dimension: int | None = None) -> IndexReader:
    """Load the version at ``folder`` and check it is fit to serve, returning the reader.

    Fit means: every file loads and agrees with the others, it has at least one chunk, and
    it was built with ``embedding_model`` at ``dimension``. Raises ValidationFailedError.

    NOTE: loading holds a second copy of the version's vectors, chunk texts and BM25
    arrays while the build's own copy is still alive.
    """
    try:
        reader = load_version(folder, embedding_model)
    except IndexBuilderError as error:
        raise ValidationFailedError(f"new index version {folder.name} does not load: {error}") from error

    if reader.chunk_count == 0:
        raise ValidationFailedError(f"new index version {folder.name} contains no chunks")
    if canonical_model_name(reader.embedding_model) != canonical_model_name(embedding_model):
        raise ValidationFailedError(
            f"new index version {folder.name} names model {reader.embedding_model!r}, expected {embedding_model!r}"
        )
    if dimension is not None and reader.dimension != dimension:
        raise ValidationFailedError(
            f"new index version {folder.name} has dimension {reader.dimension}, expected {dimension}"
        )
    return reader


def publish_version(
    root: Path,
    staging: Path,
    version_id: str,
    *,
    embedding_model: str,
    dimension: int | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> Path:
    """Validate ``staging`` and make it the current version of ``root``; return its folder.

    The caller holds the root's BuildLock. On a validation failure the staging folder is
    deleted and CURRENT is unchanged.
    """
    # 1. On disk and valid before anything points at it.
    try:
        fsync_tree(staging)
        validate_version(staging, embedding_model=embedding_model, dimension=dimension)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    # 2. Into versions/, then the atomic switch.
    target = version_dir(root, version_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    descriptor = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    logger.info("Publishing version %s of %s", version_id, root)
    switch_current(root, version_id)

    # 3. Old versions, and the files of the older flat layout, which CURRENT now overrides.
    prune_versions(root, keep_versions)
    _remove_flat_layout(root)
    return target


def _remove_flat_layout(root: Path) -> None:
    for name in _FLAT_LAYOUT_ENTRIES:
        entry = root / name
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.exists():
            entry.unlink()


def write_index(
    out: Path,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    *,
    embedding_model: str,
    documents: Sequence[Mapping[str, Any]],
    details: Mapping[str, Any] | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> dict[str, Any]:
    """Write ``chunks`` and their ``vectors`` as a new version of the index root ``out``, publish it, and return its manifest.

    ``vectors`` must be L2-normalised, one row per chunk. ``details`` adds fields to the
    manifest. Raises ValidationFailedError, leaving the current version served, when the
    new version does not load with ``embedding_model``.
    """
    out = Path(out).expanduser().resolve()
    check_output_dir(out)
    if not chunks:
        raise ValidationFailedError(f"new index version for {out} contains no chunks, so it was not written")
    with BuildLock(out):
        remove_stale_staging(out)
        version_id = new_version_id()
        staging = staging_dir(out, version_id)
        try:
            manifest = write_version(
                staging,
                chunks,
                vectors,
                embedding_model=embedding_model,
                documents=documents,
                details={**(details or {}), "version": version_id},
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish_version(
            out,
            staging,
            version_id,
            embedding_model=embedding_model,
            dimension=int(vectors.shape[1]),
            keep_versions=keep_versions,
        )
    return manifest


__all__ = ["DEFAULT_KEEP_VERSIONS", "VERSIONS_DIR", "publish_version", "staging_dir", "validate_version", "write_index"]
