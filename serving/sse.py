"""Parse the server-sent events of an OpenAI-compatible chat stream, as pure functions.

`SseDecoder` turns lines into events (the `text/event-stream` format: `data:` lines, a
blank line ends an event, lines starting with `:` are comments such as TGI's keep-alives).
`parse_chat_event` turns one event's data into a `ChatStreamChunk`. Neither does any I/O,
so both are tested with lists of raw lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

DONE_DATA = "[DONE]"


@dataclass(frozen=True)
class Usage:
    """Token counts that the server reported for one request."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class StreamErrorEvent:
    """An error event inside a 200 stream: TGI sends `{"error": "...", "error_type": "..."}`."""

    message: str
    error_type: str | None


@dataclass(frozen=True)
class ChatStreamChunk:
    """What one stream event carries. Every field is empty for role-only and keep-alive events."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    error: StreamErrorEvent | None = None
    done: bool = False


class InvalidStreamEvent(ValueError):
    """A stream event that is not valid JSON or not a chat completion chunk."""


class SseDecoder:
    """Assemble server-sent events from lines, one line at a time.

    `feed_line` returns the data of an event when a blank line completes it, else None.
    Comment lines return None too, and `comments` counts them, so a caller can tell that the
    server is alive while it sends no token.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self.comments = 0

    def feed_line(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None

        field, _, value = line.partition(":")
        # One space after the colon belongs to the syntax, not the value.
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        # `event`, `id` and `retry` carry nothing that a chat stream uses.
        return None

    def close(self) -> str | None:
        """Return the last event's data if the stream ended without the final blank line."""
        return self._dispatch()

    def _dispatch(self) -> str | None:
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data


def parse_chat_event(data: str) -> ChatStreamChunk:
    """Parse the data of one chat stream event.

    Accepts TGI's chunks and error events, the `reasoning_content` deltas of vLLM and
    `transformers serve`, OpenAI's `{"error": {"message": ...}}` and the final `[DONE]`.
    Raises `InvalidStreamEvent` for anything else.
    """
    if data.strip() == DONE_DATA:
        return ChatStreamChunk(done=True)

    try:
        payload = json.loads(data)
    except ValueError as error:
        raise InvalidStreamEvent(f"stream event is not valid JSON ({error}): {data[:200]!r}") from error
    if not isinstance(payload, dict):
        raise InvalidStreamEvent(f"stream event is not a JSON object: {data[:200]!r}")

    if "error" in payload:
        return ChatStreamChunk(error=_error_of(payload))

    usage = _usage_of(payload.get("usage"))
    choices = payload.get("choices")
    if not isinstance(choices, list):
        raise InvalidStreamEvent(f"stream event has no `choices` list: {data[:200]!r}")
    if not choices:
        # The usage chunk that `stream_options.include_usage` adds has no choices.
        return ChatStreamChunk(usage=usage)

    choice = choices[0] if isinstance(choices[0], dict) else {}
    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
    return ChatStreamChunk(
        content=_text(delta.get("content")),
        reasoning=_text(delta.get("reasoning_content")) or _text(delta.get("reasoning")),
        finish_reason=choice.get("finish_reason") or None,
        usage=usage,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _error_of(payload: dict) -> StreamErrorEvent:
    error = payload["error"]
    if isinstance(error, dict):
        error_type = error.get("type") or error.get("code")
        return StreamErrorEvent(str(error.get("message", error)), str(error_type) if error_type else None)
    error_type = payload.get("error_type")
    return StreamErrorEvent(str(error), str(error_type) if error_type else None)


def _usage_of(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)
