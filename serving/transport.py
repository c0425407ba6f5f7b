"""Send one streaming chat request and yield its parsed events, with a stall timeout.

The request goes through huggingface_hub's shared httpx2 client, so connections are pooled
and `serving.hub_offline` can let it pass offline mode. Every failure leaves as a
`serving.errors.ModelServerError` subclass without partial text. The caller fills that in,
because it tracks what it already showed.

A stream stalls when no token (answer or reasoning text) arrives for `stall_timeout` seconds,
counted from the request's start. Two mechanisms enforce it, because TGI sends an SSE
keep-alive comment every 15 s while a request waits, and a socket read timeout alone would
never fire on such a stream: the read timeout catches a server that sends nothing at all,
and a clock check at every line catches one that sends only keep-alives or empty chunks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx2
from huggingface_hub.utils import get_session, hf_raise_for_status

from serving.error_mapping import TRANSLATED_ERRORS, translate_error
from serving.errors import ModelServerError, ModelServerTimeout, ModelStreamError
from serving.sse import ChatStreamChunk, InvalidStreamEvent, SseDecoder, parse_chat_event

logger = logging.getLogger(__name__)


def stall_error(base_url: str, stall_timeout: float) -> ModelServerTimeout:
    return ModelServerTimeout(
        f"model server at {base_url} sent no token for {stall_timeout:g} s, so the stream was abandoned: "
        "check the server's load and log, or raise VERACLAIM_MODEL_STALL_TIMEOUT_S "
        "(it defaults to VERACLAIM_MODEL_TIMEOUT_S)",
        base_url=base_url,
    )


def stream_chat_chunks(
    url: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, str],
    base_url: str,
    model: str,
    timeout: float,
    stall_timeout: float,
) -> Iterator[ChatStreamChunk]:
    """POST `payload` to `url` with `stream: true` and yield one chunk per event.

    Yields error events as chunks too; the caller decides what they mean. Raises
    `ModelServerTimeout` when the stream stalls, and the translated error of every HTTP or
    transport failure. Closing the generator closes the connection.
    """
    # Socket reads wait at most the stall timeout, so a silent server is caught in time.
    http_timeout = httpx2.Timeout(timeout, read=min(timeout, stall_timeout))
    started = time.monotonic()
    last_token = started

    try:
        with get_session().stream("POST", url, json=payload, headers=headers, timeout=http_timeout) as response:
            # 1. A status other than 200: read the body, which contains the server's message.
            if response.status_code != 200:
                response.read()
                hf_raise_for_status(response)

            # 2. The events. Every line, keep-alive comments included, is a chance to notice
            #    that tokens stopped although the connection lives.
            decoder = SseDecoder()
            for line in response.iter_lines():
                if time.monotonic() - last_token > stall_timeout:
                    raise stall_error(base_url, stall_timeout)
                data = decoder.feed_line(line)
                if data is None:
                    continue
                chunk = _parse(data, base_url)
                if chunk.content or chunk.reasoning:
                    last_token = time.monotonic()
                yield chunk
                if chunk.done:
                    return

            # 3. A last event without its blank line still counts.
            data = decoder.close()
            if data is not None:
                yield _parse(data, base_url)
    except ModelServerError:
        raise
    except httpx2.ReadTimeout as error:
        # The read timeout is the stall timeout (see above), so a timed-out read is a stall.
        raise stall_error(base_url, stall_timeout) from error
    except TRANSLATED_ERRORS as error:
        logger.debug("chat request to %s failed: %r", url, error)
        raise translate_error(error, base_url=base_url, model=model, timeout=timeout) from error


def _parse(data: str, base_url: str) -> ChatStreamChunk:
    try:
        return parse_chat_event(data)
    except InvalidStreamEvent as error:
        raise ModelStreamError(
            f"model server at {base_url} sent an invalid stream event ({error}): "
            "check that the base URL points to an OpenAI-compatible /v1 API",
            base_url=base_url,
        ) from error


def error_event_to_exception(chunk: ChatStreamChunk, base_url: str) -> ModelStreamError:
    """Return the error to raise for an error event inside a 200 stream."""
    if chunk.error is None:
        raise ValueError("chunk carries no error event")
    error_type = chunk.error.error_type
    return ModelStreamError(
        f"model server at {base_url} reported an error during the stream "
        f"({error_type or 'unknown type'}): {chunk.error.message}",
        base_url=base_url,
        error_type=error_type,
        server_message=chunk.error.message,
    )
