"""Chat messages from sessions, safe Markdown, and the small pure parts of the chat page."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest

from chat_ui.log import LoggedTurn
from chat_ui.pipeline import AnswerOptions, AnswerUpdate, Citation
from chat_ui.render import answer_markdown, answer_messages, escape_document_text, session_messages
from chat_ui.ui.exports import ExportFolder, safe_stem
from chat_ui.ui.session import ChatSession, ShownTurn, session_from_log, turn_from_update
from chat_ui.ui.settings import answer_options


def _citation(**overrides):
    values = dict(
        n=1,
        file_name="patent_act.pdf",
        page=4,
        snippet="제64조(출원공개)",
        score=0.71,
        chunk_id=7,
        source_uri="file:///x",
        text="제64조(출원공개) ① 특허청장은",
        chunk_no=3,
    )
    values.update(overrides)
    return Citation(**values)


def test_sources_follow_the_answer_with_file_and_page():
    update = AnswerUpdate("c1", "질문", "ko", answer="답변 [1]", citations=(_citation(),), status="ok")

    answer, sources = answer_messages(update)

    assert answer == {"role": "assistant", "content": "답변 [1]"}
    assert sources["content"].startswith("**출처**\n\n")
    assert "patent\\_act\\.pdf, 4쪽" in sources["content"]


def test_language_argument_overrides_question_language():
    update = AnswerUpdate("c1", "질문", "ko", answer="답변", reasoning="검토", citations=(_citation(),), status="ok")

    thinking, _, sources = answer_messages(update, "en")

    assert thinking["metadata"]["title"] == "Thinking"
    assert sources["content"].startswith("**Sources**")
    assert "p. 4" in sources["content"]


def test_markup_in_file_names_is_escaped():
    hostile = _citation(file_name="<img src=x onerror=alert(1)><style>body{display:none}</style>.pdf")
    update = AnswerUpdate("c1", "q", "en", citations=(hostile,), status="ok")

    sources = answer_messages(update)[-1]["content"]

    assert "<img" not in sources
    assert "<style>" not in sources
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in sources


def test_document_markdown_is_escaped():
    escaped = escape_document_text("![x](http://127.0.0.1:9/p.png) [click](javascript:alert(1)) **bold**")

    assert "![x](" not in escaped
    assert "[click](" not in escaped
    assert "**bold**" not in escaped
    assert "\\!\\[x\\]\\(http" in escaped


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # HTML in prose shows as text.
        ("<img src=x onerror=alert(1)> 입니다", "&lt;img src=x onerror=alert(1)&gt; 입니다"),
        ("<style>body{display:none}</style>", "&lt;style&gt;body{display:none}&lt;/style&gt;"),
        # Markdown the model writes stays.
        ("**제64조** 참조 [1]\n\n- 1년 6개월", "**제64조** 참조 [1]\n\n- 1년 6개월"),
        # An image becomes a "!" and a link, so its URL is never fetched.
        ("![x](http://127.0.0.2/leak.png)", "!\\[x](http://127.0.0.2/leak.png)"),
        # Code keeps its characters: Markdown shows code literally.
        ("`a < b` 그리고 <b>", "`a < b` 그리고 &lt;b&gt;"),
        ("```\n<tag>\n```\n<b>", "```\n<tag>\n```\n&lt;b&gt;"),
        # A fence still open while the answer streams runs to the end.
        ("보기:\n```\nif a < b:", "보기:\n```\nif a < b:"),
        # A bare ampersand renders as itself after escaping.
        ("A & B", "A &amp; B"),
    ],
)
def test_answer_markdown_escapes_html_outside_code(answer, expected):
    assert answer_markdown(answer) == expected


def test_notice_is_appended_to_partial_answer():
    update = AnswerUpdate("c1", "q", "en", answer="Partial", status="error", notice="The model server cannot be reached.")

    assert answer_messages(update)[0]["content"] == "Partial\n\n*The model server cannot be reached.*"


def test_reasoning_is_a_collapsible_block_before_the_answer():
    thinking = AnswerUpdate("c1", "질문", "ko", answer="", reasoning="<b>검토</b> 중", status="streaming")
    answered = AnswerUpdate("c1", "질문", "ko", answer="답변", reasoning="검토 완료", status="ok")

    (block,) = answer_messages(thinking)
    first, second = answer_messages(answered)

    assert block["metadata"] == {"title": "생각 과정", "status": "pending"}
    assert block["content"] == "&lt;b&gt;검토&lt;/b&gt; 중"
    assert first["metadata"]["status"] == "done"
    assert second == {"role": "assistant", "content": "답변"}


def test_stream_starting_with_nothing_shows_no_empty_bubble():
    update = AnswerUpdate("c1", "질문", "ko", status="streaming")

    assert answer_messages(update) == []


# Sessions: what one tab shows, from the pipeline or from the log.


def _turn(question: str, **fields) -> ShownTurn:
    return ShownTurn(question=question, **{"answer": f"{question}의 답", "status": "ok", **fields})


def test_session_messages_map_each_message_to_its_turn():
    session = ChatSession(
        conversation_id="c1",
        turns=(
            _turn("Q1", reasoning="생각", citations=turn_from_update(
                AnswerUpdate("c1", "Q1", "ko", citations=(_citation(),))
            ).citations),
            _turn("Q2"),
        ),
    )

    messages, turn_of_message = session_messages(session, "ko")

    assert [m["role"] for m in messages] == ["user", "assistant", "assistant", "assistant", "user", "assistant"]
    assert turn_of_message == [0, 0, 0, 0, 1, 1]


def test_session_history_keeps_answered_turns_only():
    session = ChatSession(
        turns=(_turn("Q1", search_query="Q1 검색어"), _turn("Q2", status="error"), _turn("Q3", status="streaming"))
    )

    history = session.history()

    assert [(e.question, e.answer, e.search_query) for e in history] == [("Q1", "Q1의 답", "Q1 검색어")]


def test_logged_turn_statuses_get_a_note():
    session = ChatSession(turns=(_turn("Q1", answer="", status="no_answer"), _turn("Q2", answer="부분", status="interrupted")))

    messages, _ = session_messages(session, "ko")

    assert messages[1]["content"] == "질문과 관련된 문서를 찾지 못해 답변하지 않았습니다."
    assert messages[3]["content"] == "부분\n\n*답변 생성이 중지되었습니다.*"


def test_session_from_log_keeps_citations_and_turn_ids():
    logged = LoggedTurn(
        turn_id="t1",
        created_at=datetime(2025, 1, 31, tzinfo=timezone.utc),
        conversation_id="c1",
        question="출원공개는?",
        answer="제64조 [1]",
        model_id="m",
        model_base_url="http://127.0.0.1:9/v1",
        latency_ms=10,
        reasoning="생각",
        search_query="출원공개 시기",
        sources=[
            {"n": 2, "chunk_id": 9, "file_name": "b.pdf", "page": 3, "score": 0.5, "source_uri": "file:///b.pdf"},
            {"n": 1, "chunk_id": "8", "file_name": "a.pdf", "page": None, "score": 0.6, "source_uri": None},
        ],
    )

    session = session_from_log("c1", [logged])

    [turn] = session.turns
    assert session.conversation_id == "c1"
    assert turn.turn_id == "t1"
    assert turn.reasoning == "생각"
    assert turn.search_query == "출원공개 시기"
    assert [(c.n, c.chunk_id, c.page) for c in turn.citations] == [(1, 8, None), (2, 9, 3)]


def test_selected_turn_defaults_to_last():
    session = ChatSession(turns=(_turn("Q1"), _turn("Q2")))

    assert session.selected_turn.question == "Q2"
    assert ChatSession(turns=session.turns, selected=0).selected_turn.question == "Q1"
    assert ChatSession().selected_turn is None


# Per-request settings from the settings panel.


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("default", 5, 0.7, True), AnswerOptions(thinking=None, top_k=5, temperature=None)),  # server defaults
        (("on", 8.0, 0.3, False), AnswerOptions(thinking=True, top_k=8, temperature=0.3)),  # all set
        (("off", None, None, False), AnswerOptions(thinking=False, top_k=None, temperature=None)),  # cleared inputs
    ],
)
def test_answer_options_from_panel(values, expected):
    assert answer_options(*values) == expected


# Export files.


@pytest.mark.parametrize(
    ("title", "stem"),
    [
        ("출원공개 검토", "출원공개-검토"),  # spaces become dashes
        ("../../etc/passwd", "etc-passwd"),  # no path separators or dots survive
        ("   ", "conversation"),  # nothing left: a fixed name
        ("a" * 100, "a" * 60),  # shortened
    ],
)
def test_export_file_stem(title, stem):
    assert safe_stem(title) == stem


def test_export_folder_writes_separate_files_and_removes_them():
    exports = ExportFolder(max_age_s=600)
    first = exports.write("같은 제목", ".md", "첫째")
    kept = exports.write("같은 제목", ".md", "둘째")
    an_hour_ago = time.time() - 3600
    os.utime(first.parent, (an_hour_ago, an_hour_ago))
    second = exports.write("같은 제목", ".md", "셋째")

    assert second.read_text(encoding="utf-8") == "셋째"
    assert kept.read_text(encoding="utf-8") == "둘째", "two exports of one title never share a file"
    assert not first.exists(), "exports older than max_age_s are deleted when a new one is written"
    assert second.parent.parent == exports.path
    assert oct(exports.path.stat().st_mode & 0o777) == "0o700"

    exports.close()
    assert not exports.path.exists()
