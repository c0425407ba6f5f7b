"""PDF reading in a separate process, with a time and a memory limit per document.

One page can make pdfium work for minutes or take gigabytes (millions of tiny path
segments, say). The worker reads one document at a time under RLIMIT_AS; the parent waits
at most the time limit, then kills it with SIGKILL and starts a new one for the next
document. Either way the document is reported as skipped and the build goes on.

The worker is a fresh interpreter (``python -m index_builder.worker``), not a fork,
because the parent has torch's threads running and fork would copy them in an undefined
state. Unlike multiprocessing's "spawn", it does not re-import the parent's ``__main__``.
It imports only pypdfium2 and the cleaning code, so it starts in well under a second and
its memory stays small. Requests and replies travel over a socket pair as pickles
(multiprocessing.connection), between two processes of this same program.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from index_builder.errors import DocumentLimitError, UnreadablePdfError
from index_builder.extract import DocumentText, read_document

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
# Seconds to wait for a worker to exit after close().
_EXIT_TIMEOUT_SECONDS = 5.0
# Seconds a new worker may take to import its modules, which does not count against a
# document's time limit. Imports take well under a second on an idle machine.
_START_TIMEOUT_SECONDS = 120.0


def _serve(connection: Connection, memory_mb: int) -> None:
    """Read documents named on ``connection`` until it closes. Runs in the worker process."""
    # The limit counts from the memory that the imports already took.
    with open("/proc/self/statm", encoding="ascii") as statm:
        current = int(statm.read().split()[0]) * resource.getpagesize()
    limit = current + memory_mb * _MIB
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    connection.send(("ready", None))

    while True:
        try:
            path = connection.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", read_document(Path(path)))
        except UnreadablePdfError as error:
            reply = ("unreadable", (type(error).__name__, error.reason, error.pages))
        except MemoryError:
            reply = ("unreadable", ("DocumentLimitError", f"exceeded the memory limit of {memory_mb} MiB", []))
        except OSError as error:
            reply = ("unreadable", ("OSError", f"cannot read file: {error}", []))
        connection.send(reply)


class ExtractionWorker:
    """A worker process that reads one PDF at a time, restarted after a timeout or a crash."""

    def __init__(self, *, timeout_seconds: float, memory_mb: int) -> None:
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self.restarts = 0

    def read(self, path: Path) -> DocumentText:
        """Return the cleaned pages of the PDF at ``path``, read in the worker.

        Raises the UnreadablePdfError subclass that read_document raised, or
        DocumentLimitError when the worker timed out, ran out of memory or crashed.
        """
        connection = self._ensure_started()
        started = time.monotonic()
        connection.send(str(path))

        # 1. The reply, or the time limit.
        if not connection.poll(self.timeout_seconds):
            self._kill()
            raise DocumentLimitError(
                path, f"reading took longer than the limit of {self.timeout_seconds:g} s and was stopped"
            )
        try:
            status, payload = connection.recv()
        except (EOFError, ConnectionResetError):
            exit_code = self._kill()
            raise DocumentLimitError(
                path,
                f"the reading process crashed (exit code {exit_code}), possibly at the memory limit "
                f"of {self.memory_mb} MiB",
            ) from None

        # 2. The result, or the worker's error rebuilt under its own type.
        logger.debug("Read %s in the worker in %.2f s", path, time.monotonic() - started)
        if status == "ok":
            return payload
        error_name, reason, pages = payload
        raise _error_types().get(error_name, UnreadablePdfError)(path, reason, pages)

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._connection is not None:
            return self._connection
        parent, child = socket.socketpair()
        with child:
            process = subprocess.Popen(
                [sys.executable, "-m", "index_builder.worker", str(child.fileno()), str(self.memory_mb)],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        connection = Connection(parent.detach())
        self._process, self._connection = process, connection
        try:
            ready = connection.poll(_START_TIMEOUT_SECONDS) and connection.recv() == ("ready", None)
        except (EOFError, ConnectionResetError):
            ready = False
        if not ready:
            exit_code = self._kill()
            raise RuntimeError(
                f"the PDF reading worker did not start within {_START_TIMEOUT_SECONDS:g} s (exit code {exit_code}). "
                "Check that `python -m index_builder.worker` runs in this environment."
            )
        logger.debug("Started PDF reading worker %d", process.pid)
        return connection

    def _kill(self) -> int | None:
        """Kill the worker with SIGKILL, wait for it, and return its exit code."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is None:
            return None
        process.kill()
        exit_code = process.wait(_EXIT_TIMEOUT_SECONDS)
        self.restarts += 1
        logger.warning(
            "Stopped PDF reading worker %d (exit code %s); %d restart(s) so far", process.pid, exit_code, self.restarts
        )
        return exit_code

    def close(self) -> None:
        """Stop the worker: close its pipe so it exits, and kill it if it does not."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            try:
                process.wait(_EXIT_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_EXIT_TIMEOUT_SECONDS)

    def __enter__(self) -> ExtractionWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _error_types() -> dict[str, type[UnreadablePdfError]]:
    from index_builder import errors

    return {
        name: getattr(errors, name)
        for name in ("EncryptedPdfError", "CorruptPdfError", "NoTextLayerError", "GarbledTextError", "DocumentLimitError")
    }


if __name__ == "__main__":
    # The worker's entry point: the inherited socket's descriptor and the memory limit in MiB.
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
    os._exit(0)
