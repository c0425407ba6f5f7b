"""The background writer: one thread per open log that moves entries to the database.

``submit`` puts an entry on an in-memory queue and returns at once, so a chat turn never
waits for the database. The thread writes the queue in batches, one transaction each.

When a write fails because the database is unavailable, the batch goes to the journal,
and so does every later entry until a replay has emptied the journal again; entries thus
reach the database in the order the log accepted them. Replays run every
``replay_interval_s`` and on ``flush()``. A data error (a value the database rejects)
affects one entry only: the batch is retried entry by entry, and the entries that still
fail go to the journal's rejected.jsonl.

Entries in the queue are lost if the process is killed (SIGKILL, OOM) before the thread
has written or journaled them; ``flush()`` and ``close()`` bound that window.

Changes to stored rows (renaming or deleting a conversation) run on the same thread
through ``apply_change``, after every entry queued before them and after a replay of the
journal. A delete therefore removes the turns queued before it. The ids it deleted become
tombstones, and the writer drops later entries for them, so that a turn finishing after
the delete cannot bring the conversation back as an empty placeholder.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import peewee
from playhouse.pool import MaxConnectionsExceeded

from chat_ui.errors import LogFlushTimeout
from chat_ui.log.changes import Change, ChangeUnavailable, Tombstones
from chat_ui.log.entries import Entry, EntryRejected, apply_entries, redact_entry
from chat_ui.log.journal import Journal
from chat_ui.log.models import LogModels
from chat_ui.log.settings import LogSettings

logger = logging.getLogger(__name__)

# Errors that one entry causes and that no retry fixes.
ENTRY_ERRORS = (peewee.DataError, peewee.IntegrityError, EntryRejected)
# Errors that mean the database cannot be written now: down, unreachable, out of
# connections, missing a table, or refusing the user.
UNAVAILABLE_ERRORS = (peewee.PeeweeException, MaxConnectionsExceeded)


def _is_unavailable(error: BaseException) -> bool:
    """Return whether ``error`` means "retry later" rather than "this entry is bad".

    Anything else, such as a KeyError from a damaged journal line, counts as a bad entry,
    so that it goes to rejected.jsonl instead of being retried forever.
    """
    return isinstance(error, UNAVAILABLE_ERRORS) and not isinstance(error, ENTRY_ERRORS)


@dataclass
class _Marker:
    """A point in the queue: set once every entry submitted before it is handled."""

    replay: bool
    done: threading.Event = field(default_factory=threading.Event)
    backlog: int = 0


_STOP = object()

_T = TypeVar("_T")


class _DatabaseUnavailable(Exception):
    """Raised inside the writer when the entries from ``index`` on were not written."""

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(detail)
        self.index = index
        self.detail = detail


class BackgroundWriter:
    """Writes submitted entries to one database from a daemon thread."""

    def __init__(
        self,
        database: peewee.Database,
        models: LogModels,
        journal: Journal,
        settings: LogSettings,
        *,
        database_name: str,
        describe_error: Callable[[BaseException], str],
        redact: Callable[[str], str] | None,
    ) -> None:
        self._database = database
        self._models = models
        self._journal = journal
        self._settings = settings
        self._database_name = database_name
        self._describe_error = describe_error
        self._redact = redact
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.writer_queue_size)

        # Sealed segments left by an earlier run are replayed first.
        self._replay_needed = bool(journal.segment_paths())
        self._last_replay_attempt = float("-inf")
        self._failed_attempts = 0
        self._overflow_count = 0
        self._stopped = False
        self.tombstones = Tombstones()
        self._thread = threading.Thread(
            target=self._run, name=f"veraclaim-log-writer {database_name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    # Called from any thread.

    def submit(self, entry: Entry) -> None:
        """Queue ``entry``; when the queue is full, append it to the journal instead.

        After stop(), for a write that raced with close(), the entry goes to the journal
        too, and the next log opened on this journal directory replays it.
        """
        if self.tombstones.drops(entry):
            return
        if self._stopped:
            self._journal.append([self._prepared(entry)])
            self._journal.seal()
            return
        try:
            self._queue.put_nowait(entry)
            return
        except queue.Full:
            pass

        # The caller pays one fsync here instead of waiting for the thread.
        self._overflow_count += 1
        if self._overflow_count == 1 or self._overflow_count % 1000 == 0:
            logger.warning(
                "The write queue of %s is full (%d entries); journaling directly "
                "(overflow %d)",
                self._database_name,
                self._settings.writer_queue_size,
                self._overflow_count,
            )
        self._journal.append([self._prepared(entry)])

    def wait(self, timeout: float, *, replay: bool) -> int:
        """Wait until every entry submitted so far is in the database or the journal.

        With ``replay``, first try to move the journal into the database, then return the
        journal's backlog, which is 0 when everything is in the database. Without
        ``replay``, return 0. Raises LogFlushTimeout.
        """
        marker = _Marker(replay=replay)
        if not self._thread.is_alive():
            raise LogFlushTimeout(f"The writer of {self._database_name} is not running.")
        if not self._enqueue_and_wait(marker, marker.done, timeout):
            raise LogFlushTimeout(
                f"The writer of {self._database_name} did not finish its pending writes in "
                f"{timeout:g} s ({self._queue.qsize()} entries queued). The database may be "
                "slow; the entries stay queued and are written or journaled later."
            )
        return marker.backlog

    def _enqueue_and_wait(self, item: object, done: threading.Event, timeout: float) -> bool:
        """Queue ``item`` behind the pending entries; return whether ``done`` was set within ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(item, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def apply_change(
        self,
        action: Callable[[], _T],
        timeout: float,
        *,
        tombstones_of: Callable[[_T], Iterable[str]] | None = None,
    ) -> _T:
        """Run ``action`` on the writer thread in a transaction, after every entry submitted
        so far is in the database, and return its result.

        ``tombstones_of(result)`` names the ids whose later entries the writer drops. They
        are registered on the writer thread right after the commit, before it takes the
        next entry off the queue.

        Raises ChangeUnavailable when the database is down or the journal cannot be
        replayed first, LogFlushTimeout when the writer does not get to it in ``timeout``
        seconds, and whatever ``action`` raises. After a timeout the action may still run.
        """
        change: Change[_T] = Change(action, tombstones_of)
        if self._stopped or not self._thread.is_alive():
            raise LogFlushTimeout(f"The writer of {self._database_name} is not running.")
        if not self._enqueue_and_wait(change, change.done, timeout):
            raise LogFlushTimeout(
                f"The writer of {self._database_name} did not reach a change in {timeout:g} s "
                f"({self._queue.qsize()} entries queued before it). The database may be "
                "slow; try again later."
            )
        if change.error is not None:
            raise change.error
        return change.result  # type: ignore[return-value]

    def stop(self, timeout: float) -> bool:
        """Drain the queue to the database or the journal and stop; return whether it did."""
        if self._stopped:
            return True
        self._stopped = True
        if not self._thread.is_alive():
            self._journal.close()
            return True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass  # reported as a timeout below
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            logger.error(
                "The writer of %s did not stop within %g s; %d queued entries are lost "
                "unless it finishes before the process exits",
                self._database_name,
                timeout,
                self._queue.qsize(),
            )
            return False
        return True

    # The writer thread.

    def _run(self) -> None:
        logger.info("Started the log writer of %s", self._database_name)
        if self._replay_needed:
            self._guarded(self._replay, entries=0)

        while True:
            timeout = self._settings.replay_interval_s if self._journal_pending() else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._guarded(self._replay_if_due, entries=0)
                continue

            batch: list[Entry] = []
            while isinstance(item, dict):
                if not self.tombstones.drops(item):
                    batch.append(self._prepared(item))
                if len(batch) >= self._settings.writer_batch_size:
                    item = None
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None

            if batch:
                self._guarded(lambda: self._write(batch), entries=len(batch))
            if isinstance(item, _Marker):
                self._finish_marker(item)
            elif isinstance(item, Change):
                self._run_change(item)
            elif item is _STOP:
                break

        self._journal.close()
        logger.info("Stopped the log writer of %s", self._database_name)

    def _guarded(self, action: Callable[[], None], *, entries: int) -> None:
        """Run ``action`` and log any error, saying how many queued entries it may have lost.

        The thread must survive anything, or every later turn would wait in the queue. A
        failed replay loses nothing, because its segments stay in the journal.
        """
        try:
            action()
        except Exception:
            if entries:
                logger.exception(
                    "The log writer of %s failed; up to %d queued entries are lost",
                    self._database_name,
                    entries,
                )
            else:
                logger.exception(
                    "The log writer of %s failed during a replay; the journal keeps its "
                    "entries for the next one",
                    self._database_name,
                )

    def _finish_marker(self, marker: _Marker) -> None:
        try:
            if marker.replay:
                if self._journal_pending():
                    self._guarded(self._replay, entries=0)
                marker.backlog = self._journal.backlog()
        finally:
            marker.done.set()

    def _run_change(self, change: Change[Any]) -> None:
        try:
            # The journal's entries were accepted before the change, so they go first; a
            # change on top of them could be undone by their replay.
            if self._journal_pending():
                self._replay()
            if self._journal_pending():
                raise ChangeUnavailable(
                    f"{self._journal.backlog()} journaled entries must reach the database first"
                )
            try:
                with self._database.connection_context():
                    with self._database.atomic():
                        change.result = change.action()
            except Exception as error:
                if _is_unavailable(error):
                    raise ChangeUnavailable(self._describe_error(error)) from None
                raise
            if change.tombstones_of is not None:
                self.tombstones.add(change.tombstones_of(change.result))
        except BaseException as error:
            change.error = error
        finally:
            change.done.set()

    def _prepared(self, entry: Entry) -> Entry:
        # Redacted before the journal too, so personal data never reaches the disk.
        return redact_entry(entry, self._redact) if self._redact else entry

    def _journal_pending(self) -> bool:
        return self._replay_needed or self._journal.active_entries > 0

    def _write(self, batch: list[Entry]) -> None:
        if self._journal_pending():
            self._replay_if_due()
        if self._journal_pending():
            # Keeps the order: these entries come after the journaled ones.
            self._journal.append(batch)
            return

        try:
            self._apply(batch)
        except _DatabaseUnavailable as error:
            self._journal.append(batch[error.index :])
            self._replay_needed = True
            self._last_replay_attempt = time.monotonic()
            self._failed_attempts += 1
            logger.warning(
                "Could not write to %s (%s); writing to the journal in %s until a replay "
                "succeeds (retry every %g s)",
                self._database_name,
                error.detail,
                self._journal.directory,
                self._settings.replay_interval_s,
            )

    def _apply(self, entries: list[Entry]) -> None:
        """Write ``entries`` in one transaction, or one by one when an entry is rejected.

        Rejected entries go to rejected.jsonl. Raises _DatabaseUnavailable with the index
        of the first entry not written.
        """
        try:
            self._transaction(entries)
            return
        except Exception as error:
            if _is_unavailable(error):
                raise _DatabaseUnavailable(0, self._describe_error(error)) from None
            if len(entries) == 1:
                self._journal.reject([(entries[0], self._describe_error(error))])
                return

        rejected: list[tuple[Entry, str]] = []
        for index, entry in enumerate(entries):
            try:
                self._transaction([entry])
            except Exception as error:
                if _is_unavailable(error):
                    self._journal.reject(rejected)
                    raise _DatabaseUnavailable(index, self._describe_error(error)) from None
                rejected.append((entry, self._describe_error(error)))
        self._journal.reject(rejected)

    def _transaction(self, entries: list[Entry]) -> None:
        with self._database.connection_context():
            with self._database.atomic():
                apply_entries(self._models, entries)

    def _replay_if_due(self) -> None:
        elapsed = time.monotonic() - self._last_replay_attempt
        if elapsed >= self._settings.replay_interval_s:
            self._replay()

    def _replay(self) -> None:
        """Move every segment this process can lock from the journal to the database."""
        self._last_replay_attempt = time.monotonic()
        self._journal.seal()
        replayed = 0

        for path in self._journal.segment_paths():
            with self._journal.claim(path) as segment:
                if segment is None:
                    continue  # another process holds it
                contents = segment.read()
                size = self._settings.replay_batch_size
                try:
                    for start in range(0, len(contents.entries), size):
                        self._apply(contents.entries[start : start + size])
                except _DatabaseUnavailable as error:
                    self._replay_failed(error.detail)
                    return
                self._journal.reject(
                    [(raw, f"line {number}: {reason}") for number, raw, reason in contents.unreadable]
                )
                segment.delete()
                replayed += len(contents.entries)

        self._replay_needed = False
        if replayed or self._failed_attempts:
            logger.info(
                "Replayed %d journaled entries into %s after %d failed attempts",
                replayed,
                self._database_name,
                self._failed_attempts,
            )
        self._failed_attempts = 0

    def _replay_failed(self, detail: str) -> None:
        self._replay_needed = True
        self._failed_attempts += 1
        # The first failure is a warning; repeats every replay_interval_s would flood it.
        level = logging.WARNING if self._failed_attempts == 1 else logging.DEBUG
        logger.log(
            level,
            "Could not replay the journal of %s (%s); retrying in %g s (attempt %d)",
            self._database_name,
            detail,
            self._settings.replay_interval_s,
            self._failed_attempts,
        )
