"""Records that the conversation log stores and returns, and the checks they must pass.

The checks run before any database call so that SQLite and MySQL reject the same
records: SQLite ignores VARCHAR lengths, while MySQL in strict mode rejects longer values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict, get_args

from chat_ui.errors import InvalidLogValueError

TurnStatus = Literal["ok", "no_answer", "error", "interrupted"]
TURN_STATUSES: tuple[str, ...] = get_args(TurnStatus)

# Maximum lengths in characters of the VARCHAR columns (MySQL counts utf8mb4 characters).
MAX_USER_LENGTH = 255
MAX_TITLE_LENGTH = 255
MAX_MODEL_FIELD_LENGTH = 512
MAX_ERROR_TYPE_LENGTH = 255
MAX_INDEX_VERSION_LENGTH = 255

# Feedback ratings: -1 for "not helpful", 1 for "helpful", 0 for a comment without a rating.
FEEDBACK_RATINGS = (-1, 0, 1)

SamplingValue = str | int | float | bool | None

SOURCE_KEYS = ("n", "chunk_id", "file_name", "page", "score", "source_uri")


class CitedSource(TypedDict):
    """One passage cited in an answer."""

    n: int  # citation number as shown in the answer, e.g. 1 for [1]
    chunk_id: str
    file_name: str
    page: int | None  # 1-based PDF page, None when the chunk has no page
    score: float  # retrieval score of the chunk
    source_uri: str | None  # s3:// or file URI of the document


@dataclass(frozen=True, kw_only=True)
class TurnRecord:
    """One question and answer of a conversation, with how the answer was produced.

    Times are in milliseconds. A float time is rounded to whole milliseconds on write.
    """

    conversation_id: str
    question: str
    answer: str
    model_id: str
    model_base_url: str
    latency_ms: int  # from receiving the question to the last token or the failure
    first_token_ms: int | None = None  # None when no token arrived
    sources: list[CitedSource] = field(default_factory=list)
    status: TurnStatus = "ok"
    error_type: str | None = None
    error_message: str | None = None
    index_version: str | None = None  # version of the index the sources came from
    search_query: str | None = None  # query sent to retrieval (e.g. a rewritten follow-up), None without one
    reasoning: str | None = None  # the model's reasoning (Qwen3's <think> text), kept apart
    # Sampling parameters sent to the model server, e.g. temperature, top_p and max_tokens.
    sampling_params: Mapping[str, SamplingValue] = field(default_factory=dict)
    input_tokens: int | None = None  # prompt tokens the model server counted
    output_tokens: int | None = None  # generated tokens the model server counted
    # Citation numbers the model wrote that named no given source, removed from the answer.
    # None in turns logged before the count existed.
    invalid_citations: int | None = 0


@dataclass(frozen=True, kw_only=True)
class LoggedTurn(TurnRecord):
    """A turn read back from the log, with the id and the UTC time the log assigned."""

    turn_id: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ConversationInfo:
    """A conversation's metadata. Both times are UTC."""

    conversation_id: str
    user: str | None
    title: str
    created_at: datetime
    updated_at: datetime  # time of the last recorded turn, or created_at


@dataclass(frozen=True, kw_only=True)
class FeedbackInfo:
    """A user's feedback on one turn. The time is UTC."""

    feedback_id: str
    turn_id: str
    rating: int  # one of FEEDBACK_RATINGS
    comment: str
    user: str | None
    created_at: datetime


@dataclass(frozen=True)
class LogStatus:
    """A snapshot of one open log, for operators and tests."""

    database_name: str
    schema_version: int
    latest_schema_version: int
    journal_directory: str
    journal_backlog: int  # records waiting in the journal for the database
    connections_in_use: int
    pool_stale_timeout_s: int | None  # None for SQLite, which has no pool
    reconnects: int  # dropped MySQL connections replaced since open


def _check_text(name: str, value: Any, max_length: int | None = None) -> None:
    if not isinstance(value, str):
        raise InvalidLogValueError(f"{name} must be a str, got {type(value).__name__}.")
    if max_length is not None and len(value) > max_length:
        raise InvalidLogValueError(
            f"{name} has {len(value)} characters, more than the maximum of {max_length}. "
            "Shorten it before logging."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # A lone surrogate (e.g. from surrogateescape decoding) cannot be stored as UTF-8.
        raise InvalidLogValueError(
            f"{name} is not valid Unicode text ({error.reason} at index {error.start}). "
            "Decode the text with errors='replace' before logging."
        ) from None


def _check_optional_text(name: str, value: Any, max_length: int | None = None) -> None:
    if value is not None:
        _check_text(name, value, max_length)


def _check_optional_count(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidLogValueError(f"{name} must be an int >= 0 or None, got {value!r}.")


def _check_milliseconds(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value < 0:
        raise InvalidLogValueError(
            f"{name} must be a finite number of milliseconds >= 0, got {value!r}."
        )


def validate_conversation(user: str | None, title: str) -> None:
    """Raise InvalidLogValueError unless ``user`` and ``title`` fit their columns."""
    _check_optional_text("user", user, MAX_USER_LENGTH)
    _check_text("title", title, MAX_TITLE_LENGTH)


def validate_turn(record: TurnRecord) -> None:
    """Raise InvalidLogValueError, naming the field, unless ``record`` can be stored as is."""
    if record.status not in TURN_STATUSES:
        raise InvalidLogValueError(
            f"status must be one of {', '.join(TURN_STATUSES)}, got {record.status!r}."
        )

    _check_text("question", record.question)
    _check_text("answer", record.answer)
    _check_text("model_id", record.model_id, MAX_MODEL_FIELD_LENGTH)
    _check_text("model_base_url", record.model_base_url, MAX_MODEL_FIELD_LENGTH)
    _check_optional_text("error_type", record.error_type, MAX_ERROR_TYPE_LENGTH)
    _check_optional_text("error_message", record.error_message)

    _check_optional_text("index_version", record.index_version, MAX_INDEX_VERSION_LENGTH)
    _check_optional_text("search_query", record.search_query)
    _check_optional_text("reasoning", record.reasoning)

    _check_milliseconds("latency_ms", record.latency_ms, optional=False)
    _check_milliseconds("first_token_ms", record.first_token_ms, optional=True)
    _check_optional_count("input_tokens", record.input_tokens)
    _check_optional_count("output_tokens", record.output_tokens)
    _check_optional_count("invalid_citations", record.invalid_citations)


def validate_feedback(rating: Any, comment: Any, user: Any) -> None:
    """Raise InvalidLogValueError unless the feedback fields fit their columns."""
    if isinstance(rating, bool) or rating not in FEEDBACK_RATINGS:
        ratings = ", ".join(str(value) for value in FEEDBACK_RATINGS)
        raise InvalidLogValueError(f"rating must be one of {ratings}, got {rating!r}.")
    _check_text("comment", comment)
    _check_optional_text("user", user, MAX_USER_LENGTH)


def encode_sampling_params(params: Any) -> str:
    """Serialise sampling parameters to the JSON object text stored in the turn table.

    Raises InvalidLogValueError unless ``params`` maps str keys to str, int, finite float,
    bool or None values.
    """
    if not isinstance(params, Mapping):
        raise InvalidLogValueError(
            f"sampling_params must be a mapping, got {type(params).__name__}."
        )
    for key, value in params.items():
        if not isinstance(key, str):
            raise InvalidLogValueError(f"sampling_params keys must be str, got {key!r}.")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise InvalidLogValueError(
                f"sampling_params[{key!r}] must be a str, int, float, bool or None, "
                f"got {type(value).__name__}."
            )

    try:
        return json.dumps(dict(params), ensure_ascii=False, allow_nan=False, sort_keys=True)
    except ValueError as error:
        raise InvalidLogValueError(
            f"sampling_params cannot be stored as JSON: {error}. Use finite numbers."
        ) from None


def decode_sampling_params(text: str | None) -> dict[str, SamplingValue]:
    """Parse the JSON text that encode_sampling_params() wrote; None reads as no parameters."""
    if text is None:
        return {}
    params: dict[str, SamplingValue] = json.loads(text)
    return params


def encode_sources(sources: Any) -> str:
    """Serialise cited sources to the JSON text stored in the turn table.

    Raises InvalidLogValueError when ``sources`` is not a list of mappings with every key of
    CitedSource, or contains a value that strict JSON cannot represent (NaN, infinity, or a
    non-JSON type). Extra keys are kept.
    """
    if not isinstance(sources, (list, tuple)):
        raise InvalidLogValueError(f"sources must be a list, got {type(sources).__name__}.")

    plain: list[dict[str, Any]] = []
    for index, source in enumerate(sources):
        if not isinstance(source, Mapping):
            raise InvalidLogValueError(
                f"sources[{index}] must be a mapping, got {type(source).__name__}."
            )
        missing = [key for key in SOURCE_KEYS if key not in source]
        if missing:
            raise InvalidLogValueError(
                f"sources[{index}] is missing {', '.join(missing)}. "
                f"Each source needs {', '.join(SOURCE_KEYS)} (use None for an unknown page "
                "or source_uri)."
            )
        plain.append(dict(source))

    # ensure_ascii=False stores Hangul as 3 UTF-8 bytes instead of a 6-byte \uXXXX escape,
    # and keeps the column readable in a SQL client.
    try:
        return json.dumps(plain, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidLogValueError(
            f"sources cannot be stored as JSON: {error}. "
            "Use only str, int, finite float, bool and None values."
        ) from None


def decode_sources(text: str) -> list[CitedSource]:
    """Parse the JSON text that encode_sources() wrote."""
    sources: list[CitedSource] = json.loads(text)
    return sources
