"""ChatClient against a fake TGI server: request shape, streaming, and every failure mode.

The `fake_tgi` fixture (conftest.py) is a real HTTP server whose responses follow TGI's
OpenAPI spec, and it checks them against the spec at teardown.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from serving.client import ChatClient, list_served_models
from serving.errors import (
    ModelServerError,
    ModelServerRejected,
    ModelServerTimeout,
    ModelServerUnavailable,
    ModelStreamError,
)

QUESTION = [{"role": "user", "content": "청구항 1의 구성요소를 요약해 주세요."}]

# TGI's 422 body when the prompt and max_tokens exceed max_total_tokens (router validation).
TGI_422_MESSAGE = (
    "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
    "Given: 3900 `inputs` tokens and 512 `max_new_tokens`"
)


def closed_port_url() -> str:
    # Bind and close, so nothing listens on the port during the test.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_stream_yields_deltas_in_order(fake_tgi) -> None:
    fake_tgi.queue(deltas=["청구항 1은 ", "세 가지 ", "구성요소를 포함합니다."])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    deltas = list(client.stream_chat(QUESTION))

    assert deltas == ["청구항 1은 ", "세 가지 ", "구성요소를 포함합니다."]


def test_complete_chat_joins_deltas(fake_tgi) -> None:
    fake_tgi.queue(deltas=["A ", "claim ", "defines scope."])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    assert client.complete_chat(QUESTION) == "A claim defines scope."


def test_request_carries_model_and_sampling(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    client.complete_chat(QUESTION, max_tokens=64, temperature=0.2, top_p=0.9, stop=["\n\n"])

    request = fake_tgi.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == fake_tgi.model_id
    assert request.body["messages"] == QUESTION
    assert request.body["stream"] is True
    assert request.body["max_tokens"] == 64
    assert request.body["temperature"] == 0.2
    assert request.body["top_p"] == 0.9
    assert request.body["stop"] == ["\n\n"]


def test_no_hub_token_sent_without_api_key(fake_tgi, monkeypatch: pytest.MonkeyPatch) -> None:
    # InferenceClient falls back to the machine's Hugging Face token, which must not leak
    # to a third-party model server.
    monkeypatch.setenv("HF_TOKEN", "hf_should_never_leave_this_machine")
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    client.complete_chat(QUESTION)

    assert "authorization" not in fake_tgi.requests[-1].headers


def test_api_key_sent_as_bearer_token(fake_tgi) -> None:
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, api_key="runpod-key-123")

    client.complete_chat(QUESTION)

    assert fake_tgi.requests[-1].headers["authorization"] == "Bearer runpod-key-123"


def test_connection_refused_is_unavailable() -> None:
    url = closed_port_url()
    client = ChatClient(url, "Qwen/Qwen3-8B")

    with pytest.raises(ModelServerUnavailable) as caught:
        client.complete_chat(QUESTION)

    assert isinstance(caught.value, ConnectionError)
    assert url in str(caught.value)
    assert "veraclaim-serve local" in str(caught.value)
    assert caught.value.base_url == url


def test_error_event_in_stream_keeps_partial_text(fake_tgi) -> None:
    fake_tgi.queue(
        deltas=["청구항 1은 ", "세 가지"],
        error_event={"error": "Request failed during generation: CUDA out of memory", "error_type": "generation"},
    )
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)
    received: list[str] = []

    with pytest.raises(ModelStreamError) as caught:
        for delta in client.stream_chat(QUESTION):
            received.append(delta)

    assert received == ["청구항 1은 ", "세 가지"]
    assert caught.value.partial_text == "청구항 1은 세 가지"
    assert caught.value.error_type == "generation"
    assert "CUDA out of memory" in str(caught.value)
    assert fake_tgi.base_url in str(caught.value)


def test_422_validation_is_rejected_with_server_text(fake_tgi) -> None:
    fake_tgi.queue(status=422, body={"error": TGI_422_MESSAGE, "error_type": "validation"})
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ModelServerRejected) as caught:
        client.complete_chat(QUESTION)

    assert isinstance(caught.value, ValueError)
    assert caught.value.status_code == 422
    assert caught.value.server_message == TGI_422_MESSAGE
    assert TGI_422_MESSAGE in str(caught.value)
    assert caught.value.partial_text == ""


# Each row: the status, the body the fake sends with it, and the error class it must become.
STATUS_CASES = [
    # A load balancer or RunPod with no ready worker.
    (503, "no healthy upstream", ModelServerUnavailable),
    # TGI's queue is full.
    (429, {"error": "Model is overloaded", "error_type": "overloaded"}, ModelServerUnavailable),
    # A gateway in front of the server gave up waiting.
    (504, "upstream request timeout", ModelServerTimeout),
    # A missing or wrong API key.
    (401, {"error": "Unauthorized", "error_type": "authentication"}, ModelServerRejected),
    # TGI's generation failed before the stream began.
    (424, {"error": "Request failed during generation", "error_type": "generation"}, ModelServerError),
]


@pytest.mark.parametrize(("status", "body", "error_class"), STATUS_CASES)
def test_http_status_maps_to_error_class(
    fake_tgi, status: int, body: dict[str, Any] | str, error_class: type[ModelServerError]
) -> None:
    fake_tgi.queue(status=status, body=body)
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(error_class) as caught:
        client.complete_chat(QUESTION)

    assert type(caught.value) is error_class
    assert caught.value.status_code == status
    assert f"HTTP {status}" in str(caught.value)
    assert fake_tgi.base_url in str(caught.value)


def test_503_message_names_the_fix(fake_tgi) -> None:
    fake_tgi.queue(status=503, body="no healthy upstream")
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ModelServerUnavailable) as caught:
        client.complete_chat(QUESTION)

    assert "no healthy upstream" in str(caught.value)
    assert "VERACLAIM_MODEL_BASE_URL" in str(caught.value)


def test_stalled_stream_times_out_with_partial_text(fake_tgi) -> None:
    fake_tgi.queue(deltas=["first part"], stall_s=3.0)
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, timeout=0.5)

    with pytest.raises(ModelServerTimeout) as caught:
        client.complete_chat(QUESTION)

    assert isinstance(caught.value, TimeoutError)
    assert caught.value.partial_text == "first part"
    assert "VERACLAIM_MODEL_TIMEOUT_S" in str(caught.value)


def test_dropped_stream_is_unavailable_with_partial_text(fake_tgi) -> None:
    fake_tgi.queue(deltas=["first ", "second"], drop=True)
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ModelServerUnavailable) as caught:
        client.complete_chat(QUESTION)

    assert caught.value.partial_text == "first second"


def test_stream_without_finish_reason_is_stream_error(fake_tgi) -> None:
    fake_tgi.queue(deltas=["cut ", "short"], finish_reason=None)
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ModelStreamError) as caught:
        client.complete_chat(QUESTION)

    assert caught.value.partial_text == "cut short"
    assert "finish reason" in str(caught.value)


def test_invalid_json_event_is_stream_error(fake_tgi) -> None:
    fake_tgi.queue(deltas=["before "], raw_events=["data: {not json\n\n"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ModelStreamError) as caught:
        client.complete_chat(QUESTION)

    assert caught.value.partial_text == "before "
    assert "not valid JSON" in str(caught.value)


def test_length_finish_reason_is_a_complete_stream(fake_tgi) -> None:
    fake_tgi.queue(deltas=["truncated by max_tokens"], finish_reason="length")
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    assert client.complete_chat(QUESTION) == "truncated by max_tokens"


def test_list_models_reads_tgi_single_object(fake_tgi) -> None:
    assert list_served_models(fake_tgi.base_url) == [fake_tgi.model_id]


def test_list_models_reads_openai_list(fake_tgi) -> None:
    # The shape that `transformers serve` and vLLM return. ModelInfo is TGI's single
    # object, so the fake's spec check does not apply to this payload.
    fake_tgi.models_response = {"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "b"}]}

    assert list_served_models(fake_tgi.base_url) == ["a", "b"]
    fake_tgi.sent.clear()


def test_list_models_on_closed_port_is_unavailable() -> None:
    with pytest.raises(ModelServerUnavailable):
        list_served_models(closed_port_url())


# Each row: constructor arguments that ChatClient must reject.
INVALID_CLIENT_ARGUMENTS = [
    # No scheme, so InferenceClient would treat it as a Hub model id.
    ({"base_url": "127.0.0.1:8000/v1", "model": "m"}),
    # An empty model id is sent as-is and rejected by `transformers serve`.
    ({"base_url": "http://127.0.0.1:8000/v1", "model": ""}),
    # A zero timeout would fail every request.
    ({"base_url": "http://127.0.0.1:8000/v1", "model": "m", "timeout": 0}),
]


@pytest.mark.parametrize("arguments", INVALID_CLIENT_ARGUMENTS)
def test_client_rejects_invalid_arguments(arguments: dict) -> None:
    with pytest.raises(ValueError):
        ChatClient(**arguments)
