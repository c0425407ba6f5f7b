"""The answer pipeline against the fake TGI server: Qwen3's think block, failures, token budget.

The index is real (two sample PDFs) and so is the SQLite log; only the GPU server is faked.
"""

from __future__ import annotations

import json

import sqlite3
import uuid

import pytest

from chat_ui.log import ConversationLog
from chat_ui.render import answer_messages
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings
from serving.retry import RetryPolicy

QUESTION = "특허출원은 언제 공개되나요?"


@pytest.fixture
def settings(small_chat_settings) -> ChatSettings:
    return small_chat_settings(top_k=8, thinking=True)


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


def test_stalled_stream_ends_with_plain_timeout_notice(settings, fake_tgi):
    # The notice says what happened in plain words, without the exception's class name.
    fake_tgi.queue(deltas=["부분 답변"], stall_s=3)
    pipeline = _pipeline(settings, fake_tgi, stall_timeout_s=0.5)

    final = list(pipeline.stream(QUESTION))[-1]

    assert final.status == "error"
    assert final.answer == "부분 답변"
    assert "모델 서버가 응답하지 않아 답변이 여기서 멈췄습니다" in final.notice
    assert "ModelServerTimeout" not in final.notice
    turn = _logged_turn(settings, final)
    assert turn.status == "error"
    assert turn.error_type == "ModelServerTimeout"


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
    # Rules rewrite the follow-ups, so each queued reply is the answer whether or not the
    # history could be read during the outage. The numbered questions are not real ones, so
    # the relevance floor is off.
    settings = ChatSettings(
        index_dir=small_index, log_database_url=mariadb_url, max_tokens=16, query_rewrite="rules", relevance_floor=0.0
    )
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
    fake_tgi.queue(deltas=["특허출원 공개 기간의 단축"])  # the follow-up's rewrite
    fake_tgi.queue(deltas=["단축할 수 있습니다 [2]."])
    pipeline = _pipeline(settings, fake_tgi)

    first = list(pipeline.stream(QUESTION))[-1]
    second = list(pipeline.stream("그 기간은 단축할 수 있나요?", conversation_id=first.conversation_id))[-1]

    messages = fake_tgi.chat_requests()[-1].body["messages"]
    assert second.conversation_id == first.conversation_id
    assert second.answer == "단축할 수 있습니다 [2]."
    assert QUESTION in [message["content"] for message in messages if message["role"] == "user"]
    assert "1년 6개월 후입니다 [1]." in [message["content"] for message in messages if message["role"] == "assistant"]


def test_other_users_conversation_is_not_continued(settings, fake_tgi):
    fake_tgi.queue(deltas=["1년 6개월 후입니다 [1]."])
    fake_tgi.queue(deltas=["출원공개 시기는 출원일부터 1년 6개월입니다 [1]."])
    pipeline = _pipeline(settings, fake_tgi)

    alice = list(pipeline.stream(QUESTION + " SECRET-ALICE-42", user="alice"))[-1]
    pipeline.log.flush()
    bob = list(pipeline.stream("출원공개 시기는?", conversation_id=alice.conversation_id, user="bob"))[-1]

    bob_request = json.dumps(fake_tgi.chat_requests()[-1].body, ensure_ascii=False)
    assert bob.conversation_id != alice.conversation_id
    assert "SECRET-ALICE-42" not in bob_request
    assert pipeline.log.get_conversation(bob.conversation_id).user == "bob"
    assert [turn.question for turn in pipeline.log.turns(alice.conversation_id)] == [QUESTION + " SECRET-ALICE-42"]


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


# Follow-up rewriting, the relevance floor, citation filtering and per-request options.

FOLLOW_UP = "그 기간은 단축할 수 있나요?"


def _invalid_citations_logged(settings, turn_id: str) -> int | None:
    """Read the count straight from the table, whatever the log's read API returns."""
    path = settings.log_database_url.removeprefix("sqlite:///")
    ConversationLog.open(settings.log_database_url).close()  # waits for the queued writes
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT invalid_citations FROM turn WHERE id = ?", (uuid.UUID(turn_id).hex,)).fetchone()
    finally:
        connection.close()
    return row[0]


def test_follow_up_searches_model_rewrite_and_logs_it(settings, fake_tgi):
    fake_tgi.queue(deltas=["1년 6개월 후 공개됩니다 [1]."])
    fake_tgi.queue(deltas=["<think>\n\n</think>\n\n", "특허출원 공개 시기의 단축"])
    fake_tgi.queue(deltas=["조기공개를 신청할 수 있습니다 [1]."])
    pipeline = _pipeline(settings, fake_tgi)

    first = list(pipeline.stream(QUESTION))[-1]
    updates = list(pipeline.stream(FOLLOW_UP, conversation_id=first.conversation_id))

    final = updates[-1]
    rewrite_request, answer_request = (request.body for request in fake_tgi.chat_requests()[1:])
    assert first.search_query == QUESTION, "a first question is searched as asked"
    assert final.status == "ok"
    assert final.search_query == "특허출원 공개 시기의 단축"
    assert all(update.search_query == final.search_query for update in updates if update.citations)
    assert rewrite_request["max_tokens"] == settings.rewrite_max_tokens
    assert FOLLOW_UP in rewrite_request["messages"][-1]["content"]
    assert rewrite_request["messages"][-1]["content"].endswith("/no_think")
    assert answer_request["messages"][-1]["content"].startswith(FOLLOW_UP), "the model answers the question as asked"
    assert _logged_turn(settings, final).search_query == "특허출원 공개 시기의 단축"


def test_unusable_rewrite_falls_back_to_rules(settings, fake_tgi):
    from chat_ui.prompt import Exchange
    from chat_ui.rewrite import rule_rewrite

    history = [Exchange(QUESTION, "1년 6개월 후 공개됩니다 [1].")]
    fake_tgi.queue(deltas=["출원공개는 출원일부터 1년 6개월이 지난 때에 하며, " * 8])  # an answer, not a query
    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream(FOLLOW_UP, history=history))[-1]

    assert final.status == "ok"
    assert final.search_query == rule_rewrite(FOLLOW_UP, history)
    assert final.answer == "답변 [1]"


def test_rules_setting_rewrites_without_model_call(settings, fake_tgi):
    from chat_ui.prompt import Exchange

    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings.model_copy(update={"query_rewrite": "rules"}), fake_tgi)

    final = list(pipeline.stream(FOLLOW_UP, history=[Exchange(QUESTION, "1년 6개월 후입니다.")]))[-1]

    assert len(fake_tgi.chat_requests()) == 1
    assert final.search_query.endswith(FOLLOW_UP)
    assert "출원" in final.search_query


@pytest.mark.parametrize(
    ("question", "fragment"),
    [
        ("오늘 서울 날씨 어때?", "색인된 문서에는 이 질문에 관한 내용이 없어"),  # weather, Korean
        ("파스타 레시피 알려줘", "색인된 문서에는 이 질문에 관한 내용이 없어"),  # cooking, Korean
        ("What is the capital of France?", "The indexed documents do not cover this question"),  # English
    ],
)
def test_unrelated_question_gets_not_covered_without_model_call(settings, fake_tgi, question, fragment):
    pipeline = _pipeline(settings, fake_tgi)
    observed = []
    pipeline.add_observer(observed.append)

    updates = list(pipeline.stream(question))

    final = updates[-1]
    assert len(updates) == 1
    assert final.status == "no_answer"
    assert fragment in final.notice
    assert final.citations == ()
    assert final.search_query == question
    assert final.retrieval_ms is not None and final.latency_ms is not None
    assert fake_tgi.chat_requests() == []
    assert observed == [final]
    turn = _logged_turn(settings, final)
    assert turn.status == "no_answer"
    assert turn.sources == []


def test_notice_follows_language_option(settings, fake_tgi):
    from chat_ui.pipeline import AnswerOptions

    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream("오늘 서울 날씨 어때?", options=AnswerOptions(language="en")))[-1]

    assert final.status == "no_answer"
    assert "The indexed documents do not cover this question" in final.notice
    assert final.language == "ko"  # the question's language, in which the model would answer


def test_floor_zero_sends_unrelated_question_to_model(settings, fake_tgi):
    fake_tgi.queue(deltas=["문서에 답이 없습니다."])
    pipeline = _pipeline(settings.model_copy(update={"relevance_floor": 0.0}), fake_tgi)

    final = list(pipeline.stream("파스타 레시피 알려줘"))[-1]

    assert final.status == "ok"
    assert len(fake_tgi.chat_requests()) == 1


def test_invalid_citations_removed_while_streaming_and_counted(settings, fake_tgi):
    fake_tgi.queue(deltas=["출원일부터 1년 6개월 후 공개됩니다 [", "9", "]. 근거는 [1", ", 12]", " 입니다 [0]."])
    pipeline = _pipeline(settings, fake_tgi)

    updates = list(pipeline.stream(QUESTION))

    final = updates[-1]
    assert final.status == "ok"
    assert final.answer == "출원일부터 1년 6개월 후 공개됩니다. 근거는 [1] 입니다."
    for update in updates:
        for invalid in ("[9", "12]", "[0"):
            assert invalid not in update.answer, (invalid, update.answer)
    shown = [update.answer for update in updates]
    assert all(later.startswith(earlier) for earlier, later in zip(shown, shown[1:]))
    assert _logged_turn(settings, final).answer == final.answer
    assert _invalid_citations_logged(settings, final.turn_id) == 3


def test_every_citation_maps_to_stored_chunk(settings, fake_tgi):
    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings, fake_tgi)
    reader = pipeline.retriever.reader

    final = list(pipeline.stream(QUESTION))[-1]

    context = fake_tgi.chat_requests()[-1].body["messages"][0]["content"]
    assert final.citations
    assert [citation.n for citation in final.citations] == list(range(1, len(final.citations) + 1))
    for citation in final.citations:
        chunk = reader.chunk(citation.chunk_id)
        assert (citation.file_name, citation.page, citation.chunk_no) == (chunk.file_name, chunk.page, chunk.chunk_no)
        assert chunk.text in citation.text, "the model's context contains the matched chunk"
        assert citation.text.strip() in context
        assert f"[{citation.n}] ({citation.file_name}, {citation.page}쪽)" in context
    assert any(len(citation.text) > len(reader.chunk(citation.chunk_id).text) for citation in final.citations), (
        "no chunk was widened to its neighbourhood"
    )


def test_context_chars_zero_sends_chunks_alone(settings, fake_tgi):
    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings.model_copy(update={"context_chars": 0}), fake_tgi)
    reader = pipeline.retriever.reader

    final = list(pipeline.stream(QUESTION))[-1]

    assert [citation.text for citation in final.citations] == [
        reader.chunk(citation.chunk_id).text for citation in final.citations
    ]


def test_options_override_settings_per_question(settings, fake_tgi):
    from chat_ui.pipeline import AnswerOptions

    fake_tgi.queue(deltas=["답변 [1]"])
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream(QUESTION, options=AnswerOptions(thinking=False, top_k=2, temperature=0.2)))[-1]

    request = fake_tgi.chat_requests()[-1].body
    assert final.status == "ok"
    assert 1 <= len(final.citations) <= 2
    assert request["temperature"] == 0.2
    assert request["messages"][-1]["content"].endswith("/no_think")
    assert "[3]" not in request["messages"][0]["content"]
    sampling = _logged_turn(settings, final).sampling_params
    assert sampling["thinking"] is False
    assert sampling["temperature"] == 0.2


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 0},  # below the minimum
        {"top_k": 51},  # above the maximum
        {"temperature": -0.1},  # negative
        {"temperature": 2.5},  # above the maximum
        {"language": "ja"},  # no catalog for it
    ],
)
def test_invalid_options_rejected(options):
    from chat_ui.pipeline import AnswerOptions

    with pytest.raises(ValueError, match=next(iter(options))):
        AnswerOptions(**options)


def test_final_update_carries_measurements(settings, fake_tgi):
    fake_tgi.queue(deltas=["1년 ", "6개월 ", "후입니다 [1]."])
    pipeline = _pipeline(settings, fake_tgi)

    updates = list(pipeline.stream(QUESTION))

    final = updates[-1]
    assert final.retrieval_ms is not None and final.retrieval_ms > 0
    assert final.first_token_ms is not None
    assert final.latency_ms >= final.first_token_ms >= final.retrieval_ms
    assert final.input_tokens > 0
    assert final.output_tokens == 4  # the fake counts one token per delta and one for the end
    assert final.error_type is None
    assert all(update.latency_ms is None for update in updates[:-1])
    turn = _logged_turn(settings, final)
    assert turn.input_tokens == final.input_tokens
    assert turn.latency_ms == round(final.latency_ms)


def test_failed_answer_reports_error_type(settings, fake_tgi):
    fake_tgi.queue(deltas=["부분"], error_event={"error": "CUDA out of memory", "error_type": "generation"})
    pipeline = _pipeline(settings, fake_tgi)

    final = list(pipeline.stream(QUESTION))[-1]

    assert final.status == "error"
    assert final.error_type == _logged_turn(settings, final).error_type
    assert final.error_type


def test_observers_see_each_final_update_once(settings, fake_tgi):
    fake_tgi.queue(deltas=["답변 [1]"])
    fake_tgi.queue(deltas=["긴 ", "답변 ", "중간"])
    pipeline = _pipeline(settings, fake_tgi)
    observed = []

    def broken_observer(update):
        raise RuntimeError("a metrics backend is down")

    pipeline.add_observer(broken_observer)
    pipeline.add_observer(observed.append)

    answered = list(pipeline.stream(QUESTION))[-1]
    refused = list(pipeline.stream("파스타 레시피 알려줘"))[-1]
    rejected = list(pipeline.stream("   "))[-1]
    stream = pipeline.stream(QUESTION)
    next(stream)
    stream.close()

    assert answered.status == "ok"
    assert rejected.status == "error"
    assert [update.status for update in observed] == ["ok", "no_answer", "interrupted"]
    assert observed[0] == answered
    assert observed[1] == refused
    assert observed[2].turn_id is not None
    assert observed[2].latency_ms is not None
