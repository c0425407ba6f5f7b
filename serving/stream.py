"""The events of one streamed chat answer, with retries before the first token.

`ChatStream` is what `ChatClient.stream_events` returns: iterate it for `StreamEvent`s
("reasoning", "answer", and "status" while it waits for an unavailable server), then read
`result` for the finish reason, the token counts and the sampling that was sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from serving.errors import ModelServerError, ModelStreamError
from serving.health import HealthProbe
from serving.retry import RetryPolicy, ServerCondition, condition_of, is_retryable
from serving.sse import ChatStreamChunk
from serving.thinking import Segment, ThinkParser
from serving.transport import error_event_to_exception

logger = logging.getLogger(__name__)

EventKind = Literal["reasoning", "answer", "status"]


@dataclass(frozen=True)
class RetryStatus:
    """The reason for a wait before the client sends the request again, and its length.

    `condition` is "starting" (health not ready: the pod boots or TGI loads the model),
    "overloaded" (HTTP 429 or TGI's overloaded event), "unreachable" (no response at all)
    or "unavailable" (anything else retryable).
    """

    condition: ServerCondition
    attempt: int
    retry_in_s: float
    deadline_left_s: float
    error: str


@dataclass(frozen=True)
class StreamEvent:
    """One piece of a streamed answer.

    `kind` is "reasoning" (Qwen3's think block), "answer", or "status" (the server is not
    available yet; `status` then says why, and `text` says it in English for logs and CLIs).
    Status events come only before the first reasoning or answer event.
    """

    kind: EventKind
    text: str
    status: RetryStatus | None = None


@dataclass(frozen=True)
class StreamResult:
    """How a finished stream ended.

    `prompt_tokens` and `completion_tokens` are None when the server reported no usage.
    `sampling` contains the sampling fields that the request sent. `ended_in_reasoning` is True
    when the token limit cut the think block, so the answer is empty or missing.
    """

    finish_reason: str
    answer: str
    reasoning: str
    thinking: bool | None
    sampling: dict[str, float]
    max_tokens: int
    prompt_tokens: int | None
    completion_tokens: int | None
    ended_in_reasoning: bool
    attempts: int
    time_to_first_token_s: float | None
    duration_s: float


@dataclass
class _Progress:
    answer: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_s: float | None = None

    @property
    def shown(self) -> bool:
        return bool(self.answer or self.reasoning)


class ChatStream:
    """An iterable of `StreamEvent`s for one request, and its `result` once it finished.

    Iterate it once. Closing it (or leaving a `with` block) closes the connection. Errors
    are `ModelServerError` subclasses that carry the answer and reasoning streamed before
    the failure in `partial_text` and `partial_reasoning`.
    """

    def __init__(
        self,
        open_attempt: Callable[[], Iterator[ChatStreamChunk]],
        *,
        base_url: str,
        request: dict[str, Any],
        thinking: bool | None,
        retry: RetryPolicy,
        probe: Callable[[float], HealthProbe],
        starts_in_reasoning: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.thinking = thinking
        self.sampling = {key: request[key] for key in ("temperature", "top_p") if key in request}
        self.max_tokens = int(request["max_tokens"])
        self._open_attempt = open_attempt
        self._retry = retry
        self._probe = probe
        self._starts_in_reasoning = starts_in_reasoning
        self._sleep = sleep
        self._result: StreamResult | None = None
        self._events = self._run()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self._events

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._events.close()

    @property
    def result(self) -> StreamResult:
        """How the stream ended. Raises RuntimeError until the stream finished without error."""
        if self._result is None:
            raise RuntimeError("the stream has not finished: iterate it to the end before reading result")
        return self._result

    def _run(self) -> Iterator[StreamEvent]:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            progress = _Progress()
            parser = ThinkParser(starts_in_reasoning=self._starts_in_reasoning)
            try:
                yield from self._attempt(progress, parser, started)
                break
            except ModelServerError as error:
                error.partial_text = "".join(progress.answer)
                error.partial_reasoning = "".join(progress.reasoning)
                status = None if progress.shown else self._retry_status(error, attempt, started)
                if status is None:
                    logger.warning("chat stream from %s failed after %d attempts: %s", self.base_url, attempt, error)
                    raise

            logger.warning(
                "model server at %s is %s (%s): retry %d in %.1f s, %.0f s left before giving up",
                self.base_url,
                status.condition,
                status.error,
                attempt,
                status.retry_in_s,
                status.deadline_left_s,
            )
            yield StreamEvent("status", _status_text(status), status)
            self._sleep(status.retry_in_s)

        self._finish(progress, parser, attempt, started)

    def _attempt(self, progress: _Progress, parser: ThinkParser, started: float) -> Iterator[StreamEvent]:
        # closing() releases the connection at once when this attempt fails.
        with contextlib.closing(self._open_attempt()) as chunks:
            for chunk in chunks:
                if chunk.error is not None:
                    raise error_event_to_exception(chunk, self.base_url)
                if chunk.usage is not None:
                    progress.prompt_tokens = chunk.usage.prompt_tokens
                    progress.completion_tokens = chunk.usage.completion_tokens
                progress.finish_reason = chunk.finish_reason or progress.finish_reason

                # Servers that split reasoning themselves send it in its own field.
                segments = [Segment("reasoning", chunk.reasoning)] if chunk.reasoning else []
                if chunk.content:
                    segments += parser.feed(chunk.content)
                yield from self._emit(segments, progress, started)

        yield from self._emit(parser.close(), progress, started)

        # OpenAI-compatible servers, TGI among them, set finish_reason on the last chunk. A
        # stream without one was cut short, and its text must not pass as a whole answer.
        if progress.finish_reason is None:
            raise ModelStreamError(
                f"model server at {self.base_url} ended the stream before it sent a finish reason, "
                "so the answer may be cut short: check the server's log",
                base_url=self.base_url,
            )

    def _emit(self, segments: list[Segment], progress: _Progress, started: float) -> Iterator[StreamEvent]:
        for segment in segments:
            if progress.first_token_s is None:
                progress.first_token_s = time.monotonic() - started
            (progress.answer if segment.kind == "answer" else progress.reasoning).append(segment.text)
            yield StreamEvent(segment.kind, segment.text)

    def _retry_status(self, error: ModelServerError, attempt: int, started: float) -> RetryStatus | None:
        # Returns None when the error must be raised: not retryable, or no time left.
        if not is_retryable(error):
            return None
        deadline_left = self._retry.deadline_s - (time.monotonic() - started)
        delay = self._retry.delay(attempt)
        if delay >= deadline_left:
            return None

        probe = self._probe(min(2.0, deadline_left - delay))
        return RetryStatus(
            condition=condition_of(error, probe.status_code),
            attempt=attempt,
            retry_in_s=delay,
            deadline_left_s=deadline_left,
            error=f"{type(error).__name__}: {error.server_message or error}"[:300],
        )

    def _finish(self, progress: _Progress, parser: ThinkParser, attempts: int, started: float) -> None:
        if parser.ended_in_reasoning:
            logger.warning(
                "chat stream from %s ended inside the think block (finish reason %s), so the answer is empty: "
                "raise max_tokens (now %d) or ask without thinking",
                self.base_url,
                progress.finish_reason,
                self.max_tokens,
            )
        self._result = StreamResult(
            finish_reason=progress.finish_reason or "",
            answer="".join(progress.answer),
            reasoning="".join(progress.reasoning),
            thinking=self.thinking,
            sampling=self.sampling,
            max_tokens=self.max_tokens,
            prompt_tokens=progress.prompt_tokens,
            completion_tokens=progress.completion_tokens,
            ended_in_reasoning=parser.ended_in_reasoning,
            attempts=attempts,
            time_to_first_token_s=progress.first_token_s,
            duration_s=time.monotonic() - started,
        )
        logger.debug(
            "chat stream from %s finished (%s) after %d attempts: first token after %s s, total %.2f s",
            self.base_url,
            self._result.finish_reason,
            attempts,
            f"{progress.first_token_s:.2f}" if progress.first_token_s is not None else "-",
            self._result.duration_s,
        )


_CONDITION_TEXT = {
    "starting": "is starting",
    "overloaded": "is overloaded",
    "unreachable": "is unreachable",
    "unavailable": "is unavailable",
}


def _status_text(status: RetryStatus) -> str:
    return (
        f"model server {_CONDITION_TEXT[status.condition]}; retrying in {status.retry_in_s:.1f} s "
        f"(attempt {status.attempt}, {status.deadline_left_s:.0f} s left)"
    )
