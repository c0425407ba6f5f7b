"""Stop an answer at once, even while the model sends nothing.

Gradio can close an answer's generator only between two updates, so with a stalled model
closing it alone would take effect, and log the turn as "interrupted", only at the next
token. `StoppableEvents` reads the model's stream on a thread of its own and hands
the events over a queue, so the pipeline can check a stop request between events as well
as while it waits for one. `StopRequests` connects the stop button's handler to the answer
that the same browser session is streaming.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

logger = logging.getLogger(__name__)

# Seconds between two checks for a stop request while no event arrives. The user waits
# at most this long after pressing stop.
POLL_S = 0.2


class StopRequested(Exception):
    """The user asked to stop the answer while it was streaming."""


class StoppableEvents:
    """The events of one model stream, read on a background thread, that stop on request.

    `open_stream` returns the client's stream context (serving.client.ChatStream). After a
    complete iteration, `result` contains the stream's result. Iteration raises StopRequested
    once `stop` is set, and re-raises what the stream raised. `close()` makes the reader
    thread close the stream at its next event.
    """

    def __init__(
        self,
        open_stream: Callable[[], AbstractContextManager[Any]],
        stop: threading.Event,
        poll_s: float = POLL_S,
    ) -> None:
        self.result: Any = None
        self._stop = stop
        self._closed = threading.Event()
        self._poll_s = poll_s
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        # A daemon thread: a stalled model must not keep the process alive at exit.
        self._reader = threading.Thread(target=self._read, args=(open_stream,), name="model-stream", daemon=True)
        self._reader.start()

    def _read(self, open_stream: Callable[[], AbstractContextManager[Any]]) -> None:
        try:
            with open_stream() as events:
                for event in events:
                    if self._closed.is_set() or self._stop.is_set():
                        # Leaving the with block closes the connection to the model server.
                        logger.debug("closed the model stream after a stop request")
                        return
                    self._events.put(("event", event))
                self._events.put(("done", events.result))
        except BaseException as error:  # handed to the consumer, which raises it
            self._events.put(("error", error))

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                kind, value = self._events.get(timeout=self._poll_s)
            except queue.Empty:
                if self._stop.is_set():
                    raise StopRequested from None
                continue
            if self._stop.is_set():
                raise StopRequested
            if kind == "error":
                raise value
            if kind == "done":
                self.result = value
                return
            yield value

    def close(self) -> None:
        """Let the reader thread close the stream; it does so when its next event arrives."""
        # NOTE: a model that stalls sends no event (keep-alive comments do not count), so
        # the reader thread and its connection stay until the next token or the client's
        # stall timeout. A generating model sends its next token within milliseconds.
        self._closed.set()


class StopRequests:
    """The stop signal of the answer that each browser session is streaming, by session key."""

    def __init__(self) -> None:
        self._signals: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, key: str | None) -> threading.Event:
        """Return a new stop signal for the answer that session `key` starts now."""
        signal = threading.Event()
        if key:
            with self._lock:
                self._signals[key] = signal
        return signal

    def stop(self, key: str | None) -> bool:
        """Signal the answer of session `key` to stop; return whether one was streaming."""
        if not key:
            return False
        with self._lock:
            signal = self._signals.pop(key, None)
        if signal is None:
            return False
        signal.set()
        return True

    def finish(self, key: str | None, signal: threading.Event) -> None:
        """Forget `signal` once its answer has ended, unless a newer answer replaced it."""
        if not key:
            return
        with self._lock:
            if self._signals.get(key) is signal:
                del self._signals[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._signals)
