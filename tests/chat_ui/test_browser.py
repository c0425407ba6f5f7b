"""The chat page in headless Chromium, against the fake TGI server and a real index and log.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by `make test`) with the
flags that stop its background network calls. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chat_ui.app import build_app
from chat_ui.server import launch
from chat_ui.log import ConversationLog
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings

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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
QUESTION = "특허출원은 언제 공개되나요?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_url(small_index, tmp_path, fake_tgi):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium")
    settings = ChatSettings(
        index_dir=small_index,
        log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
        port=_free_port(),
        max_tokens=64,
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    demo = build_app(pipeline, settings)
    launch(demo, settings, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{settings.port}/", settings
    finally:
        demo.close()
        pipeline.log.close()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 1000})
        outside: list[str] = []
        context.on(
            "request",
            lambda request: outside.append(request.url)
            if not request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else None,
        )
        yield context.new_page()
        browser.close()
        assert outside == [], f"the page requested other hosts: {outside[:5]}"


def test_failed_answer_shows_korean_notice_and_retry_answers(app_url, page, fake_tgi):
    url, settings = app_url
    fake_tgi.queue(status=422, body={"error": "Input validation error", "error_type": "validation"})
    fake_tgi.queue(deltas=["<think>제64조 확인</think>", "출원일부터 1년 6개월 후 공개됩니다 [1]."])
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(url, wait_until="load")
    page.wait_for_selector("#question textarea", timeout=60_000)
    assert page.locator("#send").inner_text() == "보내기"
    page.locator("#question textarea").fill(QUESTION)
    page.locator("#question textarea").press("Enter")
    page.get_by_text("답변 생성 중 오류가 발생했습니다").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "chat-failure-ko.png"), full_page=True)

    page.locator("#retry").click()
    page.get_by_text("출원일부터 1년 6개월 후 공개됩니다").wait_for(timeout=60_000)
    page.get_by_text("patent_act.pdf").first.wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "chat-answer-ko.png"), full_page=True)

    chat = page.locator("#chat").inner_text()
    assert "생각 과정" in chat
    assert "출처" in chat
    assert "<think>" not in chat
    assert "답변 생성 중 오류가 발생했습니다" not in chat, "the retried answer replaces the failed one"

    log = ConversationLog.open(settings.log_database_url)
    try:
        statuses = [turn.status for info in log.conversations(None) for turn in log.turns(info.conversation_id)]
    finally:
        log.close()
    assert sorted(statuses) == ["error", "ok"]


def test_english_browser_gets_english_interface(app_url, page):
    url, _ = app_url
    page.context.close()
    context = page.context.browser.new_context(locale="en-US")
    english = context.new_page()

    english.goto(url, wait_until="load")
    english.wait_for_selector("#question textarea", timeout=60_000)

    assert english.locator("#send").inner_text() == "Send"
    assert english.locator("#retry").inner_text() == "Retry"
