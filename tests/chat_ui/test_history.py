"""A user's conversation history on a real SQLite file and a real MariaDB server: per-user
isolation, rename, delete in order with the background writer, exports and feedback."""

from __future__ import annotations

import json
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from chat_ui.errors import (
    ChatUIError,
    ConversationNotFoundError,
    InvalidLogValueError,
    LogDatabaseError,
    TurnNotFoundError,
)
from chat_ui.history import (
    EXPORT_FORMAT,
    ConversationHistory,
    ConversationNotFound,
    InvalidTitle,
    InvisibleTitle,
    TurnNotFound,
    automatic_title,
    clean_title,
    code_span,
    escape_markdown,
)
from chat_ui.log import ConversationLog, LogSettings, TurnRecord
from chat_ui.log.changes import Tombstones
from chat_ui.ui.exports import ExportFolder
from chat_ui.ui.history import HistoryActions
from tests.chat_ui.support import connect_outside_log

OWNER = "examiner-7"
STRANGER = "examiner-8"


def cited_source(n: int, **overrides: Any) -> dict[str, Any]:
    source = {
        "n": n,
        "chunk_id": f"patent_act.pdf#p{n}-c0",
        "file_name": "patent_act.pdf",
        "page": 30 + n,
        "score": 0.75,
        "source_uri": "file:///data/samples/patent_act.pdf",
    }
    source.update(overrides)
    return source


def make_turn(conversation_id: str, **overrides: Any) -> TurnRecord:
    fields: dict[str, Any] = {
        "conversation_id": conversation_id,
        "question": "특허출원은 언제 공개되나요?",
        "answer": "출원일부터 1년 6개월이 지나면 공개됩니다 [1].",
        "sources": [cited_source(1)],
        "model_id": "Qwen/Qwen3-8B",
        "model_base_url": "http://127.0.0.1:8080/v1",
        "latency_ms": 1200,
        "search_query": "특허출원 공개 시기",
    }
    fields.update(overrides)
    return TurnRecord(**fields)


@pytest.fixture
def history(log: ConversationLog) -> ConversationHistory:
    return ConversationHistory(log)


def row_counts(url: str, conversation_id: str) -> dict[str, int]:
    """Count a conversation's rows in each table, read outside the log."""
    hex_id = uuid.UUID(conversation_id).hex
    connection, marker = connect_outside_log(url)
    queries = {
        "conversation": f"SELECT COUNT(*) FROM conversation WHERE id = {marker}",
        "turn": f"SELECT COUNT(*) FROM turn WHERE conversation_id = {marker}",
        "feedback": "SELECT COUNT(*) FROM feedback JOIN turn ON feedback.turn_id = turn.id "
        f"WHERE turn.conversation_id = {marker}",
    }
    try:
        cursor = connection.cursor()
        counts = {}
        for table, query in queries.items():
            cursor.execute(query, (hex_id,))
            counts[table] = cursor.fetchone()[0]
    finally:
        connection.close()
    return counts


# Isolation between users.


def test_list_shows_only_own_conversations(history: ConversationHistory) -> None:
    log = history.log
    first = log.start_conversation(user=OWNER, title="첫 대화")
    second = log.start_conversation(user=OWNER, title="둘째 대화")
    log.start_conversation(user=STRANGER, title="남의 대화")
    local = log.start_conversation(title="로그인 없이")
    log.record_turn(make_turn(first))

    assert [c.conversation_id for c in history.list(OWNER)] == [first, second]
    assert [c.conversation_id for c in history.list(None)] == [local]
    assert len(history.list(OWNER, limit=1)) == 1


def test_other_users_conversation_looks_missing(history: ConversationHistory) -> None:
    log = history.log
    theirs = log.start_conversation(user=STRANGER, title="남의 대화")
    turn_id = log.record_turn(make_turn(theirs))
    missing = str(uuid.uuid4())

    for conversation_id in (theirs, missing, "not-a-uuid"):
        for call in (
            lambda: history.get(OWNER, conversation_id),
            lambda: history.turns(OWNER, conversation_id),
            lambda: history.rename(OWNER, conversation_id, "가로챈 제목"),
            lambda: history.delete(OWNER, conversation_id),
            lambda: history.export_json(OWNER, conversation_id),
            lambda: history.export_markdown(OWNER, conversation_id),
        ):
            with pytest.raises(ConversationNotFound) as caught:
                call()
            assert isinstance(caught.value, ChatUIError)
            assert isinstance(caught.value, LookupError)
            # Same message for someone else's id and an unknown one, so ids can't be probed.
            assert str(caught.value).replace(conversation_id, "ID").startswith(
                f"No conversation with id 'ID' for user {OWNER!r}."
            )

    # Neither the local user (None) nor a stranger's namesake gets in either.
    with pytest.raises(ConversationNotFound):
        history.turns(None, theirs)
    assert history.get(STRANGER, theirs).title == "남의 대화"
    assert [t.turn_id for t in history.turns(STRANGER, theirs)] == [turn_id]
    assert log.get_conversation(theirs).title == "남의 대화"


def test_feedback_on_other_users_turn_refused(history: ConversationHistory) -> None:
    log = history.log
    turn_id = log.record_turn(make_turn(log.start_conversation(user=STRANGER)))

    for candidate in (turn_id, str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(TurnNotFound) as caught:
            history.feedback(OWNER, candidate, "down", "남의 답변에 평가")
        # Callers that catch either lookup error catch this one.
        assert isinstance(caught.value, ConversationNotFound)
        assert isinstance(caught.value, TurnNotFoundError)

    assert log.flush() == 0
    assert log.feedback(turn_id) == []


# Rename.


def test_rename_keeps_title_and_activity_order(log_url: str, settings: LogSettings) -> None:
    with ConversationLog.open(log_url, settings=settings) as log:
        history = ConversationHistory(log)
        older = log.start_conversation(user=OWNER, title="질문 앞부분")
        newer = log.start_conversation(user=OWNER, title="다른 질문")
        # Renamed while its start may still be queued: the writer orders the two.
        history.rename(OWNER, older, "  청구항 1 해석 😀 𠜎  ")
        before = history.get(OWNER, newer)

    with ConversationLog.open(log_url, settings=settings) as reopened:
        history = ConversationHistory(reopened)
        assert history.get(OWNER, older).title == "청구항 1 해석 😀 𠜎"
        # A rename is not activity: the list order stays by the last question.
        assert [c.conversation_id for c in history.list(OWNER)] == [newer, older]
        assert history.get(OWNER, newer).updated_at == before.updated_at


def test_rename_normalises_decomposed_hangul(history: ConversationHistory) -> None:
    conversation_id = history.log.start_conversation(user=OWNER)
    decomposed = unicodedata.normalize("NFD", "특허 청구범위")
    assert len(decomposed) > len("특허 청구범위")

    history.rename(OWNER, conversation_id, decomposed)

    assert history.get(OWNER, conversation_id).title == "특허 청구범위"


INVALID_TITLES = [
    ("", "empty"),  # nothing
    ("   \u3000 ", "empty"),  # only spaces, including the ideographic space
    ("가" * 256, "256 characters"),  # one over the VARCHAR(255) column
    ("첫 줄\n둘째 줄", "U\\+000A"),  # a line break
    ("탭\t제목", "U\\+0009"),  # a tab
    ("제목\u202e목제", "U\\+202E"),  # right-to-left override, which disguises text
    ("제목\u2028분리", "U\\+2028"),  # Unicode line separator
    ("반쪽 \ud800 문자", "U\\+D800"),  # lone surrogate, not storable as UTF-8
    (None, "must be text"),  # not a string
    ("\u200b", "no visible character"),  # only a zero-width space
    ("\u200b\ufeff", "U\\+200B U\\+FEFF"),  # zero-width space and byte order mark
    (" \u2060\u200d ", "no visible character"),  # word joiner and zero-width joiner in spaces
    ("\u00ad", "no visible character"),  # a lone soft hyphen
    ("\u3164", "U\\+3164"),  # the Hangul filler, a letter that shows as blank space
    ("\u2800 \uffa0", "no visible character"),  # blank braille and the half-width Hangul filler
]


@pytest.mark.parametrize(("title", "message"), INVALID_TITLES)
def test_invalid_title_rejected(
    title: Any, message: str, tmp_path: Path, settings: LogSettings
) -> None:
    with ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as log:
        history = ConversationHistory(log)
        conversation_id = log.start_conversation(user=OWNER, title="원래 제목")

        with pytest.raises(InvalidTitle, match=message) as caught:
            history.rename(OWNER, conversation_id, title)

        assert isinstance(caught.value, ValueError)
        assert log.get_conversation(conversation_id).title == "원래 제목"


def test_invisible_title_is_invalid_title() -> None:
    # The app and API callers that catch InvalidTitle also catch this case.
    assert issubclass(InvisibleTitle, InvalidTitle)


def test_title_with_format_character_and_text_accepted(history: ConversationHistory) -> None:
    conversation_id = history.log.start_conversation(user=OWNER)

    history.rename(OWNER, conversation_id, "\u200b청구항 1")

    assert history.get(OWNER, conversation_id).title == "\u200b청구항 1"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ko", "보이는 글자가 없습니다"),  # Korean status line
        ("en", "no visible character"),  # English status line
    ],
)
def test_panel_explains_invisible_title(history: ConversationHistory, language: str, expected: str) -> None:
    actions = HistoryActions(history, ExportFolder())
    conversation_id = history.log.start_conversation(user=OWNER, title="원래 제목")

    status = actions.rename(OWNER, conversation_id, "\u200b\ufeff", language)

    assert expected in status
    assert history.get(OWNER, conversation_id).title == "원래 제목"


def test_panel_asks_before_delete(history: ConversationHistory) -> None:
    actions = HistoryActions(history, ExportFolder())
    conversation_id = history.log.start_conversation(user=OWNER, title="지울 대화")

    ask, status = actions.ask_delete(OWNER, conversation_id, "ko")

    assert ask
    assert "“지울 대화” 대화를 삭제할까요?" in status
    assert history.get(OWNER, conversation_id).title == "지울 대화"


@pytest.mark.parametrize(
    ("title", "language", "expected"),
    [
        ("a\x00b", "en", "the character U+0000"),  # NUL
        ("제목\u202e목제", "ko", "문자 U+202E"),  # right-to-left override
    ],
)
def test_panel_names_rejected_character(history: ConversationHistory, title: str, language: str, expected: str) -> None:
    # The message names the character, not the general rule for titles.
    actions = HistoryActions(history, ExportFolder())
    conversation_id = history.log.start_conversation(user=OWNER, title="원래 제목")

    status = actions.rename(OWNER, conversation_id, title, language)

    assert expected in status
    assert history.get(OWNER, conversation_id).title == "원래 제목"


MARKUP_TITLE = "**bold** [x](javascript:alert(1)) <img src=x onerror=alert(1)> ![i](http://127.0.0.2/x.png)"


def test_panel_status_shows_markup_title_as_typed(history: ConversationHistory) -> None:
    # The status line is Markdown, so an unescaped title would render bold and load an image.
    actions = HistoryActions(history, ExportFolder())
    conversation_id = history.log.start_conversation(user=OWNER, title="원래 제목")

    renamed = actions.rename(OWNER, conversation_id, MARKUP_TITLE, "en")
    _, prompt = actions.ask_delete(OWNER, conversation_id, "en")

    for status in (renamed, prompt):
        html = MarkdownIt("commonmark").render(status)
        assert "<img" not in html
        assert "<a " not in html
        assert "<strong>" not in html
        assert "**bold**" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize(
    ("conversation", "expected"),
    [
        (None, "Choose a conversation"),  # nothing chosen
        ("other-user", "was not found"),  # another user's conversation
    ],
)
def test_panel_delete_without_own_conversation_asks_nothing(
    history: ConversationHistory, conversation: str | None, expected: str
) -> None:
    actions = HistoryActions(history, ExportFolder())
    conversation_id = None
    if conversation == "other-user":
        conversation_id = history.log.start_conversation(user=STRANGER, title="남의 대화")

    ask, status = actions.ask_delete(OWNER, conversation_id, "en")

    assert not ask
    assert expected in status


AUTOMATIC_TITLES = [
    ("청구항 1의 해석은?", "청구항 1의 해석은?"),  # plain Korean stays as typed
    ("출원\x00공개", "출원공개"),  # NUL removed
    ("첫 줄\n\n둘째\t줄", "첫 줄 둘째 줄"),  # line breaks and tabs become one space
    ("\u200b\ufeff특허\u200d 출원", "특허 출원"),  # format characters removed
    ("제목\u202e목제", "제목목제"),  # right-to-left override removed
    ("a\x1b[31mred\x7f", "a[31mred"),  # escape and delete removed
    ("  앞뒤   공백  ", "앞뒤 공백"),  # outer spaces go, inner runs collapse
    ("\u200b\x00", ""),  # nothing visible: the empty title
    ("\u3164\u3164 특허", "특허"),  # blank-looking Hangul fillers removed
    (unicodedata.normalize("NFD", "특허 청구범위"), "특허 청구범위"),  # decomposed Hangul joined (NFC)
    ("가" * 100, "가" * 80),  # cut to 80 characters
]


@pytest.mark.parametrize(("question", "title"), AUTOMATIC_TITLES)
def test_automatic_title(question: str, title: str) -> None:
    assert automatic_title(question) == title


def test_automatic_title_is_valid_title() -> None:
    title = automatic_title("\x01질문\u2028다음 \ufeff줄")

    assert clean_title(title) == title


def test_longest_title_accepted(history: ConversationHistory) -> None:
    conversation_id = history.log.start_conversation(user=OWNER)

    history.rename(OWNER, conversation_id, "𠜎" * 255)

    assert history.get(OWNER, conversation_id).title == "𠜎" * 255


# Delete.


def test_delete_removes_turns_and_feedback(history: ConversationHistory, log_url: str) -> None:
    log = history.log
    doomed = log.start_conversation(user=OWNER, title="지울 대화")
    kept = log.start_conversation(user=OWNER, title="남길 대화")
    turn_ids = [log.record_turn(make_turn(doomed, question=f"질문 {n}")) for n in range(3)]
    history.feedback(OWNER, turn_ids[0], "up", "좋아요")
    history.feedback(OWNER, turn_ids[1], -1)
    kept_turn = log.record_turn(make_turn(kept))
    assert log.flush() == 0
    assert row_counts(log_url, doomed) == {"conversation": 1, "turn": 3, "feedback": 2}

    history.delete(OWNER, doomed)

    assert row_counts(log_url, doomed) == {"conversation": 0, "turn": 0, "feedback": 0}
    assert [c.conversation_id for c in history.list(OWNER)] == [kept]
    with pytest.raises(TurnNotFoundError):
        log.get_turn(turn_ids[0])
    assert [t.turn_id for t in history.turns(OWNER, kept)] == [kept_turn]
    with pytest.raises(ConversationNotFound):
        history.delete(OWNER, doomed)


def test_delete_includes_turns_still_queued(history: ConversationHistory, log_url: str) -> None:
    log = history.log
    conversation_id = log.start_conversation(user=OWNER)
    # Queued, not flushed: the delete must come after them, not before.
    turn_ids = [log.record_turn(make_turn(conversation_id)) for _ in range(20)]
    log.record_feedback(turn_ids[-1], 1, user=OWNER)

    history.delete(OWNER, conversation_id)

    assert log.flush() == 0
    assert row_counts(log_url, conversation_id) == {"conversation": 0, "turn": 0, "feedback": 0}


def test_turn_finishing_after_delete_dropped(history: ConversationHistory, log_url: str) -> None:
    log = history.log
    conversation_id = log.start_conversation(user=OWNER)
    turn_id = log.record_turn(make_turn(conversation_id))
    assert log.flush() == 0

    history.delete(OWNER, conversation_id)
    # An answer that was still streaming during the delete is recorded afterwards.
    log.record_turn(make_turn(conversation_id, question="늦게 끝난 답변"))
    log.record_feedback(turn_id, -1, comment="늦은 평가", user=OWNER)

    assert log.flush() == 0
    # No placeholder conversation comes back, and nothing lands in rejected.jsonl.
    assert row_counts(log_url, conversation_id) == {"conversation": 0, "turn": 0, "feedback": 0}
    with pytest.raises(ConversationNotFoundError):
        log.get_conversation(conversation_id)
    assert not (Path(log.journal_directory) / "rejected.jsonl").exists()


def test_delete_waits_for_journaled_turns(tmp_path: Path, settings: LogSettings) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory}/log.sqlite3"
    with ConversationLog.open(url, settings=settings) as log:
        history = ConversationHistory(log)
        conversation_id = log.start_conversation(user=OWNER)
        assert log.flush() == 0

        # The database goes away (an unmounted volume); the next turn waits in the journal.
        directory.rename(tmp_path / "db-away")
        log.record_turn(make_turn(conversation_id))
        assert log.flush() == 1

        with pytest.raises(LogDatabaseError, match="Nothing was changed"):
            history.delete(OWNER, conversation_id)

        # Back again: the journaled turn reaches the database first, then goes with the rest.
        (tmp_path / "db-away").rename(directory)
        history.delete(OWNER, conversation_id)
        assert log.flush() == 0
        assert row_counts(url, conversation_id) == {"conversation": 0, "turn": 0, "feedback": 0}


def test_tombstones_forget_oldest_ids() -> None:
    tombstones = Tombstones(limit=2)
    tombstones.add(["a", "b"])
    tombstones.add(["c"])

    assert "a" not in tombstones
    assert tombstones.drops({"kind": "turn", "id": "x", "conversation_id": "b"})
    assert tombstones.drops({"kind": "feedback", "id": "y", "turn_id": "c"})
    assert not tombstones.drops({"kind": "turn", "id": "z", "conversation_id": "a"})


# Feedback.


@pytest.mark.parametrize(
    ("rating", "stored"),
    [
        ("up", 1),  # the UI's thumbs up
        ("down", -1),  # the UI's thumbs down
        (1, 1),  # the API's integer form
        (-1, -1),
    ],
)
def test_feedback_stored_as_signed_rating(
    rating: Any, stored: int, tmp_path: Path, settings: LogSettings
) -> None:
    with ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as log:
        history = ConversationHistory(log)
        turn_id = log.record_turn(make_turn(log.start_conversation(user=OWNER)))

        history.feedback(OWNER, turn_id, rating, None)

        assert log.flush() == 0
        [feedback] = log.feedback(turn_id)
        assert (feedback.rating, feedback.comment, feedback.user) == (stored, "", OWNER)


@pytest.mark.parametrize(
    "rating",
    [
        "like",  # not a known word
        0,  # a comment without a rating is not a thumbs click
        2,  # out of range
        True,  # bool is an int subclass, not a rating
        None,  # missing
        [1],  # unhashable
    ],
)
def test_invalid_rating_rejected(rating: Any, tmp_path: Path, settings: LogSettings) -> None:
    with ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as log:
        history = ConversationHistory(log)
        turn_id = log.record_turn(make_turn(log.start_conversation(user=OWNER)))

        with pytest.raises(InvalidLogValueError, match="rating must be"):
            history.feedback(OWNER, turn_id, rating)


def test_local_user_rates_own_turns(history: ConversationHistory) -> None:
    log = history.log
    turn_id = log.record_turn(make_turn(log.start_conversation()))

    history.feedback(None, turn_id, "up", "정확한 조문 인용")

    assert log.flush() == 0
    assert [(f.rating, f.comment, f.user) for f in log.feedback(turn_id)] == [
        (1, "정확한 조문 인용", None)
    ]


# Exports.

TRICKY_QUESTION = "1. 청구항 *제1항*의 <b>구성요소</b>는?\n# 둘째 줄 [링크](http://x) `코드` \\끝"
TRICKY_ANSWER = "## 요약\n청구항 1은 **세 가지** 구성요소입니다 [1][2].\n\n```\n닫히지 않은 코드"


def _conversation_with_turns(log: ConversationLog) -> tuple[str, list[str]]:
    conversation_id = log.start_conversation(user=OWNER, title="청구항 #1\n해석 *초안*")
    first = log.record_turn(
        make_turn(
            conversation_id,
            question=TRICKY_QUESTION,
            answer=TRICKY_ANSWER,
            sources=[
                cited_source(2, file_name="심사기준 `제2부`.pdf", page=None),
                cited_source(1, file_name="patent_act.pdf"),
            ],
            search_query="청구항 구성요소",
            reasoning="사용자는 구성요소를 묻는다.",
            input_tokens=812,
            output_tokens=64,
        )
    )
    second = log.record_turn(
        make_turn(conversation_id, question="후속 질문", answer="", status="interrupted", sources=[])
    )
    return conversation_id, [first, second]


def test_markdown_export_renders_as_written(history: ConversationHistory) -> None:
    conversation_id, _ = _conversation_with_turns(history.log)

    markdown = history.export_markdown(OWNER, conversation_id)
    parser = MarkdownIt("commonmark")
    tokens = parser.parse(markdown)
    html = parser.render(markdown)

    # One title and one section per turn at the top level; the answer's own "## 요약"
    # heading and unclosed code fence stay inside its block quote.
    top_headings = [t for t in tokens if t.type == "heading_open" and t.level == 0]
    assert [t.tag for t in top_headings] == ["h1", "h2", "h2"]
    assert "<h1>청구항 #1 해석 *초안*</h1>" in html
    assert "닫히지 않은 코드" in html
    assert html.count("<blockquote>") == 4

    # The question shows exactly as typed: no list, heading, emphasis, link or raw HTML.
    assert "1. 청구항 *제1항*의 &lt;b&gt;구성요소&lt;/b&gt;는?<br />\n" in html
    assert "# 둘째 줄 [링크](http://x) `코드` \\끝" in html
    assert "<ol>" not in html
    assert "<em>제1항</em>" not in html
    # The answer keeps its Markdown.
    assert "<strong>세 가지</strong>" in html

    # Citations in number order with file and page, a search query, times and status.
    assert "<li>[1] <code>patent_act.pdf</code>, 31쪽</li>" in html
    assert "<li>[2] <code>심사기준 `제2부`.pdf</code></li>" in html
    assert "검색어: <code>청구항 구성요소</code>" in html
    assert "상태: 중단됨" in html
    assert "(답변 없음)" in html
    assert " UTC" in markdown
    # Hangul stays readable in the file itself.
    assert "\\u" not in markdown
    assert "&#" not in markdown


def test_markdown_export_neutralises_html_in_answer(history: ConversationHistory) -> None:
    log = history.log
    conversation_id = log.start_conversation(user=OWNER, title="html")
    answer = "<script>alert(1)</script> <img src=x onerror=alert(1)> [링크](javascript:alert(1))\n```\nif a < b:\n```"
    log.record_turn(make_turn(conversation_id, question="질문", answer=answer))

    html = MarkdownIt("commonmark").render(history.export_markdown(OWNER, conversation_id))

    assert "<script>" not in html
    assert "<img" not in html
    assert "javascript:" not in html
    assert "&lt;script&gt;" in html
    assert "if a &lt; b:" in html  # code keeps its "<", shown escaped by the renderer


def test_markdown_export_in_english(history: ConversationHistory) -> None:
    conversation_id, _ = _conversation_with_turns(history.log)

    markdown = history.export_markdown(OWNER, conversation_id, language="en")

    assert "**Question**" in markdown
    assert "Search query: `청구항 구성요소`" in markdown
    assert "- \\[1\\] `patent_act.pdf`, p. 31" in markdown
    assert "*Status: interrupted*" in markdown


def test_json_export_has_stable_schema(history: ConversationHistory) -> None:
    conversation_id, turn_ids = _conversation_with_turns(history.log)

    text = history.export_json(OWNER, conversation_id)
    document = json.loads(text)

    assert document["format"] == EXPORT_FORMAT == 1
    assert set(document) == {"format", "conversation", "turns"}
    assert set(document["conversation"]) == {"id", "title", "created_at", "updated_at"}
    assert document["conversation"]["title"] == "청구항 #1\n해석 *초안*"
    assert document["conversation"]["created_at"].endswith("Z")
    first, second = document["turns"]
    assert [first["turn_id"], second["turn_id"]] == turn_ids
    assert set(first) == {
        "turn_id", "created_at", "question", "answer", "reasoning", "status", "error_type",
        "search_query", "index_version", "model_id", "latency_ms", "first_token_ms",
        "input_tokens", "output_tokens", "citations",
    }
    assert first["question"] == TRICKY_QUESTION
    assert first["answer"] == TRICKY_ANSWER
    assert first["search_query"] == "청구항 구성요소"
    assert (first["input_tokens"], first["output_tokens"]) == (812, 64)
    assert [c["n"] for c in first["citations"]] == [1, 2]
    assert first["citations"][0] == {
        "n": 1,
        "file_name": "patent_act.pdf",
        "page": 31,
        "chunk_id": "patent_act.pdf#p1-c0",
        "score": 0.75,
        "source_uri": "file:///data/samples/patent_act.pdf",
    }
    assert first["citations"][1]["page"] is None
    assert second["status"] == "interrupted"
    assert second["citations"] == []
    # Exports get passed around: no user name and no model server address.
    assert OWNER not in text
    assert "127.0.0.1" not in text
    assert "청구항" in text  # Hangul as is, not \uXXXX


def test_export_of_empty_conversation(history: ConversationHistory) -> None:
    conversation_id = history.log.start_conversation(user=OWNER)

    markdown = history.export_markdown(OWNER, conversation_id)

    assert markdown.startswith("# 제목 없는 대화\n")
    assert json.loads(history.export_json(OWNER, conversation_id))["turns"] == []


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("평범한 문장", "평범한 문장"),  # Hangul needs no escape
        ("1. 첫째", "1\\. 첫째"),  # would start an ordered list
        ("2) 둘째", "2\\) 둘째"),  # the other ordered-list marker
        ("- 항목", "\\- 항목"),  # would start a bullet list
        ("    들여쓰기", "들여쓰기"),  # four spaces would start a code block
        ("a_b*c", "a\\_b\\*c"),  # emphasis markers
        ("<script>", "\\<script\\>"),  # raw HTML
        ("&amp;", "\\&amp;"),  # an entity reference
        ("C#", "C\\#"),  # a trailing # would close a heading
    ],
)
def test_escape_markdown(text: str, escaped: str) -> None:
    assert escape_markdown(text) == escaped
    rendered = MarkdownIt("commonmark").renderInline(escaped)
    assert rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text.lstrip()


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("patent_act.pdf", "`patent_act.pdf`"),  # plain
        ("a`b", "``a`b``"),  # one backtick inside needs a longer fence
        ("`x`", "`` `x` ``"),  # backticks at the ends need padding
        ("두 줄\n이름", "`두 줄 이름`"),  # a code span stays on one line
    ],
)
def test_code_span(text: str, span: str) -> None:
    assert code_span(text) == span


def test_history_reads_after_store_deleted(tmp_path: Path, settings: LogSettings) -> None:
    """A missing database is an outage, not a missing conversation."""
    directory = tmp_path / "db"
    with ConversationLog.open(f"sqlite:///{directory}/log.sqlite3", settings=settings) as log:
        history = ConversationHistory(log)
        conversation_id = log.start_conversation(user=OWNER)
        assert log.flush() == 0
        shutil.rmtree(directory)

        with pytest.raises(LogDatabaseError):
            history.rename(OWNER, conversation_id, "새 제목")
