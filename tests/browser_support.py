"""Debian's Chromium and its flags, shared by the browser tests and scripts/screenshot_ui.py.

The flags run it headless and stop its background network calls. The tests import this
module as ``tests.browser_support``. The screenshot script puts the repository root on
sys.path first, because the tests are not an installed package.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
