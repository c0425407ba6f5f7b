"""SseDecoder and parse_chat_event on raw stream lines, as TGI and others send them."""

from __future__ import annotations

import pytest

from serving.sse import (
    ChatStreamChunk,
    InvalidStreamEvent,
    SseDecoder,
    StreamErrorEvent,
    Usage,
    parse_chat_event,
)


def decode(lines: list[str]) -> tuple[list[str], SseDecoder]:
    decoder = SseDecoder()
    events = [data for line in lines if (data := decoder.feed_line(line)) is not None]
    last = decoder.close()
    if last is not None:
        events.append(last)
    return events, decoder


# Each row: raw lines (as httpx iter_lines yields them), the event data they carry, and the
# number of comment lines among them.
LINE_CASES = [
    # TGI: one `data:` line per event, a blank line after each.
    (["data: {\"a\":1}", "", "data: [DONE]", ""], ['{"a":1}', "[DONE]"], 0),
    # An axum keep-alive comment between events.
    (["data: x", "", ":", "", "data: y", ""], ["x", "y"], 1),
    # A multi-line event joins its data lines with newlines.
    (["data: first", "data: second", ""], ["first\nsecond"], 0),
    # No space after the colon, and CRLF endings left on the line.
    (["data:x\r\n", "\r\n"], ["x"], 0),
    # `event:` and `id:` fields carry nothing the chat needs.
    (["event: message", "id: 7", "data: z", ""], ["z"], 0),
    # A stream cut before the last blank line still delivers its last event.
    (["data: tail"], ["tail"], 0),
    # Blank lines alone are no events.
    (["", "", ""], [], 0),
]


@pytest.mark.parametrize(("lines", "events", "comments"), LINE_CASES)
def test_decoder_assembles_events(lines: list[str], events: list[str], comments: int) -> None:
    decoded, decoder = decode(lines)

    assert decoded == events
    assert decoder.comments == comments


# Each row: one event's data and the chunk it must parse into.
EVENT_CASES = [
    # A TGI content delta.
    ('{"choices":[{"index":0,"delta":{"role":"assistant","content":"안녕"},"finish_reason":null}]}',
     ChatStreamChunk(content="안녕")),
    # TGI's last chunk: empty content, a finish reason and usage (stream_options.include_usage).
    ('{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}],'
     '"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}',
     ChatStreamChunk(finish_reason="stop", usage=Usage(12, 3))),
    # The usage chunk of transformers serve and OpenAI, which has no choices.
    ('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}',
     ChatStreamChunk(usage=Usage(5, 2))),
    # A role-only first chunk (transformers serve) carries no text.
    ('{"choices":[{"index":0,"delta":{"role":"assistant"}}]}', ChatStreamChunk()),
    # vLLM and transformers serve put reasoning in its own delta field.
    ('{"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}', ChatStreamChunk(reasoning="think")),
    # Newer servers name the same field `reasoning`.
    ('{"choices":[{"index":0,"delta":{"reasoning":"hmm","content":null}}]}', ChatStreamChunk(reasoning="hmm")),
    # TGI's error event inside a 200 stream.
    ('{"error":"Request failed during generation: CUDA OOM","error_type":"generation"}',
     ChatStreamChunk(error=StreamErrorEvent("Request failed during generation: CUDA OOM", "generation"))),
    # transformers serve's error event has no error_type.
    ('{"error":"boom"}', ChatStreamChunk(error=StreamErrorEvent("boom", None))),
    # OpenAI's nested error object.
    ('{"error":{"message":"overloaded","type":"server_error"}}',
     ChatStreamChunk(error=StreamErrorEvent("overloaded", "server_error"))),
    # The end marker.
    ("[DONE]", ChatStreamChunk(done=True)),
]


@pytest.mark.parametrize(("data", "chunk"), EVENT_CASES)
def test_chat_event_parses(data: str, chunk: ChatStreamChunk) -> None:
    assert parse_chat_event(data) == chunk


# Each row: event data that is no chat completion chunk.
INVALID_EVENTS = [
    # Cut JSON.
    "{not json",
    # A JSON value that is no object.
    "[1, 2]",
    # An object without choices or error.
    '{"id": "x"}',
]


@pytest.mark.parametrize("data", INVALID_EVENTS)
def test_invalid_chat_event_is_rejected(data: str) -> None:
    with pytest.raises(InvalidStreamEvent):
        parse_chat_event(data)
