"""Streaming chat client for any OpenAI-compatible model server.

One code path serves TGI's `/v1/chat/completions`, vLLM and `transformers serve`: all of
them are reached through `huggingface_hub.InferenceClient(base_url=...)`. Every failure
leaves this module as a `serving.errors.ModelServerError` subclass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from huggingface_hub import InferenceClient
from huggingface_hub.inference._generated.types import ChatCompletionStreamOutput
from huggingface_hub.utils import get_session, hf_raise_for_status

from serving.error_mapping import TRANSLATED_ERRORS, translate_error
from serving.errors import ModelServerError, ModelStreamError
from serving.hub_offline import allow_model_server

logger = logging.getLogger(__name__)

Message = dict[str, Any]


def chunk_text(chunk: ChatCompletionStreamOutput) -> str:
    """Return the answer text that one stream chunk adds, or "" for role, usage and final chunks."""
    if not chunk.choices:
        return ""
    return chunk.choices[0].delta.content or ""


def chunk_finish_reason(chunk: ChatCompletionStreamOutput) -> str | None:
    """Return why generation stopped (`stop`, `length`, ...), or None until the last chunk."""
    if not chunk.choices:
        return None
    return chunk.choices[0].finish_reason


def list_served_models(base_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> list[str]:
    """Return the model ids that the server's /v1/models lists.

    OpenAI-compatible servers return `{"data": [{"id": ...}]}`, and TGI returns one
    `{"id": ...}` object.
    """
    base_url = base_url.rstrip("/")
    allow_model_server(base_url)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = get_session().get(f"{base_url}/models", headers=headers, timeout=timeout)
        hf_raise_for_status(response)
    except TRANSLATED_ERRORS as error:
        raise translate_error(error, base_url=base_url, model="", timeout=timeout) from error

    try:
        payload = response.json()
    except ValueError as error:
        raise ModelServerError(
            f"{base_url}/models did not return JSON ({error}): check that the base URL ends with /v1",
            base_url=base_url,
        ) from error
    entries = payload.get("data", [payload]) if isinstance(payload, dict) else []
    return [entry["id"] for entry in entries if isinstance(entry, dict) and entry.get("id")]


class ChatClient:
    """Send chat requests to one model server and stream the answers.

    `model` is sent as the request's `model` field. TGI ignores it, while `transformers serve`
    rejects a request whose model differs from the one it preloaded.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must be the served model's id, got an empty string")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key
        allow_model_server(self.base_url)

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout!r})"

    def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.3,
        top_p: float | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text deltas as the server streams them.

        Raises a `ModelServerError` subclass. An error after the first delta carries the text
        received so far in `partial_text`. Closing the generator early closes the connection.
        """
        # NOTE: no retries or backoff yet. A caller that wants them can retry on
        # ModelServerUnavailable, but only while no delta has been yielded.
        received: list[str] = []
        started = time.monotonic()
        first_delta_s: float | None = None
        finish_reason: str | None = None

        # A fresh InferenceClient per request, because it keeps every streamed response open
        # until it is closed, and closing it here releases the connection even when the
        # caller stops reading early. HTTP connections are pooled by huggingface_hub anyway.
        with self._inference_client() as client:
            try:
                stream = client.chat_completion(
                    list(messages),
                    model=self.model,
                    stream=True,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    stop=stop,
                )
                for chunk in stream:
                    finish_reason = chunk_finish_reason(chunk) or finish_reason
                    text = chunk_text(chunk)
                    if not text:
                        continue
                    if first_delta_s is None:
                        first_delta_s = time.monotonic() - started
                    received.append(text)
                    yield text
            except TRANSLATED_ERRORS as error:
                translated = translate_error(
                    error,
                    base_url=self.base_url,
                    model=self.model,
                    timeout=self.timeout,
                    partial_text="".join(received),
                )
                logger.debug("chat request to %s failed after %d deltas: %r", self.base_url, len(received), error)
                raise translated from error

        # OpenAI-compatible servers, TGI among them, set finish_reason on the last chunk. A
        # stream without one was cut short, and its text must not pass as a whole answer.
        if finish_reason is None:
            logger.warning("chat stream from %s ended without a finish reason", self.base_url)
            raise ModelStreamError(
                f"model server at {self.base_url} ended the stream before it sent a finish reason, "
                "so the answer may be cut short: check the server's log",
                base_url=self.base_url,
                partial_text="".join(received),
            )

        logger.debug(
            "chat stream from %s finished (%s): %d deltas, first after %s s, total %.2f s",
            self.base_url,
            finish_reason,
            len(received),
            f"{first_delta_s:.2f}" if first_delta_s is not None else "-",
            time.monotonic() - started,
        )

    def complete_chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.3,
        top_p: float | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """Return the whole answer. It streams underneath, so errors match `stream_chat`'s."""
        deltas = self.stream_chat(messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop)
        return "".join(deltas)

    def _inference_client(self) -> InferenceClient:
        # Without an API key, InferenceClient would send the machine's Hugging Face token
        # (HF_TOKEN or the cached login) to whatever server base_url names. A None header
        # value removes that header from the request.
        headers = {} if self._api_key else {"authorization": None}
        return InferenceClient(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, headers=headers)
