"""Run one build in its own process and stop it (SIGSTOP) when a chosen log message appears.

Usage: python build_driver.py SOURCE OUT MESSAGE_PREFIX

The test then kills the stopped process with SIGKILL, so the kill lands exactly at that
step of the build. An empty prefix never stops, and the build runs to its end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path


class StopAtMessage(logging.Handler):
    """Stops this process at the first log record whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        if self.prefix and record.getMessage().startswith(self.prefix):
            os.kill(os.getpid(), signal.SIGSTOP)


def main() -> None:
    source, out, prefix = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    package_logger = logging.getLogger("index_builder")
    package_logger.setLevel(logging.DEBUG)
    package_logger.addHandler(StopAtMessage(prefix))

    from index_builder.build import build_index

    build_index(source, out, progress=False)


if __name__ == "__main__":
    main()
