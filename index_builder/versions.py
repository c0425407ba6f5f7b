"""The layout of an index root: immutable version folders behind a CURRENT pointer.

```
ROOT/
  CURRENT              the id of the served version, one line
  versions/<id>/       one complete index (see store.py), never modified after publishing
  .staging-<id>/       a version being written; removed by the next build if left behind
  .lock                flock target that serialises builds, rollbacks and pulls
  last-build.json      the report of the last scheduled rebuild, if it was written here
```

Invariants:
- CURRENT changes only through ``os.replace`` of a fully written and fsynced temporary
  file, so a reader sees the old id or the new id, never a partial one.
- A folder appears under ``versions/`` only after its files are fsynced and it passed
  validation (publish.py), so every id that CURRENT can name is a loadable index.
- Version ids sort in creation order: a UTC timestamp with microseconds, then 4 random
  hex digits against clashes between machines.

A folder with ``manifest.json`` and no CURRENT is an index in the older flat layout, or a
single version folder. Readers open it as it is.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from index_builder.errors import BuildLockedError, IndexFormatError, VersionNotFoundError

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"
# The JSON report that `veraclaim-index rebuild` writes into the root when --report names no other file.
REPORT_FILE = "last-build.json"

_VERSION_ID = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{4}$")


def new_version_id() -> str:
    """Return a fresh version id such as ``20250101T120000123456Z-1a2b``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:4]}"


def is_version_id(text: str) -> bool:
    """Return whether ``text`` has the form of a version id, which also makes it a safe folder name."""
    return bool(_VERSION_ID.match(text))


def version_dir(root: Path, version_id: str) -> Path:
    return root / VERSIONS_DIR / version_id


def current_version(path: str | Path) -> str | None:
    """Return the id that ``path/CURRENT`` names, or None when there is no CURRENT file.

    This reads one small file, so a chat replica can poll it to notice a new version.
    Raises IndexFormatError when CURRENT does not contain a version id.
    """
    pointer = Path(path).expanduser() / CURRENT_FILE
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not is_version_id(text):
        raise IndexFormatError(
            f"{pointer} contains {text[:80]!r}, which is not a version id. "
            "Run `veraclaim-index rollback` or rebuild the index."
        )
    return text


def served_dir(path: str | Path) -> Path:
    """Return the version folder that ``path`` serves: CURRENT's version for a root, else ``path`` itself."""
    path = Path(path).expanduser().resolve()
    version = current_version(path)
    return path if version is None else version_dir(path, version)


def is_own_entry(name: str) -> bool:
    """Return whether a root entry is one that builds create besides CURRENT and versions/."""
    return name in (LOCK_FILE, REPORT_FILE) or name.startswith((STAGING_PREFIX, f".{CURRENT_FILE}.tmp-"))


def list_versions(root: Path) -> list[str]:
    """Return the ids of the published version folders under ``root``, oldest first."""
    folder = root / VERSIONS_DIR
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and is_version_id(entry.name))


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` and the folders themselves to disk."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            _fsync_path(path, os.O_RDONLY)
        elif path.is_dir():
            _fsync_path(path, os.O_RDONLY | os.O_DIRECTORY)
    _fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)


def _fsync_path(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def switch_current(root: Path, version_id: str) -> None:
    """Point ``root/CURRENT`` at ``version_id`` in one atomic rename."""
    if not version_dir(root, version_id).is_dir():
        raise VersionNotFoundError(f"version {version_id} is not in {root / VERSIONS_DIR}")

    # 1. The new pointer, complete and on disk before it replaces the old one.
    temporary = root / f".{CURRENT_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(version_id + "\n")
            file.flush()
            os.fsync(file.fileno())

        # 2. The switch, and the directory entry flushed so it survives a power loss.
        os.replace(temporary, root / CURRENT_FILE)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_path(root, os.O_RDONLY | os.O_DIRECTORY)
    logger.info("CURRENT of %s now names version %s", root, version_id)


def previous_version(root: Path) -> str | None:
    """Return the newest version older than the current one, or None if there is none."""
    current = current_version(root)
    older = [version for version in list_versions(root) if current is None or version < current]
    return older[-1] if older else None


def rollback(root: Path, to: str | None = None) -> str:
    """Point CURRENT at version ``to``, or at the one before the current version, and return its id.

    The caller holds the root's BuildLock.
    """
    target = to if to is not None else previous_version(root)
    if target is None:
        raise VersionNotFoundError(
            f"no version older than {current_version(root)} in {root / VERSIONS_DIR}, so there is "
            "nothing to roll back to. Raise VERACLAIM_KEEP_VERSIONS to keep more versions."
        )
    if not is_version_id(target) or not version_dir(root, target).is_dir():
        raise VersionNotFoundError(
            f"version {target!r} is not in {root / VERSIONS_DIR}. Available: {', '.join(list_versions(root))}."
        )
    switch_current(root, target)
    return target


def prune_versions(root: Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest versions, never the current one, and return the deleted ids.

    A reader that already loaded a deleted version keeps working, because open_index reads
    every file into memory.
    """
    current = current_version(root)
    versions = list_versions(root)
    kept = set(versions[-keep:]) | {current}
    removed = [version for version in versions if version not in kept]
    for version in removed:
        shutil.rmtree(version_dir(root, version), ignore_errors=True)
        logger.info("Removed old version %s from %s", version, root)
    return removed


def remove_stale_staging(root: Path) -> None:
    """Delete staging folders and pointer files that a killed build left behind.

    The caller holds the BuildLock, so no other build is writing them.
    """
    for entry in root.glob(".*"):
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
            logger.warning("Removing %s, left behind by an interrupted build", entry)
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(f".{CURRENT_FILE}.tmp-"):
            entry.unlink(missing_ok=True)


class BuildLock:
    """An exclusive, non-blocking ``flock`` on ``root/.lock`` for one build, rollback or pull.

    The kernel releases the lock when the process exits, even after SIGKILL, so a killed
    build never blocks the next one.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._file: int | None = None

    def __enter__(self) -> BuildLock:
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise BuildLockedError(
                f"another build, rollback or pull is running on {self.root} (it holds "
                f"{self.root / LOCK_FILE}). Wait for it to finish, then run again."
            ) from None
        self._file = descriptor
        # The holder's pid, for an operator who wants to know which process it is.
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            os.close(self._file)
            self._file = None
