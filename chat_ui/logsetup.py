"""Application logging of the chat server: text or JSON lines on stderr, with question text masked.

With `--log-format json` (or VERACLAIM_LOG_FORMAT=json) every line is one JSON object with
`time`, `level`, `logger` and `message`, plus each field that the call passed in `extra=`,
such as `turn_id` and `conversation_id`.

Unless VERACLAIM_LOG_QUESTIONS=true, `QuestionMaskFilter` replaces the user text that a log
call passes as `extra={"question": ...}` (or `search_query`), both in that field and where
the same text appears in the message. Text that a call formats into its message without
passing it in `extra` cannot be recognised, so such calls must not log questions.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from chat_ui.ops_settings import LogFormat

logger = logging.getLogger(__name__)

# Loggers shown from WARNING up unless --verbose.
NOISY_LIBRARY_LOGGERS = ("faiss.loader", "bm25s")

# `extra=` fields that carry text the user typed.
QUESTION_FIELDS = ("question", "search_query")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Marks the handler that configure_logging installed, so a second call replaces it.
_HANDLER_NAME = "veraclaim"


class QuestionMaskFilter(logging.Filter):
    """Replace question text in a record's `extra` fields and message with its length."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in QUESTION_FIELDS:
            value = record.__dict__.get(name)
            if not isinstance(value, str) or not value:
                continue
            mask = f"[{len(value)} characters masked]"
            setattr(record, name, mask)
            self._mask_message(record, value, mask)
        return True

    @staticmethod
    def _mask_message(record: logging.LogRecord, text: str, mask: str) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return  # a broken format string; logging reports it when the record is emitted
        if text in message:
            record.msg, record.args = message.replace(text, mask), None


class _StderrHandler(logging.StreamHandler):
    """Write to whatever `sys.stderr` is at the time of the record, as logging.lastResort does.

    Test runners swap sys.stderr per test, and a handler that kept the stream of its first
    test would write to a closed file in the next one.
    """

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(
    *,
    verbose: bool = False,
    log_format: LogFormat = "text",
    log_questions: bool = False,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send log records at INFO (DEBUG with `verbose`) and above to `stream` (default stderr).

    Replaces the handler of an earlier call and leaves other handlers of the root logger alone.
    Returns the installed handler.
    """
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                # An ISO 8601 time in UTC, which log stores parse without a format string.
                timestamp="time",
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    if not log_questions:
        handler.addFilter(QuestionMaskFilter())

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

    # Libraries whose INFO lines read as failures to an operator: faiss reports the CPU
    # variants it could not load before it loads the generic one, and bm25s its settings.
    for noisy in NOISY_LIBRARY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    return handler


class TurnLogger:
    """Pipeline observer that logs one line per finished question, with its ids and timings."""

    def __init__(self, *, log_questions: bool = False) -> None:
        self.log_questions = log_questions

    def __call__(self, update: Any) -> None:
        fields = {
            "turn_id": update.turn_id,
            "conversation_id": update.conversation_id,
            "status": update.status,
            "error_type": update.error_type,
            "latency_ms": update.latency_ms,
            "first_token_ms": update.first_token_ms,
            "retrieval_ms": update.retrieval_ms,
            "input_tokens": update.input_tokens,
            "output_tokens": update.output_tokens,
        }
        # The question goes in only when asked for, so that a logging setup without
        # QuestionMaskFilter (a library user's own) does not receive it either.
        if self.log_questions:
            fields["question"] = update.question
        logger.info(
            "turn %s of conversation %s finished with status %s",
            update.turn_id,
            update.conversation_id,
            update.status,
            extra=fields,
        )
