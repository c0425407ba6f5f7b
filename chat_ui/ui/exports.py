"""The private folder where the app writes conversation exports before Gradio serves them.

Gradio serves a file returned by a handler only after copying it into its own cache folder
(GRADIO_TEMP_DIR), under a folder named by a hash of the content. Its file route serves
nothing else except the launch's allowed_paths, which the app leaves empty. This folder is
created with mode 0700 under the system temp folder, which Gradio accepts as a source of
returned files, so only the exports the app returns are ever served. Old exports are deleted
as new ones are written, and the folder goes when the app is garbage-collected or exits.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path

logger = logging.getLogger(__name__)

# Exports older than this are deleted. A download starts seconds after the file is written.
MAX_AGE_S = 600
# Characters kept from a conversation title in a file name.
MAX_STEM_CHARS = 60
_UNSAFE = re.compile(r"\W+")  # \w is Unicode-aware, so Hangul stays


class ExportFolder:
    """A temporary folder for export files, one subfolder per file."""

    def __init__(self, max_age_s: float = MAX_AGE_S) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="veraclaim-export-"))
        self.max_age_s = max_age_s
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def write(self, title: str, suffix: str, text: str) -> Path:
        """Write `text` to a new file named after `title`, and return its path."""
        self.prune()
        # A subfolder per file, so two users exporting conversations of the same title
        # never overwrite each other's file before Gradio copies it.
        folder = Path(tempfile.mkdtemp(dir=self.path))
        path = folder / f"{safe_stem(title)}{suffix}"
        path.write_text(text, encoding="utf-8")
        return path

    def prune(self) -> None:
        """Delete the exports older than max_age_s."""
        cutoff = time.time() - self.max_age_s
        for folder in self.path.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder)
            except OSError as exc:
                logger.warning("could not delete old export %s: %s", folder, exc)

    def close(self) -> None:
        """Delete the folder and every export in it."""
        self._finalizer()


def safe_stem(title: str) -> str:
    """Return a file name stem from a conversation title: letters (Hangul too), digits, "_" and "-"."""
    stem = _UNSAFE.sub("-", title).strip("-")[:MAX_STEM_CHARS].strip("-")
    return stem or "conversation"
