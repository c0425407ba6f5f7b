"""The chat while the model server refuses connections: visible retries, then an error notice.

A socket bound on 127.0.0.1 without listen() refuses every connection to its port, and
holding it keeps another process from taking the port. The index and the SQLite log are
real. The retry deadline is short, so each test waits about one second for the client to
give up.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from chat_ui.log import ConversationLog
from chat_ui.pipeline import AnswerOptions
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings
from chat_ui.ui.chat import ChatAnswers
from chat_ui.ui.session import ChatSession
from serving.retry import RetryPolicy

QUESTION = "특허출원은 언제 공개되나요?"
RETRY = RetryPolicy(deadline_s=1.0, initial_delay_s=0.05, max_delay_s=0.2)


@pytest.fixture
def refused_url() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{closed.getsockname()[1]}/v1"


@pytest.fixture
def pipeline(small_chat_settings, refused_url: str):
    settings = small_chat_settings(query_rewrite="rules")
    answer_pipeline = build_pipeline(settings, ModelEndpoint(refused_url, "any-model", timeout_s=5, retry=RETRY))
    yield answer_pipeline
    answer_pipeline.log.close()


@pytest.mark.parametrize(
    ("language", "reconnecting", "failed"),
    [
        ("ko", "모델 서버에 다시 연결하는 중", "모델 서버에 연결할 수 없습니다"),  # Korean notices
        ("en", "Reconnecting to the model server", "The model server cannot be reached"),  # English notices
    ],
)
def test_refused_connection_shows_reconnecting_then_error(pipeline, language, reconnecting, failed):
    updates = list(pipeline.stream(QUESTION, user="alice", options=AnswerOptions(language=language)))

    waiting = [update for update in updates if not update.done]
    final = updates[-1]
    assert waiting, "no update arrived while the client retried"
    assert all(update.notice and update.notice.startswith(reconnecting) for update in waiting)
    assert final.status == "error"
    assert final.notice.startswith(failed)
    assert final.error_type == "ModelServerUnavailable"
    assert final.question == QUESTION


def test_refused_connection_keeps_question_and_logged_turn(pipeline):
    final = list(pipeline.stream(QUESTION, user="alice"))[-1]
    assert pipeline.log.flush() == 0

    [turn] = pipeline.log.turns(final.conversation_id)
    assert turn.turn_id == final.turn_id
    assert turn.question == QUESTION
    assert turn.status == "error"
    assert turn.error_type == "ModelServerUnavailable"
    assert "Connection refused" in turn.error_message
    assert pipeline.log.get_conversation(final.conversation_id).user == "alice"


def test_chat_column_shows_question_and_reconnecting(pipeline):
    sessions = list(ChatAnswers(pipeline).answer(QUESTION, ChatSession(), AnswerOptions(language="ko"), None))

    shown = [session.turns[-1] for session in sessions]
    assert all(turn.question == QUESTION for turn in shown)
    assert any(turn.status == "streaming" and "다시 연결하는 중" in (turn.notice or "") for turn in shown)
    assert shown[-1].status == "error"
    assert "모델 서버에 연결할 수 없습니다" in shown[-1].notice
    assert sessions[-1].conversation_id


def test_retry_deadline_zero_fails_without_waiting_updates(small_index, tmp_path, refused_url):
    settings = ChatSettings(index_dir=small_index, log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}")
    pipeline = build_pipeline(settings, ModelEndpoint(refused_url, "any-model", timeout_s=5))
    try:
        updates = list(pipeline.stream(QUESTION))
    finally:
        pipeline.log.close()

    assert [update.status for update in updates] == ["error"]
    assert updates[-1].notice.startswith("모델 서버에 연결할 수 없습니다")
    with ConversationLog.open(settings.log_database_url) as log:
        assert log.get_turn(updates[-1].turn_id).question == QUESTION
