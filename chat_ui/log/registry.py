"""Read-your-writes across logs in one process.

A read waits for the writers in this process that write to the same database. A read
through a second ConversationLog on the same URL therefore returns the turns that the
first one queued, as when the chat pipeline writes through one log and the API reads
through another.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

from chat_ui.errors import LogFlushTimeout
from chat_ui.log.writer import BackgroundWriter

logger = logging.getLogger(__name__)

_writers_lock = threading.Lock()
_writers: dict[str, weakref.WeakSet[BackgroundWriter]] = {}


def register_writer(storage_key: str, writer: BackgroundWriter) -> None:
    with _writers_lock:
        _writers.setdefault(storage_key, weakref.WeakSet()).add(writer)


def unregister_writer(storage_key: str, writer: BackgroundWriter) -> None:
    with _writers_lock:
        _writers.get(storage_key, weakref.WeakSet()).discard(writer)


def wait_for_writers(storage_key: str, timeout: float) -> None:
    """Wait up to ``timeout`` for this process's queued writes to ``storage_key``."""
    if timeout <= 0:
        return
    with _writers_lock:
        writers = list(_writers.get(storage_key, ()))
    deadline = time.monotonic() + timeout
    for writer in writers:
        try:
            writer.wait(max(0.0, deadline - time.monotonic()), replay=False)
        except LogFlushTimeout as error:
            logger.warning("Reading without waiting for pending writes: %s", error)
