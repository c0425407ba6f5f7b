"""Translate huggingface_hub and httpx2 exceptions into the errors of `serving.errors`.

huggingface_hub 2.4 sends requests with httpx2, not requests, so no `requests` exception
reaches this module. TGI's OpenAPI spec (3.3.6-dev0) documents these statuses for the chat
route: 422 for invalid input, 424 for a failed generation, 429 when overloaded and 500 for
an incomplete generation. A 502, 503 or 504 comes from a proxy or load balancer in front of
the server, or from a server that is still loading the model.
"""

from __future__ import annotations

import json

import httpx2
from huggingface_hub.errors import (
    GenerationError,
    HfHubHTTPError,
    IncompleteGenerationError,
    InferenceTimeoutError,
    OfflineModeIsEnabled,
    OverloadedError,
    TextGenerationError,
    ValidationError,
)

from serving.errors import (
    START_HINT,
    ModelServerError,
    ModelServerRejected,
    ModelServerTimeout,
    ModelServerUnavailable,
    ModelStreamError,
)

# Exceptions that `translate_error` maps. Anything else is a bug and propagates unchanged.
TRANSLATED_ERRORS = (httpx2.HTTPError, OfflineModeIsEnabled, json.JSONDecodeError)

# TGI's `error_type` values, by the huggingface_hub class that each one becomes.
_STREAM_ERROR_TYPES: dict[type[TextGenerationError], str] = {
    ValidationError: "validation",
    GenerationError: "generation",
    OverloadedError: "overloaded",
    IncompleteGenerationError: "incomplete_generation",
}

UNAVAILABLE_STATUSES = {429, 502, 503}
TIMEOUT_STATUSES = {408, 504}

# Maximum length in characters of a server message kept in an error. An HTML error page can be large.
MAX_SERVER_MESSAGE = 1000


def translate_error(
    error: BaseException,
    *,
    base_url: str,
    model: str,
    timeout: float | None = None,
    partial_text: str = "",
) -> ModelServerError:
    """Return the `ModelServerError` that describes `error`, for the caller to raise.

    `partial_text` is the answer text streamed before the error, kept on the result.
    """
    details = {"base_url": base_url, "partial_text": partial_text}

    # 1. An error event inside a 200 stream, which huggingface_hub raises as TextGenerationError.
    if isinstance(error, TextGenerationError):
        error_type = _STREAM_ERROR_TYPES.get(type(error))
        message = str(error)
        return ModelStreamError(
            f"model server at {base_url} reported an error during the stream "
            f"({error_type or 'unknown type'}): {message}",
            error_type=error_type,
            server_message=message,
            **details,
        )

    if isinstance(error, json.JSONDecodeError):
        return ModelStreamError(
            f"model server at {base_url} sent a stream event that is not valid JSON ({error}): "
            "check that the base URL points to an OpenAI-compatible /v1 API",
            **details,
        )

    # 2. A timeout, or an HTTP status other than 200. Timeouts come before the other checks
    #    because InferenceTimeoutError is also an httpx2.HTTPError, and TimeoutException
    #    also an httpx2.TransportError.
    if isinstance(error, InferenceTimeoutError | httpx2.TimeoutException):
        return _timeout(base_url, timeout, details)
    if isinstance(error, HfHubHTTPError):
        return _from_status(error, base_url=base_url, model=model, timeout=timeout, details=details)

    # 3. No usable connection: refused, reset, dropped mid-stream, or blocked offline.
    if isinstance(error, OfflineModeIsEnabled):
        return ModelServerUnavailable(
            f"huggingface_hub offline mode blocked the request to {base_url} ({error}): "
            "create the client through serving.client.ChatClient, which allows its server",
            **details,
        )
    if isinstance(error, httpx2.TransportError):
        return ModelServerUnavailable(
            f"model server at {base_url} is unreachable ({type(error).__name__}: {error}): {START_HINT}",
            **details,
        )
    return ModelServerError(f"request to the model server at {base_url} failed: {error}", **details)


def _timeout(base_url: str, timeout: float | None, details: dict, status_text: str = "") -> ModelServerTimeout:
    limit = f"within {timeout:g} s" if timeout is not None else "in time"
    cause = f" ({status_text})" if status_text else ""
    return ModelServerTimeout(
        f"model server at {base_url} did not respond {limit}{cause}: raise VERACLAIM_MODEL_TIMEOUT_S "
        "or check the server's load",
        **details,
    )


def _from_status(
    error: HfHubHTTPError, *, base_url: str, model: str, timeout: float | None, details: dict
) -> ModelServerError:
    status = error.response.status_code
    server_message = server_message_of(error)
    status_text = f"HTTP {status}: {server_message}" if server_message else f"HTTP {status}"
    details = {**details, "server_message": server_message, "status_code": status}

    if status in TIMEOUT_STATUSES:
        return _timeout(base_url, timeout, details, status_text)
    if status in UNAVAILABLE_STATUSES:
        return ModelServerUnavailable(
            f"model server at {base_url} is unavailable ({status_text}): it may be overloaded or still "
            f"loading the model, so retry later, or {START_HINT}",
            **details,
        )
    # TGI returns 424 when generation itself failed, which no change to the request fixes.
    if 400 <= status < 500 and status != 424:
        return ModelServerRejected(
            f"model server at {base_url} rejected the request ({status_text}): {_rejection_hint(status, model)}",
            **details,
        )
    return ModelServerError(f"model server at {base_url} failed ({status_text})", **details)


def _rejection_hint(status: int, model: str) -> str:
    if status in (401, 403):
        return "set VERACLAIM_MODEL_API_KEY to a key that the server accepts"
    if status == 404:
        return f"check that the base URL ends with /v1 and that the server serves model {model!r}"
    if status == 422:
        # TGI also returns 422 when input tokens plus max_tokens exceed its max_total_tokens.
        return "fix the request as the message says, and for a token limit shorten the prompt or lower max_tokens"
    return f"check the request, and that VERACLAIM_MODEL_ID ({model!r}) is an id that the server's /v1/models lists"


def server_message_of(error: HfHubHTTPError) -> str | None:
    """Return the error text from the response body: TGI's `error`, FastAPI's `detail`, or the raw text."""
    try:
        text = error.response.text
    except (httpx2.HTTPError, httpx2.StreamError):
        # The body of a streamed response may be unread or its connection already gone.
        text = ""
    if not text:
        return error.server_message

    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip()[:MAX_SERVER_MESSAGE] or error.server_message

    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            value = payload.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                return str(value)[:MAX_SERVER_MESSAGE]
    return text.strip()[:MAX_SERVER_MESSAGE]
