"""The local journal: entries that could not reach the database yet, kept durably on disk.

Layout, one subdirectory per database (so that two logs sharing a journal directory
never replay into each other's database)::

    <journal_dir>/<database>/TARGET                 the database's masked name
    <journal_dir>/<database>/segment-<ns>-<pid>-<random>.jsonl
    <journal_dir>/<database>/rejected.jsonl         entries that can never be written

A segment is append-only JSON Lines. Every append ends with ``fsync``, so an entry in
the journal survives a crash of the process or of the machine. Files are created with
mode 0600 because they hold the users' questions.

Each process appends to its own active segment and holds an exclusive ``flock`` on it.
A replayer only takes segments whose lock it can get: those that their writer has sealed
(closed), and those whose process died, because the kernel releases a dead process's
locks. A segment is deleted only after every entry in it is in the database, so a
replayer killed halfway leaves the whole segment for the next one, which skips the
entries already written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chat_ui.errors import LogJournalError
from chat_ui.log.entries import Entry, EntryRejected, check_entry

logger = logging.getLogger(__name__)

SEGMENT_PATTERN = "segment-*.jsonl"
REJECTED_FILE = "rejected.jsonl"
TARGET_FILE = "TARGET"
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def _directory_name(storage_key: str) -> str:
    # Readable for operators, and unique through the hash even after the name is cut.
    readable = _UNSAFE_NAME_CHARACTERS.sub("_", storage_key).strip("_")[:80]
    digest = hashlib.sha256(storage_key.encode("utf-8")).hexdigest()[:12]
    return f"{readable}-{digest}"


def _encode_lines(entries: Iterable[Any]) -> bytes:
    lines = [json.dumps(entry, ensure_ascii=False, separators=(",", ":")) for entry in entries]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass
class SegmentContents:
    """The entries of a segment, and the lines that could not be read as entries."""

    entries: list[Entry] = field(default_factory=list)
    # (line number, raw text, reason) of each unreadable line.
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)


class ClaimedSegment:
    """A sealed segment whose lock this process holds until ``release()``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def read(self) -> SegmentContents:
        """Parse the segment. A last line without a newline is an append that a crash cut
        short; it is reported as unreadable like any other broken line."""
        with open(self._fd, "rb", closefd=False) as stream:
            stream.seek(0)
            data = stream.read()

        contents = SegmentContents()
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw:
                continue
            if number == len(lines):
                reason = "cut short: the last line has no newline"
                contents.unreadable.append((number, raw.decode("utf-8", "replace"), reason))
                continue
            try:
                contents.entries.append(check_entry(json.loads(raw)))
            except (ValueError, EntryRejected) as error:
                contents.unreadable.append((number, raw.decode("utf-8", "replace"), str(error)))
        return contents

    def delete(self) -> None:
        """Remove the segment; call only once all its entries are in the database."""
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        os.close(self._fd)


class Journal:
    """The journal of one database inside ``root``. Thread-safe."""

    def __init__(self, root: Path, storage_key: str, display_name: str) -> None:
        self.directory = root.expanduser().absolute() / _directory_name(storage_key)
        self._lock = threading.Lock()
        self._active_fd: int | None = None
        self._active_path: Path | None = None
        self._active_entries = 0

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.directory / TARGET_FILE).write_text(display_name + "\n", encoding="utf-8")
        except OSError as error:
            raise LogJournalError(
                f"Could not create the journal directory {self.directory}: {error}. Set "
                "VERACLAIM_LOG_JOURNAL_DIR to a writable directory on a local disk."
            ) from error

    @property
    def active_entries(self) -> int:
        """Entries that this process appended to its active (not yet sealed) segment."""
        return self._active_entries

    def append(self, entries: list[Entry]) -> None:
        """Append ``entries`` and fsync them. Raises LogJournalError when the disk fails."""
        if not entries:
            return
        data = _encode_lines(entries)
        with self._lock:
            try:
                fd = self._open_active_segment()
                _write_all(fd, data)
                os.fsync(fd)
            except OSError as error:
                raise LogJournalError(
                    f"Could not append {len(entries)} entries to the journal in "
                    f"{self.directory}: {error}. Free disk space or fix the directory's "
                    "permissions; these entries are lost otherwise."
                ) from error
            self._active_entries += len(entries)

    def _open_active_segment(self) -> int:
        if self._active_fd is not None:
            return self._active_fd

        # The time prefix sorts segments in the order they were started.
        name = f"segment-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # fsync the directory, so that the new file's name survives a machine crash.
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        self._active_fd, self._active_path = fd, path
        return fd

    def seal(self) -> None:
        """Close the active segment so that a replay can take it."""
        with self._lock:
            if self._active_fd is not None:
                os.close(self._active_fd)
            self._active_fd, self._active_path = None, None
            self._active_entries = 0

    def segment_paths(self) -> list[Path]:
        """Return every segment in the directory, oldest first, including locked ones."""
        return sorted(self.directory.glob(SEGMENT_PATTERN))

    def backlog(self) -> int:
        """Return the number of entries in all segments, including other processes' ones."""
        total = 0
        for path in self.segment_paths():
            try:
                with path.open("rb") as stream:
                    total += sum(1 for line in stream if line.strip())
            except FileNotFoundError:
                continue  # replayed and deleted while counting
            except OSError as error:
                # Counted as one, so that an unreadable segment never reads as no backlog.
                logger.warning("Could not count the entries of journal segment %s: %s", path, error)
                total += 1
        return total

    @contextmanager
    def claim(self, path: Path) -> Iterator[ClaimedSegment | None]:
        """Lock the segment at ``path`` for replay; yield None when it is taken or gone."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield None
            return

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield None
            return

        # Another replayer may have deleted the file between our open() and flock().
        if os.fstat(fd).st_nlink == 0:
            os.close(fd)
            yield None
            return

        segment = ClaimedSegment(path, fd)
        try:
            yield segment
        finally:
            segment.release()

    def reject(self, entries: list[tuple[Any, str]]) -> None:
        """Move (entry or raw line, reason) pairs to rejected.jsonl for an operator."""
        if not entries:
            return
        records = [{"reason": reason, "entry": entry} for entry, reason in entries]
        path = self.directory / REJECTED_FILE
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                _write_all(fd, _encode_lines(records))
                os.fsync(fd)
            finally:
                os.close(fd)
        for entry, reason in entries:
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            logger.error(
                "Rejected journal entry %s and moved it to %s: %s", entry_id, path, reason
            )

    def purge_rejected(self, cutoff: datetime) -> int:
        """Drop rejected entries created before ``cutoff`` (naive UTC); return how many.

        Lines without a readable created_at, such as broken lines, are kept for an operator.
        The file is replaced atomically, so a crash leaves the old or the new version.
        """
        path = self.directory / REJECTED_FILE
        with self._lock:
            if not path.exists():
                return 0
            kept: list[bytes] = []
            dropped = 0
            for line in path.read_bytes().splitlines(keepends=True):
                if _created_before(line, cutoff):
                    dropped += 1
                else:
                    kept.append(line)
            if dropped:
                replacement = path.with_suffix(".jsonl.tmp")
                fd = os.open(replacement, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                try:
                    _write_all(fd, b"".join(kept))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(replacement, path)
        return dropped

    def close(self) -> None:
        self.seal()


def _created_before(line: bytes, cutoff: datetime) -> bool:
    try:
        created_at = json.loads(line)["entry"]["created_at"]
        return datetime.fromisoformat(created_at) < cutoff
    except (ValueError, KeyError, TypeError):
        return False
