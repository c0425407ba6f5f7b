"""The chat page in headless Chromium, against the fake TGI server and a real index and log.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by `make test`) with the
flags that stop its background network calls. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat_ui.app import build_app
from chat_ui.pipeline import AnswerPipeline
from chat_ui.server import launch
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.chat_ui.support import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
QUESTION = "특허출원은 언제 공개되나요?"
ANSWER_DELTAS = ["<think>제64조를 확인합니다.</think>", "출원일부터 1년 6개월이 지나면 ", "공개됩니다 [1]."]
ANSWER = "출원일부터 1년 6개월이 지나면 공개됩니다 [1]."
# Playwright waits, in milliseconds: the first page load starts Gradio's frontend and the
# embedding model, which takes long on a busy 2-core machine.
LOAD_MS = 90_000
ANSWER_MS = 60_000
# Seconds to wait for the background log writer; a deadline for a wait, not an assertion.
LOG_WAIT_S = 60


@dataclass(frozen=True)
class App:
    url: str
    settings: ChatSettings
    pipeline: AnswerPipeline


@contextmanager
def _serve(index_dir: Path, tmp_path: Path, fake_tgi, **overrides) -> Iterator[App]:
    """Serve the app; follow-ups are rewritten by rules, so each question takes one fake reply."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium")
    settings = ChatSettings(
        index_dir=index_dir,
        log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
        port=free_port(),
        max_tokens=64,
        **{"query_rewrite": "rules", **overrides},
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=60))
    demo = build_app(pipeline, settings)
    launch(demo, settings, prevent_thread_lock=True)
    try:
        yield App(f"http://127.0.0.1:{settings.port}/", settings, pipeline)
    finally:
        demo.close()
        pipeline.log.close()


@pytest.fixture
def app(small_index, tmp_path, fake_tgi) -> Iterator[App]:
    with _serve(small_index, tmp_path, fake_tgi) as served:
        yield served


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _context(browser, locale: str, outside: list[str]):
    context = browser.new_context(locale=locale, viewport={"width": 1440, "height": 1100})
    context.on(
        "request",
        lambda request: outside.append(request.url)
        if not request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
        else None,
    )
    return context


@pytest.fixture
def page(browser):
    """A page in a Korean browser; at teardown it must have requested no other host."""
    outside: list[str] = []
    context = _context(browser, "ko-KR", outside)
    yield context.new_page()
    context.close()
    assert outside == [], f"the page requested other hosts: {outside[:5]}"


def _open(page, url: str) -> None:
    page.goto(url, wait_until="load")
    page.wait_for_selector("#question textarea", timeout=LOAD_MS)
    # The page's load event sets the language and lists the conversations.
    page.wait_for_function("document.querySelector('#language input:checked') !== null", timeout=LOAD_MS)


def _ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#send").click()


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _logged_turns(pipeline: AnswerPipeline, user: str | None = None):
    pipeline.log.flush()
    return [turn for info in pipeline.log.conversations(user) for turn in pipeline.log.turns(info.conversation_id)]


def _wait_for_turns(pipeline: AnswerPipeline, count: int):
    """Return the logged turns once there are `count`: the page shows an answer before the log has it."""
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        turns = _logged_turns(pipeline)
        if len(turns) >= count:
            return turns
        time.sleep(0.2)
    pytest.fail(f"{len(_logged_turns(pipeline))} turns in the log after {LOG_WAIT_S} s, expected {count}")


def test_failed_answer_shows_korean_notice_and_retry_answers(app, page, fake_tgi):
    fake_tgi.queue(status=422, body={"error": "Input validation error", "error_type": "validation"})
    fake_tgi.queue(deltas=ANSWER_DELTAS)

    _open(page, app.url)
    assert page.locator("#send").inner_text() == "보내기"
    page.locator("#question textarea").fill(QUESTION)
    page.locator("#question textarea").press("Enter")
    page.get_by_text("답변 생성 중 오류가 발생했습니다").wait_for(timeout=ANSWER_MS)
    _screenshot(page, "chat-failure-ko.png")

    page.locator("#retry").click()
    page.locator("#chat").get_by_text(ANSWER).wait_for(timeout=ANSWER_MS)
    _screenshot(page, "chat-answer-ko.png")

    chat = page.locator("#chat").inner_text()
    assert "생각 과정" in chat
    assert "출처" in chat
    assert "patent_act.pdf" in chat
    assert "<think>" not in chat
    assert "답변 생성 중 오류가 발생했습니다" not in chat, "the retried answer replaces the failed one"
    assert sorted(turn.status for turn in _wait_for_turns(app.pipeline, 2)) == ["error", "ok"]


def test_english_browser_gets_english_interface(app, browser):
    outside: list[str] = []
    english = _context(browser, "en-US", outside).new_page()

    _open(english, app.url)

    assert english.locator("#send").inner_text() == "Send"
    assert english.locator("#retry").inner_text() == "Retry"
    assert english.locator("#language input:checked").input_value() == "en"
    assert outside == []


def test_korean_question_cites_and_opens_page_image(app, page, fake_tgi):
    fake_tgi.queue(deltas=ANSWER_DELTAS)

    _open(page, app.url)
    _ask(page, QUESTION)
    page.locator("#chat").get_by_text(ANSWER).wait_for(timeout=ANSWER_MS)
    sources = page.locator("#sources-list")
    sources.get_by_text("patent_act.pdf").first.wait_for(timeout=ANSWER_MS)

    # The list names the searched query and each citation's file and page.
    assert "검색어" in sources.inner_text()
    assert "[1]" in sources.inner_text()

    page.locator("#sources-picker label").first.click()
    image = page.locator("#source-page img")
    image.wait_for(timeout=ANSWER_MS)
    page.wait_for_function(
        "document.querySelector('#source-page img').complete && document.querySelector('#source-page img').naturalWidth > 0",
        timeout=ANSWER_MS,
    )
    note = page.locator("#source-note").inner_text()
    _screenshot(page, "sources-page-ko.png")

    assert "노란색으로 표시한 부분이 인용된 구절입니다" in note
    assert page.evaluate("document.querySelector('#source-page img').naturalWidth") >= 600
    assert page.locator("#source-text").inner_text().strip()


def test_thumbs_up_with_comment_is_logged(app, page, fake_tgi):
    fake_tgi.queue(deltas=ANSWER_DELTAS)

    _open(page, app.url)
    _ask(page, QUESTION)
    page.locator("#chat").get_by_text(ANSWER).wait_for(timeout=ANSWER_MS)
    # The answer's last words show before its turn id reaches the session; the turn is
    # logged at that same final step, so rating waits for it.
    [turn] = _wait_for_turns(app.pipeline, 1)
    page.locator("#feedback-comment textarea").fill("조문 인용이 정확합니다")
    page.locator("#feedback-up").click()
    page.locator("#feedback-status").get_by_text("도움이 됨").wait_for(timeout=ANSWER_MS)

    # The Chatbot's own thumbs rate the answer they sit on; Gradio labels them in Korean here.
    page.locator("#chat button[aria-label='싫어요']").first.click()
    page.locator("#feedback-status").get_by_text("도움이 안 됨").wait_for(timeout=ANSWER_MS)

    app.pipeline.log.flush()
    up, down = app.pipeline.log.feedback(turn.turn_id)
    assert up.rating == 1
    assert up.comment == "조문 인용이 정확합니다"
    assert down.rating == -1
    assert down.comment == ""
    assert page.locator("#feedback-comment textarea").input_value() == ""


def test_language_switch_relabels_page_and_server_text(app, page, fake_tgi):
    fake_tgi.queue(deltas=ANSWER_DELTAS)

    _open(page, app.url)
    _ask(page, QUESTION)
    page.locator("#chat").get_by_text(ANSWER).wait_for(timeout=ANSWER_MS)
    page.locator("#language label", has_text="English").click()
    page.locator("#send", has_text="Send").wait_for(timeout=ANSWER_MS)
    _screenshot(page, "language-en.png")

    assert page.locator("#retry").inner_text() == "Retry"
    assert page.locator("#new-conversation").inner_text() == "New conversation"
    chat = page.locator("#chat").inner_text()
    assert "Thinking" in chat, "the thinking block's title is server text"
    assert "p. " in chat
    assert "쪽" not in chat

    # The choice is stored in the browser and applied on the next visit.
    _open(page, app.url)
    page.locator("#send", has_text="Send").wait_for(timeout=ANSWER_MS)
    assert page.locator("#language input:checked").input_value() == "en"


def test_past_conversation_resumes_and_continues(app, page, fake_tgi):
    fake_tgi.queue(deltas=["출원공개는 제64조가 정합니다 [1]."])
    first = list(app.pipeline.stream("출원공개는 어느 조문에 있나요?"))[-1]
    fake_tgi.queue(deltas=["조기공개를 신청하면 더 일찍 공개됩니다 [1]."])
    second = list(app.pipeline.stream("더 일찍 공개할 수 있나요?", conversation_id=first.conversation_id))[-1]
    assert second.conversation_id == first.conversation_id
    app.pipeline.log.flush()

    _open(page, app.url)
    page.locator("#history-list label").first.click()
    page.locator("#history-open").click()
    chat = page.locator("#chat")
    chat.get_by_text("조기공개를 신청하면 더 일찍 공개됩니다").wait_for(timeout=ANSWER_MS)
    _screenshot(page, "history-resumed.png")

    assert "출원공개는 어느 조문에 있나요?" in chat.inner_text()
    assert "출원공개는 제64조가 정합니다" in chat.inner_text()

    fake_tgi.queue(deltas=["네, 조기공개 신청서를 내면 됩니다 [1]."])
    _ask(page, "신청은 어떻게 하나요?")
    chat.get_by_text("조기공개 신청서를 내면 됩니다").wait_for(timeout=ANSWER_MS)
    turns = _wait_for_turns(app.pipeline, 3)
    assert {turn.conversation_id for turn in turns} == {first.conversation_id}
    assert "신청은 어떻게 하나요?" in [turn.question for turn in turns]


def test_history_renames_exports_and_deletes(app, page, fake_tgi):
    # Two conversations, so that choosing the other one can withdraw a delete confirmation.
    # The list shows the most recent first: the one about 제64조.
    fake_tgi.queue(deltas=["존속기간은 설정등록일부터 20년입니다 [1]."])
    fake_tgi.queue(deltas=["출원공개는 제64조가 정합니다 [1]."])
    other = list(app.pipeline.stream("특허권의 존속기간은?"))[-1]
    list(app.pipeline.stream("출원공개는 어느 조문에 있나요?"))[-1]
    app.pipeline.log.flush()

    _open(page, app.url)
    page.locator("#history-list label").first.click()
    # Choosing a conversation fills the title field from the server; typing before that
    # reply arrives would be overwritten by it on a slow machine.
    title = page.locator("#history-title input")
    expect(title).to_have_value("출원공개는 어느 조문에 있나요?", timeout=ANSWER_MS)
    title.fill("제64조 검토")
    page.locator("#history-rename").click()
    page.locator("#history-list").get_by_text("제64조 검토").wait_for(timeout=ANSWER_MS)

    page.locator("#history-list label").first.click()
    page.locator("#history-export-markdown").click()
    link = page.locator("#history-export-file a").first
    link.wait_for(timeout=ANSWER_MS)
    with page.expect_download() as download:
        link.click()
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert "제64조 검토" in markdown
    assert "출원공개는 어느 조문에 있나요?" in markdown
    assert "patent" in markdown

    # Delete shows a confirmation step first, and Cancel keeps the conversation.
    status = page.locator("#history-status")
    confirm = page.locator("#history-confirm-delete")
    cancel = page.locator("#history-cancel-delete")
    expect(confirm).to_be_hidden()
    page.locator("#history-delete").click()
    expect(status).to_contain_text("“제64조 검토” 대화를 삭제할까요?", timeout=ANSWER_MS)
    expect(confirm).to_be_visible()
    expect(cancel).to_be_visible()
    cancel.click()
    expect(status).to_contain_text("삭제를 취소했습니다", timeout=ANSWER_MS)
    expect(confirm).to_be_hidden()

    # Choosing another conversation withdraws the question. Its title arriving shows that
    # the server handled the choice.
    page.locator("#history-delete").click()
    expect(confirm).to_be_visible(timeout=ANSWER_MS)
    page.locator("#history-list label").nth(1).click()
    expect(title).to_have_value("특허권의 존속기간은?", timeout=ANSWER_MS)
    expect(confirm).to_be_hidden()
    expect(status).not_to_contain_text("삭제할까요")

    # Refreshing the list withdraws it too, prompt and buttons together.
    page.locator("#history-delete").click()
    expect(confirm).to_be_visible(timeout=ANSWER_MS)
    page.locator("#history-refresh").click()
    expect(confirm).to_be_hidden(timeout=ANSWER_MS)
    expect(status).not_to_contain_text("삭제할까요")
    app.pipeline.log.flush()
    assert len(app.pipeline.log.conversations(None)) == 2

    page.locator("#history-list label").first.click()
    expect(title).to_have_value("제64조 검토", timeout=ANSWER_MS)
    page.locator("#history-delete").click()
    confirm.click(timeout=ANSWER_MS)
    status.get_by_text("대화를 삭제했습니다").wait_for(timeout=ANSWER_MS)
    expect(confirm).to_be_hidden()
    app.pipeline.log.flush()
    assert [c.conversation_id for c in app.pipeline.log.conversations(None)] == [other.conversation_id]
    assert "제64조 검토" not in page.locator("#history-list").inner_text()


def test_stop_interrupts_streaming_answer(app, page, fake_tgi):
    # The answer's start arrives, then the model stalls, and the rest comes after the stall.
    # The stop button ends the answer during the stall (test_stopping.py checks the timing
    # at the pipeline), so the rest never shows.
    rest = json.dumps(fake_tgi.chunk("그 뒤 나머지 답변"), ensure_ascii=False)
    fake_tgi.queue(deltas=["특허출원은 출원일부터"], stall_s=8, keepalive_s=1, raw_events=[f"data: {rest}\n\n"])

    _open(page, app.url)
    _ask(page, QUESTION)
    page.locator("#chat").get_by_text("특허출원은 출원일부터").wait_for(timeout=ANSWER_MS)
    page.locator("#stop").click()
    page.locator("#chat").get_by_text("답변 생성을 중지했습니다").wait_for(timeout=ANSWER_MS)
    _screenshot(page, "stopped.png")

    [turn] = _wait_for_turns(app.pipeline, 1)
    assert turn.status == "interrupted"
    assert turn.answer.startswith("특허출원은 출원일부터")
    assert "나머지 답변" not in page.locator("#chat").inner_text()


def test_closed_tab_interrupts_stalled_answer(app, browser, fake_tgi):
    # The model stalls after the answer's start, then would send the rest and finish. A
    # tab closed during the stall must end the turn as "interrupted", not wait and log "ok".
    rest = json.dumps(fake_tgi.chunk("그 뒤 나머지 답변"), ensure_ascii=False)
    fake_tgi.queue(deltas=["특허출원은 출원일부터"], stall_s=15, keepalive_s=1, raw_events=[f"data: {rest}\n\n"])
    outside: list[str] = []
    context = _context(browser, "ko-KR", outside)
    tab = context.new_page()

    _open(tab, app.url)
    _ask(tab, QUESTION)
    tab.locator("#chat").get_by_text("특허출원은 출원일부터").wait_for(timeout=ANSWER_MS)
    tab.close()

    [turn] = _wait_for_turns(app.pipeline, 1)
    context.close()
    assert turn.status == "interrupted"
    assert "나머지 답변" not in turn.answer
    assert outside == []


def test_waiting_user_sees_queue_position(small_index, tmp_path, fake_tgi, browser):
    # Two answers take both slots of the smallest concurrency limit; a third user waits.
    for _ in range(2):
        fake_tgi.queue(deltas=["잠시만요"], stall_s=10, keepalive_s=1)
    fake_tgi.queue(deltas=ANSWER_DELTAS)
    outside: list[str] = []
    context = _context(browser, "ko-KR", outside)

    with _serve(small_index, tmp_path, fake_tgi, concurrency_limit=2) as served:
        pages = [context.new_page() for _ in range(3)]
        for busy in pages[:2]:
            _open(busy, served.url)
            _ask(busy, QUESTION)
            busy.locator("#chat").get_by_text("잠시만요").wait_for(timeout=ANSWER_MS)
        waiting = pages[2]
        _open(waiting, served.url)
        _ask(waiting, QUESTION)

        waiting.locator("#chat").get_by_text("queue: 1/").wait_for(timeout=ANSWER_MS)
        _screenshot(waiting, "queue-position.png")
        waiting.locator("#chat").get_by_text(ANSWER).wait_for(timeout=ANSWER_MS)
    context.close()
    assert outside == []


MARKUP = "<img src=x onerror=alert(1)> <style>body{display:none}</style>"


@pytest.fixture(scope="module")
def markup_index(tmp_path_factory) -> Path:
    """An index of one PDF whose text is HTML markup, as a hostile or careless document holds."""
    from fpdf import FPDF

    from index_builder.build import build_index

    source = tmp_path_factory.mktemp("markup-source")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for _ in range(3):
        pdf.multi_cell(0, 6, f"Patent claim markup test. {MARKUP} The claim ends here.", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(source / "markup.pdf"))
    out = tmp_path_factory.mktemp("markup-index") / "index"
    build_index(str(source), out, progress=False)
    return out


def test_markup_in_documents_and_answers_shows_as_text(markup_index, tmp_path, fake_tgi, page):
    fake_tgi.queue(deltas=[f"The document contains {MARKUP} [1]. ![x](http://127.0.0.2/leak.png)"])
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    with _serve(markup_index, tmp_path, fake_tgi) as served:
        _open(page, served.url)
        display = page.evaluate("getComputedStyle(document.body).display")
        _ask(page, "What does the markup test say?")
        page.locator("#chat").get_by_text("The document contains").wait_for(timeout=ANSWER_MS)
        page.locator("#sources-list").get_by_text("markup.pdf").first.wait_for(timeout=ANSWER_MS)
        page.locator("#sources-picker label").first.click()
        page.locator("#source-text").get_by_text("onerror", exact=False).first.wait_for(timeout=ANSWER_MS)
        _screenshot(page, "markup-as-text.png")

        chat = page.locator("#chat").inner_text()
        listed = page.locator("#sources-list").inner_text()
        page_text = page.locator("#source-text").inner_text()
        injected = page.evaluate(
            """() => ({
                display: getComputedStyle(document.body).display,
                images: [...document.querySelectorAll('img')].filter(i => i.getAttribute('src') === 'x').length,
                styles: [...document.querySelectorAll('style')].filter(s => s.textContent.includes('display:none')).length,
                leaks: [...document.querySelectorAll('img')].filter(i => (i.src || '').includes('leak.png')).length,
            })"""
        )

    assert "<img src=x onerror=alert(1)>" in chat
    assert "<style>body{display:none}</style>" in chat
    assert "<img src=x onerror=alert(1)>" in listed
    assert "onerror=alert(1)" in page_text
    assert dialogs == []
    assert display != "none"
    assert injected == {"display": display, "images": 0, "styles": 0, "leaks": 0}
