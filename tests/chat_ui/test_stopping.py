"""Stopping an answer while the model stalls: the turn ends as "interrupted" without waiting.

The fake TGI server sends the start of an answer, then stalls with keep-alive comments, then
sends the rest. A stop request during the stall must end the stream as "interrupted" with
only the start; without it the rest would arrive and the turn would end "ok".
"""

from __future__ import annotations

import json
import threading

import pytest

from chat_ui.pipeline import AnswerOptions
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.stopping import StopRequests
from chat_ui.ui.chat import ChatAnswers
from chat_ui.ui.session import ChatSession

QUESTION = "특허출원은 언제 공개되나요?"
START = "특허출원은 출원일부터"
REST = "그 뒤 나머지 답변"
# Long enough that a test which waited for the stall to end would end "ok", not "interrupted".
STALL_S = 10


@pytest.fixture
def pipeline(small_chat_settings, fake_tgi):
    settings = small_chat_settings(query_rewrite="rules")
    answer_pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=60))
    yield answer_pipeline
    answer_pipeline.log.close()


def _queue_stalling_answer(fake_tgi) -> None:
    rest = json.dumps(fake_tgi.chunk(REST), ensure_ascii=False)
    fake_tgi.queue(deltas=[START], stall_s=STALL_S, keepalive_s=1, raw_events=[f"data: {rest}\n\n"])


def test_stop_during_stall_logs_interrupted_turn(pipeline, fake_tgi):
    _queue_stalling_answer(fake_tgi)
    stop = threading.Event()

    updates = []
    for update in pipeline.stream(QUESTION, stop=stop):
        updates.append(update)
        if START in update.answer:
            stop.set()

    final = updates[-1]
    assert final.done
    assert final.status == "interrupted"
    assert final.answer == START
    assert REST not in final.answer

    pipeline.log.flush()
    [turn] = pipeline.log.turns(final.conversation_id)
    assert turn.status == "interrupted"
    assert turn.answer == START


def test_stop_request_reaches_the_sessions_answer(pipeline, fake_tgi):
    # The stop button's handler receives only the browser session's key.
    _queue_stalling_answer(fake_tgi)
    stops = StopRequests()
    signal = stops.start("session-a")
    answers = ChatAnswers(pipeline)

    sessions = []
    for session in answers.answer(QUESTION, ChatSession(), AnswerOptions(language="ko"), None, signal):
        sessions.append(session)
        if START in session.turns[-1].answer and session.streaming:
            assert stops.stop("session-a")
    stops.finish("session-a", signal)

    last = sessions[-1].turns[-1]
    assert last.status == "interrupted"
    assert REST not in last.answer
    assert len(stops) == 0


def test_stop_requests_are_kept_per_session():
    stops = StopRequests()
    first = stops.start("a")
    second = stops.start("b")

    assert stops.stop("a")
    assert first.is_set()
    assert not second.is_set()
    assert not stops.stop("a"), "a finished answer has nothing to stop"
    assert not stops.stop(None)


def test_newer_answer_of_a_session_keeps_its_signal():
    stops = StopRequests()
    old = stops.start("a")
    new = stops.start("a")
    stops.finish("a", old)

    assert stops.stop("a")
    assert new.is_set()
    assert not old.is_set()
