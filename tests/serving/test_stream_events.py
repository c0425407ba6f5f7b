"""ChatClient.stream_events against the fake TGI: Qwen3 thinking on and off, and the result."""

from __future__ import annotations

import pytest

from serving.client import ChatClient
from serving.errors import ModelStreamError
from serving.stream import StreamEvent

pytestmark = pytest.mark.timeout(30)

QUESTION = [
    {"role": "system", "content": "자료만 근거로 답하세요."},
    {"role": "user", "content": "청구항 1의 구성요소는?"},
]


def texts(events: list[StreamEvent], kind: str) -> str:
    return "".join(event.text for event in events if event.kind == kind)


def test_thinking_on_sends_switch_and_sampling(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<th", "ink>", "\n생각", "</think>", "\n\n", "답입니다."])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    list(client.stream_events(QUESTION, thinking=True, max_tokens=256))

    body = fake_tgi.chat_requests()[-1].body
    assert body["messages"][-1]["content"] == "청구항 1의 구성요소는? /think"
    assert body["messages"][0] == QUESTION[0]
    assert body["temperature"] == 0.6
    assert body["top_p"] == 0.95
    assert body["max_tokens"] == 256
    # TGI's chat route ignores top_k and turns presence_penalty into a repetition penalty.
    assert "top_k" not in body
    assert "presence_penalty" not in body


def test_thinking_on_splits_reasoning_from_answer(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<th", "ink>", "\n청구항을 ", "읽는다.", "\n</thi", "nk>", "\n\n", "세 가지", "입니다."])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    stream = client.stream_events(QUESTION, thinking=True)
    events = list(stream)

    assert texts(events, "reasoning") == "청구항을 읽는다."
    assert texts(events, "answer") == "세 가지입니다."
    assert [event.kind for event in events] == ["reasoning", "reasoning", "answer", "answer"]
    assert stream.result.reasoning == "청구항을 읽는다."
    assert stream.result.answer == "세 가지입니다."


def test_thinking_off_drops_empty_block(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<think>", "\n\n", "</think>", "\n\n", "바로 ", "답합니다."])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    events = list(client.stream_events(QUESTION, thinking=False))

    body = fake_tgi.chat_requests()[-1].body
    assert body["messages"][-1]["content"].endswith(" /no_think")
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.8
    assert [event.kind for event in events] == ["answer", "answer"]
    assert texts(events, "answer") == "바로 답합니다."


def test_thinking_unset_leaves_messages_unchanged(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    list(client.stream_events(QUESTION))

    body = fake_tgi.chat_requests()[-1].body
    assert body["messages"] == QUESTION
    assert body["temperature"] == 0.3
    assert "top_p" not in body


def test_explicit_sampling_overrides_mode(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    stream = client.stream_events(QUESTION, thinking=False, temperature=0.2, top_p=0.5)
    list(stream)

    body = fake_tgi.chat_requests()[-1].body
    assert (body["temperature"], body["top_p"]) == (0.2, 0.5)
    assert stream.result.sampling == {"temperature": 0.2, "top_p": 0.5}


def test_result_reports_usage_and_finish(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<think>r</think>", "a"], finish_reason="stop")
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    stream = client.stream_events(QUESTION, thinking=True, max_tokens=100)
    list(stream)
    result = stream.result

    assert fake_tgi.chat_requests()[-1].body["stream_options"] == {"include_usage": True}
    assert result.finish_reason == "stop"
    assert result.prompt_tokens is not None and result.prompt_tokens > 0
    assert result.completion_tokens == 3
    assert result.sampling == {"temperature": 0.6, "top_p": 0.95}
    assert result.thinking is True
    assert result.max_tokens == 100
    assert result.attempts == 1
    assert result.ended_in_reasoning is False
    assert result.time_to_first_token_s is not None


def test_open_think_block_at_limit_gives_no_answer(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<think>", "\n먼저 ", "청구항", "을 검토"], finish_reason="length")
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    stream = client.stream_events(QUESTION, thinking=True, max_tokens=4)
    events = list(stream)

    assert texts(events, "answer") == ""
    assert texts(events, "reasoning") == "먼저 청구항을 검토"
    assert stream.result.finish_reason == "length"
    assert stream.result.ended_in_reasoning is True


def test_stream_chat_strips_reasoning(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<think>", "비공개 추론", "</think>", "\n\n공개 ", "답변"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    deltas = list(client.stream_chat(QUESTION, thinking=True))

    assert deltas == ["공개 ", "답변"]


def test_stream_chat_shows_nothing_for_open_block(fake_tgi) -> None:
    fake_tgi.queue(deltas=["<think>", "never shown"], finish_reason="length")
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    assert client.complete_chat(QUESTION) == ""


def test_error_in_reasoning_keeps_partial_reasoning(fake_tgi) -> None:
    fake_tgi.queue(
        deltas=["<think>", "half a thought"],
        error_event={"error": "Request failed during generation: CUDA out of memory", "error_type": "generation"},
    )
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)
    events: list[StreamEvent] = []

    with pytest.raises(ModelStreamError) as caught:
        for event in client.stream_events(QUESTION, thinking=True):
            events.append(event)

    assert caught.value.partial_text == ""
    assert caught.value.partial_reasoning == "half a thought"
    assert caught.value.error_type == "generation"
    assert texts(events, "reasoning") == "half a thought"


def test_result_before_end_is_an_error(fake_tgi) -> None:
    fake_tgi.queue(deltas=["a", "b"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)
    stream = client.stream_events(QUESTION)

    next(iter(stream))

    with pytest.raises(RuntimeError, match="iterate it to the end"):
        _ = stream.result
    stream.close()


def test_greedy_thinking_is_rejected(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ValueError, match="greedy"):
        client.stream_events(QUESTION, thinking=True, temperature=0)


def test_switch_needs_user_message(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ValueError, match="no user message"):
        client.stream_events([{"role": "system", "content": "s"}], thinking=False)


def test_content_parts_get_switch_part(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)
    parts = [{"role": "user", "content": [{"type": "text", "text": "요약해 주세요"}]}]

    list(client.stream_events(parts, thinking=True))

    sent = fake_tgi.chat_requests()[-1].body["messages"][-1]["content"]
    assert sent == [{"type": "text", "text": "요약해 주세요"}, {"type": "text", "text": "/think"}]
    # The caller's messages are not modified.
    assert parts[0]["content"] == [{"type": "text", "text": "요약해 주세요"}]
