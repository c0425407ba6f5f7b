"""Streaming chat client for any OpenAI-compatible model server.

One code path serves TGI's `/v1/chat/completions`, vLLM and `transformers serve`. It sends
requests through huggingface_hub's shared httpx2 client and parses the stream itself
(`serving.sse`). `InferenceClient.chat_completion` hides what the client needs: the SSE
keep-alive comments for the stall timeout, the `reasoning_content` deltas of vLLM and
`transformers serve`, and the usage chunk. Every failure leaves this
module as a `serving.errors.ModelServerError` subclass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from huggingface_hub.utils import get_session, hf_raise_for_status

from serving.error_mapping import TRANSLATED_ERRORS, translate_error
from serving.errors import ModelServerError
from serving.health import HealthProbe, probe_health, wait_until_healthy
from serving.hub_offline import allow_model_server
from serving.retry import NO_RETRY, RetryPolicy
from serving.sampling import apply_thinking_switch, sampling_for
from serving.stream import ChatStream
from serving.transport import stream_chat_chunks

logger = logging.getLogger(__name__)

Message = dict[str, Any]


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
    rejects a request whose model differs from the one it preloaded. `timeout` bounds the
    connection, `stall_timeout` (default: `timeout`) the wait for each token, and `retry`
    the retries while the server is unavailable before the first token (default: none).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        stall_timeout: float | None = None,
        retry: RetryPolicy = NO_RETRY,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must be the served model's id, got an empty string")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        if stall_timeout is not None and stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be positive seconds, got {stall_timeout!r}")

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.stall_timeout = stall_timeout or timeout
        self.retry = retry
        self._api_key = api_key
        allow_model_server(self.base_url)

    def __repr__(self) -> str:
        return (
            f"ChatClient(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout!r}, "
            f"stall_timeout={self.stall_timeout!r})"
        )

    def stream_events(
        self,
        messages: Sequence[Message],
        *,
        thinking: bool | None = None,
        max_tokens: int = 512,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: list[str] | None = None,
    ) -> ChatStream:
        """Start one chat request and return its stream of reasoning, answer and status events.

        `thinking=True` or `False` adds Qwen3's `/think` or `/no_think` switch to the last
        user message and uses Qwen3's recommended sampling for that mode; `None` sends the
        messages unchanged (for models without the switch). `temperature` and `top_p`
        override the mode's sampling. Nothing is sent until the stream is iterated.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens!r}")
        sampling = sampling_for(thinking, temperature=temperature, top_p=top_p)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": apply_thinking_switch(messages, thinking),
            "stream": True,
            # TGI, vLLM and `transformers serve` then report token counts at the end.
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            **sampling.request_fields(),
        }
        if stop:
            request["stop"] = list(stop)

        def open_attempt() -> Iterator:
            return stream_chat_chunks(
                f"{self.base_url}/chat/completions",
                request,
                headers=self._headers(),
                base_url=self.base_url,
                model=self.model,
                timeout=self.timeout,
                stall_timeout=self.stall_timeout,
            )

        return ChatStream(
            open_attempt,
            base_url=self.base_url,
            request=request,
            thinking=thinking,
            retry=self.retry,
            probe=lambda timeout: probe_health(self.base_url, timeout=timeout, api_key=self._api_key),
        )

    def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.3,
        top_p: float | None = None,
        stop: list[str] | None = None,
        thinking: bool | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text deltas as the server streams them, without any reasoning.

        Raises a `ModelServerError` subclass. An error after the first delta carries the answer
        text received so far in `partial_text`. Closing the generator early closes the connection.
        """
        stream = self.stream_events(
            messages, thinking=thinking, max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop
        )
        with stream:
            for event in stream:
                if event.kind == "answer":
                    yield event.text

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

    def check_health(self, timeout: float = 5.0) -> HealthProbe:
        """Send one `GET /health` to the server and return the result."""
        return probe_health(self.base_url, timeout=timeout, api_key=self._api_key)

    def wait_ready(self, timeout: float, *, interval: float = 2.0) -> HealthProbe:
        """Wait until the server's `/health` returns 200, logging each probe that is not ready."""
        return wait_until_healthy(self.base_url, timeout=timeout, interval=interval, api_key=self._api_key)

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}

