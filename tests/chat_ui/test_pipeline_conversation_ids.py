"""Which conversation a question is logged in, for conversation ids that a caller passes.

A caller of the Python API or of gradio_client can pass any conversation id. Only ids of
the caller's own logged conversations, and ids that this pipeline started for the caller
and has not written yet, continue a conversation. The index, the fake TGI server and the
SQLite log are real.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid

import pytest

from chat_ui.errors import ConversationNotFoundError
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings

QUESTION = "특허출원은 언제 공개되나요?"
FOLLOW_UP = "그 기간은 단축할 수 있나요?"


@pytest.fixture
def settings(small_chat_settings) -> ChatSettings:
    return small_chat_settings(query_rewrite="rules")


@pytest.fixture
def pipeline(settings, fake_tgi):
    answer_pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    yield answer_pipeline
    answer_pipeline.log.close()


def test_unknown_uuid_starts_callers_conversation(pipeline, fake_tgi, caplog):
    fake_tgi.queue(deltas=["1년 6개월 후입니다 [1]."])
    unknown = str(uuid.uuid4())

    with caplog.at_level(logging.WARNING, logger="chat_ui.pipeline"):
        final = list(pipeline.stream(QUESTION, conversation_id=unknown, user="alice"))[-1]
    pipeline.log.flush()

    assert final.status == "ok"
    assert final.conversation_id != unknown
    assert pipeline.log.get_conversation(final.conversation_id).user == "alice"
    assert [turn.question for turn in pipeline.log.turns(final.conversation_id)] == [QUESTION]
    with pytest.raises(ConversationNotFoundError):
        pipeline.log.get_conversation(unknown)
    assert any(unknown in record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)


def test_every_update_names_new_conversation(pipeline, fake_tgi):
    fake_tgi.queue(deltas=["1년 6개월 ", "후입니다 [1]."])
    unknown = str(uuid.uuid4())

    updates = list(pipeline.stream(QUESTION, conversation_id=unknown, user="alice"))

    assert {update.conversation_id for update in updates} == {updates[-1].conversation_id}


def test_unknown_uuid_without_user_is_not_adopted(pipeline, fake_tgi):
    # The local user of an app without sign-in is user None: the id still must not be
    # stored just because a caller named it.
    fake_tgi.queue(deltas=["1년 6개월 후입니다 [1]."])
    unknown = str(uuid.uuid4())

    final = list(pipeline.stream(QUESTION, conversation_id=unknown))[-1]
    pipeline.log.flush()

    assert final.conversation_id != unknown
    assert pipeline.log.get_conversation(final.conversation_id).user is None
    with pytest.raises(ConversationNotFoundError):
        pipeline.log.get_conversation(unknown)


def test_own_logged_conversation_continues(pipeline, fake_tgi):
    fake_tgi.queue(deltas=["1년 6개월 후입니다 [1]."])
    fake_tgi.queue(deltas=["단축할 수 있습니다 [1]."])

    first = list(pipeline.stream(QUESTION, user="alice"))[-1]
    pipeline.log.flush()
    second = list(pipeline.stream(FOLLOW_UP, conversation_id=first.conversation_id, user="alice"))[-1]
    pipeline.log.flush()

    assert second.conversation_id == first.conversation_id
    assert [turn.question for turn in pipeline.log.turns(first.conversation_id)] == [QUESTION, FOLLOW_UP]


def test_unwritten_conversation_continues_for_its_user(settings, fake_tgi, monkeypatch, tmp_path):
    # Another connection holds SQLite's write lock, so the conversation row cannot reach
    # the database, while reads still work (WAL). Reads do not wait for queued writes.
    monkeypatch.setenv("VERACLAIM_LOG_READ_WAIT_S", "0")
    fake_tgi.queue(deltas=["1년 6개월 후입니다 [1]."])
    fake_tgi.queue(deltas=["단축할 수 있습니다 [1]."])
    fake_tgi.queue(deltas=["다른 사용자의 답변 [1]."])
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    blocker = sqlite3.connect(tmp_path / "log.sqlite3", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        first = list(pipeline.stream(QUESTION, user="alice"))[-1]
        with pytest.raises(ConversationNotFoundError):
            pipeline.log.get_conversation(first.conversation_id)

        second = list(pipeline.stream(FOLLOW_UP, conversation_id=first.conversation_id, user="alice"))[-1]
        other = list(pipeline.stream(FOLLOW_UP, conversation_id=first.conversation_id, user="bob"))[-1]
        blocker.execute("ROLLBACK")

        assert pipeline.log.flush() == 0
        assert second.conversation_id == first.conversation_id
        assert other.conversation_id != first.conversation_id
        assert pipeline.log.get_conversation(first.conversation_id).user == "alice"
        assert [turn.question for turn in pipeline.log.turns(first.conversation_id)] == [QUESTION, FOLLOW_UP]
        assert pipeline.log.get_conversation(other.conversation_id).user == "bob"
    finally:
        blocker.close()
        pipeline.log.close()
