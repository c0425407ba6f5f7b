"""ChatClient against the real `transformers serve` with SmolLM2-135M-Instruct.

SmolLM2-135M is far too small to answer well, so these tests check the streaming contract,
not the quality of the answers. `test_stream_speed_is_measured` prints time to first token
and tokens per second (run pytest with -s to see them).
"""

from __future__ import annotations

import time

import pytest

from serving.client import ChatClient, list_served_models
from serving.errors import ModelServerRejected
from serving.local_server import LocalServer

pytestmark = pytest.mark.slow

ENGLISH_QUESTION = [{"role": "user", "content": "What is a patent claim? Answer in one sentence."}]
KOREAN_QUESTION = [{"role": "user", "content": "특허 청구항이란 무엇인가요? 한 문장으로 답하세요."}]


@pytest.fixture
def client(local_model_server: LocalServer) -> ChatClient:
    return ChatClient(local_model_server.base_url, local_model_server.model_id, timeout=120)


def test_stream_returns_nonempty_english_answer(client: ChatClient) -> None:
    deltas = list(client.stream_chat(ENGLISH_QUESTION, max_tokens=40))

    assert len(deltas) > 1
    assert all(isinstance(delta, str) and delta for delta in deltas)
    assert "".join(deltas).strip()


def test_stream_returns_nonempty_korean_answer(client: ChatClient) -> None:
    answer = "".join(client.stream_chat(KOREAN_QUESTION, max_tokens=40))

    assert answer.strip()
    # Byte-level tokens of Hangul must reach the caller as whole characters.
    assert "\ufffd" not in answer


def test_greedy_stream_concatenates_to_complete_answer(client: ChatClient) -> None:
    # temperature=0 makes `transformers serve` decode greedily, so both calls agree.
    deltas = list(client.stream_chat(ENGLISH_QUESTION, max_tokens=30, temperature=0))
    complete = client.complete_chat(ENGLISH_QUESTION, max_tokens=30, temperature=0)

    assert "".join(deltas) == complete
    assert complete.strip()


def test_closing_stream_early_leaves_server_usable(client: ChatClient) -> None:
    stream = client.stream_chat(ENGLISH_QUESTION, max_tokens=200)
    first = next(stream)
    stream.close()

    assert first
    assert client.complete_chat(ENGLISH_QUESTION, max_tokens=5).strip()


def test_served_model_id_is_listed(local_model_server: LocalServer) -> None:
    assert list_served_models(local_model_server.base_url) == [local_model_server.model_id]


def test_wrong_model_id_is_rejected(local_model_server: LocalServer) -> None:
    client = ChatClient(local_model_server.base_url, "HuggingFaceTB/another-model")

    with pytest.raises(ModelServerRejected) as caught:
        client.complete_chat(ENGLISH_QUESTION, max_tokens=5)

    assert caught.value.status_code == 400
    # The server's own words name the model it serves.
    assert local_model_server.model_id in str(caught.value)


def test_stream_speed_is_measured(client: ChatClient, record_property: pytest.RecordProperty) -> None:
    started = time.monotonic()
    first_delta_s = None
    deltas = 0
    for _ in client.stream_chat(ENGLISH_QUESTION, max_tokens=64, temperature=0):
        if first_delta_s is None:
            first_delta_s = time.monotonic() - started
        deltas += 1
    total_s = time.monotonic() - started

    # One delta per generated token for English text with this tokenizer.
    rate = (deltas - 1) / (total_s - first_delta_s) if deltas > 1 else 0.0
    record_property("time_to_first_token_s", round(first_delta_s, 3))
    record_property("tokens_per_s", round(rate, 1))
    print(f"\nlocal model: first token after {first_delta_s:.2f} s, {rate:.1f} tokens/s over {deltas} tokens")

    assert deltas > 1
    # Generous bound: a loaded 2-core machine still delivers the first token within seconds.
    assert first_delta_s < 30
