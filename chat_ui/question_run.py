"""The measurements and intermediate results of one question, and the final update built from them.

AnswerPipeline fills one QuestionRun while it answers a question. The functions here turn the
run into the last update the user sees and into the sampling the log stores. Run times are
time.monotonic() seconds, and the update's timings are milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chat_ui.answer import AnswerUpdate, Status
from chat_ui.citations import visible_text
from chat_ui.log.records import SamplingValue
from serving.stream import StreamResult

logger = logging.getLogger(__name__)


@dataclass
class QuestionRun:
    """Measurements and intermediate results of one question, for the final update and the log."""

    received: float
    retrieval_ms: float | None = None
    first_token: float | None = None
    raw_answer: str = ""  # the model's answer before citation filtering
    invalid_citations: int = 0
    error: Exception | None = None
    result: StreamResult | None = None
    thinking: bool | None = None
    temperature: float | None = None


def elapsed_ms(start: float, end: float | None = None) -> float:
    return ((time.monotonic() if end is None else end) - start) * 1000.0


def final_answer(update: AnswerUpdate, run: QuestionRun, valid_numbers: Sequence[int]) -> AnswerUpdate:
    """Remove citation numbers outside `valid_numbers` from the run's answer, and count them in `run`."""
    filtered = visible_text(run.raw_answer, valid_numbers, final=True)
    run.invalid_citations = filtered.invalid
    if filtered.invalid:
        logger.info("removed %d citation numbers outside 1-%d from the answer", filtered.invalid, len(valid_numbers))
    return replace(update, answer=filtered.text)


def measured(update: AnswerUpdate, run: QuestionRun, status: Status, notice: str | None) -> AnswerUpdate:
    """Return `update` with `status`, `notice` and the run's timings, token counts and error type."""
    now = time.monotonic()
    result = run.result
    return replace(
        update,
        status=status,
        notice=notice,
        retrieval_ms=run.retrieval_ms,
        first_token_ms=None if run.first_token is None else elapsed_ms(run.received, run.first_token),
        latency_ms=elapsed_ms(run.received, now),
        input_tokens=None if result is None else result.prompt_tokens,
        output_tokens=None if result is None else result.completion_tokens,
        error_type=None if run.error is None else type(run.error).__name__,
    )


def sampling_of(run: QuestionRun, max_tokens: int) -> dict[str, SamplingValue]:
    """Return the sampling to log: what the request sent, or the run's settings without a stream result."""
    if run.result is None:
        return {"max_tokens": max_tokens, "thinking": run.thinking}
    result = run.result
    return {"max_tokens": result.max_tokens, "thinking": result.thinking, **result.sampling}
