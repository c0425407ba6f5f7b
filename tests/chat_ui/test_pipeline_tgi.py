"""The answer pipeline against the fake TGI server: Qwen3's think block, failures, token budget.

The index is real (two sample PDFs) and so is the SQLite log; only the GPU server is faked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_ui.log import ConversationLog
from chat_ui.render import answer_messages
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings
from serving.retry import RetryPolicy

QUESTION = "특허출원은 언제 공개되나요?"


@pytest.fixture
def settings(small_index: Path, tmp_path: Path) -> ChatSettings:
    return ChatSettings(
        index_dir=small_index,
        log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
        max_tokens=64,
        top_k=8,
        thinking=True,
    )


def _pipeline(settings, fake_tgi, **endpoint_options):
    endpoint = ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10, **endpoint_options)
    return build_pipeline(settings, endpoint)


def _logged_turn(settings, final):
    log = ConversationLog.open(settings.log_database_url)
    try:
        return log.get_turn(final.turn_id)
    finally:
        log.close()


def test_think_block_split_across_chunks_is_kept_apart(settings, fake_tgi):
    fake_tgi.queue(deltas=["<th", "ink>출원일부터 ", "1년 6개월</thi", "nk>\n\n1년 6개월 후 공개됩니다 [1]."])
    pipeline = _pipeline(settings, fake_tgi)

    updates = list(pipeline.stream(QUESTION))
    final = updates[-1]

    assert final.status == "ok"
    assert final.reasoning == "출원일부터 1년 6개월"
    assert final.answer.strip() == "1년 6개월 후 공개됩니다 [1]."
    assert all("<think>" not in update.answer and "</think>" not in update.answer for update in updates)
    turn = _logged_turn(settings, final)
    assert turn.reasoning == "출원일부터 1년 6개월"
    assert turn.answer == final.answer
    assert turn.sampling_params["thinking"] is True
    assert "/think" in fake_tgi.chat_requests()[-1].body["messages"][-1]["content"]


def test_think_first_stream_no_empty_bubble(settings, fake_tgi):
    fake_tgi.queue(deltas=["<think>", "검토 중"], finish_reason="length")
    pipeline = _pipeline(settings, fake_tgi)

    updates = list(pipeline.stream(QUESTION))

    for update in updates:
        contents = [message["content"] for message in answer_messages(update)]
        assert "" not in contents
    final = updates[-1]
    assert final.answer == ""
    assert final.status == "error"
    assert "생각하는 도중에 최대 토큰 수에 도달" in final.notice
    assert _logged_turn(settings, final).reasoning == "검토 중"


def test_error_event_keeps_partial_answer_and_logs_it(settings, fake_tgi):
    fake_tgi.queue(
        deltas=["부분 답변"], error_event={"error": "CUDA out of memory", "error_type": "generation"}
    )
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream(QUESTION))[-1]

    assert final.status == "error"
    assert final.answer == "부분 답변"
    assert "답변 생성 중 오류가 발생했습니다" in final.notice
    turn = _logged_turn(settings, final)
    assert turn.status == "error"
    assert turn.answer == "부분 답변"
    assert "CUDA out of memory" in turn.error_message


def test_busy_server_is_retried_with_visible_status(settings, fake_tgi):
    fake_tgi.queue(status=503, body={"error": "Model is overloaded", "error_type": "overloaded"})
    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings, fake_tgi, retry=RetryPolicy(deadline_s=10, initial_delay_s=0.05, max_delay_s=0.1))

    updates = list(pipeline.stream(QUESTION))

    notices = [update.notice for update in updates if update.notice and not update.done]
    assert any("다시 시도합니다" in notice for notice in notices)
    assert updates[-1].status == "ok"
    assert updates[-1].answer == "답변 [1]"


def test_overflowing_korean_context_is_cut_to_fit(settings, fake_tgi):
    # The fake counts one token per character of the rendered prompt, so eight Korean chunks
    # and the instructions overflow 900 input tokens.
    fake_tgi.max_input_tokens = 900
    fake_tgi.max_total_tokens = 900 + settings.max_tokens
    fake_tgi.queue(deltas=["답변"])
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream(QUESTION))[-1]

    assert final.status == "ok", final.notice
    assert 0 < len(final.citations) < settings.top_k
    request = fake_tgi.chat_requests()[-1].body
    context = request["messages"][0]["content"]
    assert f"[{len(final.citations)}]" in context
    assert f"[{len(final.citations) + 1}]" not in context


def test_question_too_long_for_budget_is_not_sent(settings, fake_tgi):
    fake_tgi.max_input_tokens = 300
    fake_tgi.max_total_tokens = 300 + settings.max_tokens
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream("출원공개 " * 60))[-1]

    assert final.status == "error"
    assert "질문이 모델이 처리할 수 있는 길이를 넘습니다" in final.notice
    assert fake_tgi.chat_requests() == []
    assert _logged_turn(settings, final).error_type == "PromptTooLong"


def test_chat_answers_through_mariadb_outage(small_index, tmp_path, fake_tgi, mariadb_url, mariadb_outage):
    settings = ChatSettings(index_dir=small_index, log_database_url=mariadb_url, max_tokens=16)
    pipeline = _pipeline(settings, fake_tgi)
    conversation_id = pipeline.log.start_conversation(title="정전 중 대화")
    assert pipeline.log.flush(timeout=30) == 0

    with mariadb_outage():
        finals = []
        for number in range(20):
            fake_tgi.queue(deltas=[f"답변 {number} [1]"])
            finals.append(list(pipeline.stream(f"질문 {number}: 출원공개 시기", conversation_id=conversation_id))[-1])
        assert [final.status for final in finals] == ["ok"] * 20
        assert pipeline.log.flush(timeout=30) == 20, "the turns wait in the journal"

    assert pipeline.log.flush(timeout=60) == 0
    turns = pipeline.log.turns(conversation_id)
    assert [turn.turn_id for turn in turns] == [final.turn_id for final in finals]
    assert [turn.answer for turn in turns] == [f"답변 {number} [1]" for number in range(20)]
    pipeline.log.close()


def test_follow_up_without_history_loads_logged_turns(settings, fake_tgi):
    fake_tgi.queue(deltas=["1년 6개월 후입니다 [1]."])
    fake_tgi.queue(deltas=["단축할 수 있습니다 [2]."])
    pipeline = _pipeline(settings, fake_tgi)

    first = list(pipeline.stream(QUESTION))[-1]
    second = list(pipeline.stream("그 기간은 단축할 수 있나요?", conversation_id=first.conversation_id))[-1]

    messages = fake_tgi.chat_requests()[-1].body["messages"]
    assert second.conversation_id == first.conversation_id
    assert QUESTION in [message["content"] for message in messages if message["role"] == "user"]
    assert "1년 6개월 후입니다 [1]." in [message["content"] for message in messages if message["role"] == "assistant"]


@pytest.mark.parametrize(
    "conversation_id",
    [
        "'; DROP TABLE turn;--",  # SQL-looking text
        "not-a-uuid",  # plain text
    ],
)
def test_invalid_conversation_id_starts_new_logged_conversation(settings, fake_tgi, conversation_id):
    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream(QUESTION, conversation_id=conversation_id))[-1]

    assert final.status == "ok"
    assert final.conversation_id != conversation_id
    assert _logged_turn(settings, final).question == QUESTION


def test_lone_surrogate_in_question_gets_notice(settings, fake_tgi):
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream("\udcff 출원공개"))[-1]

    assert final.status == "error"
    assert "처리할 수 없는 문자" in final.notice
    assert fake_tgi.chat_requests() == []
