"""translate_error and server_message_of with real huggingface_hub and httpx2 exceptions."""

from __future__ import annotations

import json

import httpx2
import pytest
from huggingface_hub.errors import (
    GenerationError,
    HfHubHTTPError,
    IncompleteGenerationError,
    OfflineModeIsEnabled,
    OverloadedError,
    UnknownError,
    ValidationError,
)
from huggingface_hub.utils import hf_raise_for_status

from serving.error_mapping import server_message_of, translate_error
from serving.errors import (
    ModelServerError,
    ModelServerRejected,
    ModelServerTimeout,
    ModelServerUnavailable,
    ModelStreamError,
)

BASE_URL = "http://127.0.0.1:8000/v1"


def http_error(status: int, body: str, content_type: str = "application/json") -> HfHubHTTPError:
    """Return the HfHubHTTPError that huggingface_hub raises for this response."""
    request = httpx2.Request("POST", f"{BASE_URL}/chat/completions")
    response = httpx2.Response(status, content=body.encode(), headers={"content-type": content_type}, request=request)
    with pytest.raises(HfHubHTTPError) as caught:
        hf_raise_for_status(response)
    return caught.value


def translate(error: BaseException, partial_text: str = "") -> ModelServerError:
    return translate_error(error, base_url=BASE_URL, model="served-model", timeout=30, partial_text=partial_text)


# Each row: a TGI stream error as huggingface_hub raises it, and the error_type to expect.
STREAM_ERRORS = [
    # The model failed mid-generation, e.g. out of GPU memory.
    (GenerationError("CUDA out of memory"), "generation"),
    # Validation that TGI only runs once the stream has begun.
    (ValidationError("top_n_tokens too large"), "validation"),
    # The queue filled up.
    (OverloadedError("Model is overloaded"), "overloaded"),
    # The shard died before the end.
    (IncompleteGenerationError("Incomplete generation"), "incomplete_generation"),
    # An error_type that huggingface_hub does not know.
    (UnknownError("something new"), None),
]


@pytest.mark.parametrize(("error", "error_type"), STREAM_ERRORS)
def test_stream_error_keeps_type_and_text(error: Exception, error_type: str | None) -> None:
    translated = translate(error, partial_text="partial")

    assert isinstance(translated, ModelStreamError)
    assert translated.error_type == error_type
    assert translated.partial_text == "partial"
    assert str(error) in str(translated)


# Each row: status, body, expected class, text the server message must contain.
STATUS_ERRORS = [
    # FastAPI's error body, as `transformers serve` sends it.
    (400, json.dumps({"detail": "Server is pinned to '/m'; requested 'x'."}), ModelServerRejected, "pinned"),
    # TGI's validation body.
    (422, json.dumps({"error": "Input validation error", "error_type": "validation"}), ModelServerRejected, "Input"),
    # A wrong path: the base URL lacks /v1.
    (404, json.dumps({"detail": "Not Found"}), ModelServerRejected, "Not Found"),
    # A plain-text gateway error.
    (502, "Bad Gateway", ModelServerUnavailable, "Bad Gateway"),
    # A request timeout from a proxy.
    (408, "Request Timeout", ModelServerTimeout, "Request Timeout"),
    # TGI's incomplete generation.
    (
        500,
        json.dumps({"error": "Incomplete generation", "error_type": "incomplete_generation"}),
        ModelServerError,
        "Incomplete",
    ),
]


@pytest.mark.parametrize(("status", "body", "error_class", "message_part"), STATUS_ERRORS)
def test_status_error_maps_with_server_message(
    status: int, body: str, error_class: type[ModelServerError], message_part: str
) -> None:
    content_type = "application/json" if body.startswith("{") else "text/plain"

    translated = translate(http_error(status, body, content_type))

    assert type(translated) is error_class
    assert translated.status_code == status
    assert message_part in translated.server_message
    assert BASE_URL in str(translated)


def test_404_hint_names_v1_suffix() -> None:
    translated = translate(http_error(404, json.dumps({"detail": "Not Found"})))

    assert "/v1" in str(translated)


def test_401_hint_names_api_key_setting() -> None:
    translated = translate(http_error(401, json.dumps({"error": "Unauthorized"})))

    assert "VERACLAIM_MODEL_API_KEY" in str(translated)


def test_long_html_body_is_shortened() -> None:
    error = http_error(500, "<html>" + "x" * 5000 + "</html>", "text/html")

    assert len(server_message_of(error)) <= 1000


# Each row: a transport-level exception and the class it must become.
TRANSPORT_ERRORS = [
    # Nothing listens on the port.
    (httpx2.ConnectError("Connection refused"), ModelServerUnavailable),
    # The server closed the connection mid-stream.
    (httpx2.RemoteProtocolError("peer closed connection"), ModelServerUnavailable),
    # The server stopped sending chunks.
    (httpx2.ReadTimeout("timed out"), ModelServerTimeout),
    # Offline mode blocked a request that allow_model_server did not cover.
    (OfflineModeIsEnabled("Cannot reach http://127.0.0.1:8000"), ModelServerUnavailable),
]


@pytest.mark.parametrize(("error", "error_class"), TRANSPORT_ERRORS)
def test_transport_error_maps_to_class(error: Exception, error_class: type[ModelServerError]) -> None:
    translated = translate(error, partial_text="so far")

    assert type(translated) is error_class
    assert translated.partial_text == "so far"
    assert BASE_URL in str(translated)


def test_timeout_message_names_limit_and_setting() -> None:
    translated = translate(httpx2.ReadTimeout("timed out"))

    assert "30 s" in str(translated)
    assert "VERACLAIM_MODEL_TIMEOUT_S" in str(translated)
