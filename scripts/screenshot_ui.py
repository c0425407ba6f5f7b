"""Take docs/screenshot-ko.png: the Korean chat page with a cited answer, its thinking block
open, and the sources panel showing the cited PDF page with the passage marked.

The answer comes from a scripted OpenAI-compatible server inside this script, so the picture
depends on no model and shows the same answer on every run. Everything else is the real app:
the index (built from two sample PDFs unless --index is given), the pipeline, the conversation
log (in a temporary folder), Gradio, and Debian's Chromium driven by Playwright.

Usage:
    python scripts/screenshot_ui.py
    python scripts/screenshot_ui.py --index var/index --out /tmp/screenshot.png
"""

from __future__ import annotations

import os

# Before Gradio and huggingface_hub are imported: no analytics, no hub requests.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# The browser tests start Chromium with the same flags, from tests/browser_support.py, which
# no installed package contains.
sys.path.insert(0, str(REPO_ROOT))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

logger = logging.getLogger("screenshot_ui")

SAMPLES = REPO_ROOT / "data" / "samples"
SAMPLE_PDFS = ("patent_act.pdf", "guidelines_amendment.pdf")
DEFAULT_OUT = REPO_ROOT / "docs" / "screenshot-ko.png"
VIEWPORT = {"width": 1440, "height": 1300}
# The screenshot is committed, so it must stay small; 256 colours keep the UI's flat colours.
MAX_BYTES = 400_000
WAIT_MS = 120_000

QUESTION = "하나의 특허출원의 범위는 어떻게 정해지나요?"
# Qwen3 streams its reasoning inside <think> tags, as TGI passes it through.
SCRIPTED_DELTAS = [
    "<think>질문은 1발명 1출원 원칙에 관한 것이다. 출처 [1]의 특허법 제45조 제1항 본문이 원칙을, "
    "단서가 예외를 정한다. 두 부분을 나누어 답한다.</think>",
    "특허법 제45조 제1항에 따라 특허출원은 원칙적으로 **하나의 발명마다 하나의 특허출원**으로 합니다 [1]. ",
    "다만, 하나의 총괄적 발명의 개념을 형성하는 일 군(群)의 발명은 하나의 특허출원으로 할 수 있습니다 [1].",
]


class ScriptedModel(ThreadingHTTPServer):
    """An OpenAI-compatible chat server on 127.0.0.1 that streams SCRIPTED_DELTAS to every request."""

    daemon_threads = True
    model_id = "scripted-qwen3"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


class _ScriptedHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("scripted model: " + format, *args)

    def do_GET(self) -> None:
        # No /info: the app then answers without fitting prompts to token limits.
        self.send_error(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for delta in SCRIPTED_DELTAS:
            self._event(delta, None)
        self._event("", "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, content: str, finish_reason: str | None) -> None:
        chunk = {
            "id": "scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ScriptedModel.model_id,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
            ],
        }
        self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        self.wfile.flush()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build_sample_index(workdir: Path) -> Path:
    from index_builder.build import build_index

    source = workdir / "source"
    source.mkdir()
    for name in SAMPLE_PDFS:
        shutil.copy(SAMPLES / name, source / name)
    index = workdir / "index"
    logger.info("building an index of %s (about a minute)", ", ".join(SAMPLE_PDFS))
    build_index(str(source), index, progress=False)
    return index


def _capture(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="ko-KR", viewport=VIEWPORT).new_page()

            # 1. Ask, and wait for the finished answer with its sources.
            page.goto(url, wait_until="load")
            page.wait_for_selector("#question textarea", timeout=WAIT_MS)
            page.wait_for_function("document.querySelector('#language input:checked') !== null", timeout=WAIT_MS)
            page.locator("#question textarea").fill(QUESTION)
            page.locator("#send").click()
            page.locator("#chat").get_by_text("일 군(群)의 발명은").wait_for(timeout=WAIT_MS)
            page.locator("#sources-picker label").first.wait_for(timeout=WAIT_MS)

            # 2. Open the thinking block, which closes once the answer starts.
            page.locator("#chat").get_by_text("생각 과정").first.click()
            page.locator("#chat").get_by_text("1발명 1출원 원칙").wait_for(timeout=WAIT_MS)

            # 3. Open citation [1] and wait until its page image has loaded.
            page.locator("#sources-picker label").first.click()
            page.wait_for_function(
                "(() => { const i = document.querySelector('#source-page img');"
                " return i !== null && i.complete && i.naturalWidth > 0; })()",
                timeout=WAIT_MS,
            )
            page.mouse.move(0, 0)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def _shrink(path: Path) -> int:
    """Reduce the PNG to 256 colours; return its size in bytes."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    reduced.save(path, optimize=True)
    return path.stat().st_size


def main(
    index: Annotated[Path | None, typer.Option(help="Index folder; default: build one from two sample PDFs.")] = None,
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = DEFAULT_OUT,
) -> None:
    """Start the app on a free 127.0.0.1 port with a scripted model, and screenshot the Korean page."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not CHROMIUM.exists():
        raise typer.BadParameter(f"{CHROMIUM} is missing: install Debian's chromium package")

    from chat_ui.app import build_app
    from chat_ui.server import launch
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings

    model = ScriptedModel()
    threading.Thread(target=model.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="veraclaim-screenshot-") as workdir:
        settings = ChatSettings(
            index_dir=index or _build_sample_index(Path(workdir)),
            log_database_url=f"sqlite:///{Path(workdir) / 'log.sqlite3'}",
            port=_free_port(),
            thinking=True,
            query_rewrite="rules",
        )
        pipeline = build_pipeline(settings, ModelEndpoint(model.base_url, model.model_id, timeout_s=60))
        demo = build_app(pipeline, settings)
        launch(demo, settings, prevent_thread_lock=True)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            _capture(f"http://127.0.0.1:{settings.port}/", out)
        finally:
            demo.close()
            pipeline.log.close()
            model.shutdown()

    size = _shrink(out)
    logger.info("wrote %s (%d KB)", out, size // 1000)
    if size > MAX_BYTES:
        logger.warning(
            "%s is %d KB, more than the %d KB a committed screenshot should take", out, size // 1000, MAX_BYTES // 1000
        )


if __name__ == "__main__":
    typer.run(main)
