"""Split Qwen3's `<think>…</think>` reasoning from the answer while the text streams in.

TGI returns Qwen3's reasoning inside the answer text: the output opens with `<think>`,
the reasoning follows, and `</think>` closes it before the answer. `ThinkParser` is a pure,
incremental parser over the text deltas of one response. Its invariants:

- Text is classified only once it is certain. A delta that may be the start of a tag
  (`"<th"`, `"</thi"`) is held back until the next delta or the end of the stream decides it.
- The opening tag counts only as the first non-whitespace text of the response, as Qwen3
  emits it. After the block closes, everything is answer text, including a literal `<think>`.
- A think block that is still open when the stream ends (the token limit was reached while
  the model reasoned) yields only reasoning, never answer text, and sets `ended_in_reasoning`.
- Leading whitespace of each part and the whitespace before `</think>` are dropped, so the
  empty block that Qwen3 emits in non-thinking mode (`<think>\\n\\n</think>\\n\\n`) yields nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

SegmentKind = Literal["reasoning", "answer"]


@dataclass(frozen=True)
class Segment:
    """A piece of classified text: reasoning from inside the think block, or answer text."""

    kind: SegmentKind
    text: str


class _State(enum.Enum):
    START = "start"
    REASONING = "reasoning"
    ANSWER = "answer"


def _partial_tag_length(text: str, tag: str) -> int:
    """Return the length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for length in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


class ThinkParser:
    """Classify the text deltas of one response as reasoning or answer.

    Call `feed` with each delta in order, then `close` once at the end of the stream. Both
    return the segments that became certain, in order; consecutive segments may share a kind.
    `starts_in_reasoning=True` is for chat templates that already open the think block in the
    prompt (Qwen3's 2507 thinking models), so the output contains only `</think>`.
    """

    def __init__(self, *, starts_in_reasoning: bool = False) -> None:
        self._state = _State.REASONING if starts_in_reasoning else _State.START
        # Text received but not yet classified: a possible tag prefix, or trailing whitespace
        # of the reasoning, which is dropped if `</think>` follows it.
        self._pending = ""
        self._reasoning_started = False
        self._answer_started = False
        self._closed = False
        self.ended_in_reasoning = False

    def feed(self, text: str) -> list[Segment]:
        """Add the next delta and return the segments that it completes."""
        if self._closed:
            raise ValueError("ThinkParser.feed was called after close(): create a new parser per response")
        self._pending += text
        segments: list[Segment] = []

        # A closing tag moves the state forward, and the rest of the text is parsed in the new
        # state, so the loop runs at most once per state.
        while True:
            if self._state is _State.START:
                if not self._leave_start():
                    return segments
            elif self._state is _State.REASONING:
                closed = self._take_reasoning(segments)
                if not closed:
                    return segments
            else:
                self._take_answer(segments, self._pending)
                self._pending = ""
                return segments

    def close(self) -> list[Segment]:
        """End the stream and return what was held back.

        A tag prefix that no tag completed is text after all: answer text before the block,
        reasoning inside it. Reasoning stays reasoning even when the block never closed.
        """
        if self._closed:
            return []
        self._closed = True
        segments: list[Segment] = []

        if self._state is _State.START:
            self._take_answer(segments, self._pending)
        elif self._state is _State.REASONING:
            self.ended_in_reasoning = True
            self._emit_reasoning(segments, self._pending.rstrip())
        else:
            self._take_answer(segments, self._pending)
        self._pending = ""
        return segments

    def _leave_start(self) -> bool:
        # Returns False while the text so far cannot tell an opening tag from answer text.
        stripped = self._pending.lstrip()
        if not stripped:
            return False
        if stripped.startswith(OPEN_TAG):
            self._state = _State.REASONING
            self._pending = stripped[len(OPEN_TAG) :]
            return True
        if OPEN_TAG.startswith(stripped):
            return False
        self._state = _State.ANSWER
        return True

    def _take_reasoning(self, segments: list[Segment]) -> bool:
        """Emit the certain reasoning text, and return True when the block closed."""
        index = self._pending.find(CLOSE_TAG)
        if index >= 0:
            self._emit_reasoning(segments, self._pending[:index].rstrip())
            self._state = _State.ANSWER
            self._pending = self._pending[index + len(CLOSE_TAG) :]
            return True

        # Hold back a possible start of `</think>`, and the trailing whitespace before it.
        held = _partial_tag_length(self._pending, CLOSE_TAG)
        certain = self._pending[: len(self._pending) - held]
        body = certain.rstrip()
        self._emit_reasoning(segments, body)
        self._pending = self._pending[len(body) :]
        return False

    def _emit_reasoning(self, segments: list[Segment], text: str) -> None:
        if not self._reasoning_started:
            text = text.lstrip()
        if text:
            self._reasoning_started = True
            segments.append(Segment("reasoning", text))

    def _take_answer(self, segments: list[Segment], text: str) -> None:
        if not self._answer_started:
            text = text.lstrip()
        if text:
            self._answer_started = True
            segments.append(Segment("answer", text))


def split_thinking(text: str) -> tuple[str, str]:
    """Return the (reasoning, answer) of a complete response text."""
    parser = ThinkParser()
    segments = parser.feed(text) + parser.close()
    reasoning = "".join(segment.text for segment in segments if segment.kind == "reasoning")
    answer = "".join(segment.text for segment in segments if segment.kind == "answer")
    return reasoning, answer
