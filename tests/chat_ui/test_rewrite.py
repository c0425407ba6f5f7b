"""Follow-up rewriting: the model's standalone query, the rules that replace an unusable one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chat_ui.prompt import Exchange
from chat_ui.retrieve import IndexRetriever
from chat_ui.rewrite import QueryRewriter, build_rewrite_messages, clean_rewrite, rule_rewrite
from index_builder.store import open_index
from serving.client import ChatClient

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "eval" / "golden.jsonl"

HISTORY = [Exchange("특허법 제64조 출원공개는 언제 하나요?", "출원일부터 1년 6개월이 지나면 공개합니다 [1].")]
FOLLOW_UP = "그럼 공개 안 하는 경우는?"


def test_rewrite_messages_carry_history_and_follow_up():
    messages = build_rewrite_messages(FOLLOW_UP, HISTORY, "ko")

    assert [message["role"] for message in messages] == ["system", "user"]
    assert "독립된 질문" in messages[0]["content"]
    assert HISTORY[0].question in messages[1]["content"]
    assert HISTORY[0].answer in messages[1]["content"]
    assert messages[1]["content"].rstrip().endswith("독립된 질문:")
    assert f"후속 질문: {FOLLOW_UP}" in messages[1]["content"]


def test_rewrite_messages_shorten_long_answers():
    history = [Exchange("질문", "가" * 5000)]

    content = build_rewrite_messages("후속", history, "ko")[1]["content"]

    assert len(content) < 1000


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("특허법 제64조 출원공개를 하지 않는 경우", "특허법 제64조 출원공개를 하지 않는 경우"),  # plain query
        ("독립된 질문: 특허법 제64조 출원공개의 예외", "특허법 제64조 출원공개의 예외"),  # label repeated
        ('"특허법 제64조 출원공개의 예외"', "특허법 제64조 출원공개의 예외"),  # quoted
        ("\n\n특허법 제64조 예외\n설명: 이 질문은...", "특허법 제64조 예외"),  # first line only
        ("Standalone question: When is an application laid open?", "When is an application laid open?"),  # English label
        ("", None),  # empty
        ("   \n  ", None),  # blank
        ("??? 123", None),  # no Hangul or Latin letters
        ("후속 질문: 그럼 공개 안 하는 경우는? 독립된 질문:", None),  # echo of the prompt's labels
        ("당신은 검색어를 만드는 도우미입니다", None),  # echo of the instructions
        ("출원공개 " * 40, None),  # far longer than follow-up and previous query together
    ],
)
def test_clean_rewrite_table(output, expected):
    assert clean_rewrite(output, FOLLOW_UP, HISTORY) == expected


def test_rule_rewrite_prepends_missing_key_terms():
    query = rule_rewrite(FOLLOW_UP, HISTORY)

    assert query.endswith(FOLLOW_UP)
    assert "출원" in query
    assert "공개" not in query[: -len(FOLLOW_UP)], "terms the follow-up has are not repeated"


def test_rule_rewrite_prefers_logged_search_query():
    history = [Exchange("그거 청구항 5는 뭐야?", "…", search_query="캐디 역할을 수행하는 스마트카트 청구항 5")]

    query = rule_rewrite("청구항 6은?", history)

    assert "스마트" in query
    assert "캐디" in query


def test_rule_rewrite_without_history_is_question():
    assert rule_rewrite(FOLLOW_UP, []) == FOLLOW_UP


def _rewriter(fake_tgi, mode="model", timeout_s=10.0):
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, timeout=timeout_s)
    return QueryRewriter(mode, client, timeout_s=timeout_s, max_tokens=48, thinking=False)


def test_model_rewrite_used_when_usable(fake_tgi):
    fake_tgi.queue(deltas=["<think>\n\n</think>\n\n", "특허법 제64조 출원공개를 ", "하지 않는 경우"])

    query = _rewriter(fake_tgi).search_query(FOLLOW_UP, HISTORY, "ko")

    assert query.method == "model"
    assert query.text == "특허법 제64조 출원공개를 하지 않는 경우"
    request = fake_tgi.chat_requests()[-1].body
    assert request["max_tokens"] == 48
    assert request["messages"][-1]["content"].endswith("/no_think")


@pytest.mark.parametrize(
    "reply",
    [
        {"deltas": ["출원일부터 1년 6개월이 지나면 공개되며, " * 10]},  # an answer, not a query
        {"deltas": ["후속 질문: 독립된 질문:"]},  # the prompt echoed
        {"deltas": [""]},  # nothing
        {"status": 500, "body": {"error": "boom", "error_type": "generation"}},  # server error
        {"deltas": ["특허법"], "error_event": {"error": "CUDA out of memory", "error_type": "generation"}},  # error event
    ],
)
def test_unusable_model_rewrite_falls_back_to_rules(fake_tgi, reply):
    fake_tgi.queue(**reply)

    query = _rewriter(fake_tgi).search_query(FOLLOW_UP, HISTORY, "ko")

    assert query.method == "rules"
    assert query.text == rule_rewrite(FOLLOW_UP, HISTORY)


def test_stalled_model_rewrite_falls_back_to_rules(fake_tgi):
    # The server sends nothing for longer than the rewrite's timeout.
    fake_tgi.queue(deltas=[], stall_s=3.0)

    query = _rewriter(fake_tgi, timeout_s=0.5).search_query(FOLLOW_UP, HISTORY, "ko")

    assert query.method == "rules"


def test_no_history_searches_question_without_model_call(fake_tgi):
    query = _rewriter(fake_tgi).search_query(FOLLOW_UP, [], "ko")

    assert query.text == FOLLOW_UP
    assert query.method == "question"
    assert fake_tgi.chat_requests() == []


def test_rules_mode_makes_no_model_call(fake_tgi):
    rewriter = QueryRewriter("rules")

    query = rewriter.search_query(FOLLOW_UP, HISTORY, "ko")

    assert query.method == "rules"
    assert fake_tgi.chat_requests() == []


def test_off_mode_searches_follow_up_as_typed():
    query = QueryRewriter("off").search_query(FOLLOW_UP, HISTORY, "ko")

    assert query.text == FOLLOW_UP


def test_model_mode_without_client_rejected():
    with pytest.raises(ValueError, match="needs a ChatClient"):
        QueryRewriter("model")


def _found(retriever: IndexRetriever, query: str, expected: list[dict]) -> bool:
    pages = {(d.metadata["file_name"], d.metadata["page"]) for d in retriever.invoke(query)}
    return any((e["file"], e["page"]) in pages for e in expected)


def test_rules_beat_bare_golden_follow_ups(sample_index):
    # The golden set's follow-ups, each with the question asked before it.
    rows = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
    follow_ups = [row for row in rows if row["kind"] == "follow_up"]
    retriever = IndexRetriever(reader=open_index(sample_index), k=5)

    bare = rules = 0
    for row in follow_ups:
        history = [Exchange(question, "") for question in row["history"]]
        bare += _found(retriever, row["question"], row["expected"])
        rules += _found(retriever, rule_rewrite(row["question"], history), row["expected"])

    assert len(follow_ups) >= 5
    assert rules > bare, f"rules found {rules} of {len(follow_ups)}, the bare follow-up {bare}"
