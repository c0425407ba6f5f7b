"""Usage statistics of the conversation log over the last days, for the admin page.

Counts come from SQL aggregates and are exact. Percentiles are computed in Python, because
neither SQLite nor MariaDB has a portable percentile function; they use at most
`MAX_LATENCY_SAMPLES` of the window's newest answered turns. Days are UTC calendar days,
as the tables store UTC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import peewee

from chat_ui.errors import InvalidLogValueError
from chat_ui.log.models import LogModels, as_utc, utc_now
from chat_ui.log.store import ConversationLog

MAX_WINDOW_DAYS = 90
# Enough for a busy month on one deployment, and still a few MB of integers in memory.
MAX_LATENCY_SAMPLES = 100_000
MAX_FEEDBACK_ROWS = 100_000
MAX_UNANSWERED = 200


@dataclass(frozen=True)
class DayCount:
    """Turns logged on one UTC day, with how many of them failed or found no answer."""

    day: date
    turns: int
    errors: int
    no_answer: int


@dataclass(frozen=True)
class UnansweredQuestion:
    """A question that the indexed documents could not answer (turn status no_answer)."""

    asked_at: datetime
    question: str
    conversation_id: str
    turn_id: str


@dataclass(frozen=True)
class LogStats:
    """Usage of the chat over `window_days` UTC days ending today."""

    window_days: int
    since: datetime
    turns: int
    status_counts: dict[str, int]
    per_day: list[DayCount]
    latency_median_ms: float | None
    latency_p95_ms: float | None
    first_token_median_ms: float | None
    first_token_p95_ms: float | None
    latency_samples: int  # answered turns behind the latency percentiles
    feedback_up: int
    feedback_down: int
    unanswered: list[UnansweredQuestion]

    @property
    def error_rate(self) -> float | None:
        """Share of turns with status error, or None without turns."""
        return self.status_counts.get("error", 0) / self.turns if self.turns else None

    @property
    def feedback_up_ratio(self) -> float | None:
        """Share of helpful votes among helpful and unhelpful ones, or None without votes."""
        votes = self.feedback_up + self.feedback_down
        return self.feedback_up / votes if votes else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the `q`-th percentile (0 to 100) of `values` by linear interpolation, or None if empty.

    This is the method numpy's percentile uses by default ("linear").
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def collect_stats(
    log: ConversationLog, window_days: int = 7, *, now: datetime | None = None, unanswered_limit: int = 20
) -> LogStats:
    """Read the statistics of the last `window_days` UTC days, today included, from `log`.

    Raises InvalidLogValueError for a window outside 1 to MAX_WINDOW_DAYS days and
    LogDatabaseError when the database cannot be read.
    """
    if isinstance(window_days, bool) or not isinstance(window_days, int) or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidLogValueError(f"window_days must be an int from 1 to {MAX_WINDOW_DAYS}, got {window_days!r}.")
    unanswered_limit = max(0, min(unanswered_limit, MAX_UNANSWERED))

    # Naive UTC, as the tables store it.
    until = utc_now() if now is None else now.astimezone(timezone.utc).replace(tzinfo=None)
    first_day = until.date() - timedelta(days=window_days - 1)
    since = datetime.combine(first_day, datetime.min.time())

    with log.reading("read usage statistics") as models:
        counts = _day_status_counts(models, since, until)
        latencies = _latency_samples(models, since, until)
        up, down = _feedback_votes(models, since, until)
        unanswered = _unanswered(models, since, until, unanswered_limit)

    return _assemble(window_days, since, first_day, counts, latencies, up, down, unanswered)


def _assemble(
    window_days: int,
    since: datetime,
    first_day: date,
    counts: list[tuple[date, str, int]],
    latencies: list[tuple[int, int | None]],
    up: int,
    down: int,
    unanswered: list[UnansweredQuestion],
) -> LogStats:
    by_day = {first_day + timedelta(days=offset): {} for offset in range(window_days)}
    status_counts: dict[str, int] = {}
    for day, status, count in counts:
        statuses = by_day.setdefault(day, {})
        statuses[status] = statuses.get(status, 0) + count
        status_counts[status] = status_counts.get(status, 0) + count
    per_day = [
        DayCount(
            day=day,
            turns=sum(statuses.values()),
            errors=statuses.get("error", 0),
            no_answer=statuses.get("no_answer", 0),
        )
        for day, statuses in sorted(by_day.items())
    ]

    total = [float(latency) for latency, _ in latencies]
    first = [float(first_token) for _, first_token in latencies if first_token is not None]
    return LogStats(
        window_days=window_days,
        since=since.replace(tzinfo=timezone.utc),
        turns=sum(status_counts.values()),
        status_counts=status_counts,
        per_day=per_day,
        latency_median_ms=percentile(total, 50),
        latency_p95_ms=percentile(total, 95),
        first_token_median_ms=percentile(first, 50),
        first_token_p95_ms=percentile(first, 95),
        latency_samples=len(total),
        feedback_up=up,
        feedback_down=down,
        unanswered=unanswered,
    )


def _in_window(field: peewee.Field, since: datetime, until: datetime) -> peewee.Expression:
    return (field >= since) & (field <= until)


def _day_status_counts(models: LogModels, since: datetime, until: datetime) -> list[tuple[date, str, int]]:
    turn = models.turn
    # DATE() exists in both SQLite and MariaDB. SQLite returns 'YYYY-MM-DD' text and
    # MariaDB a date, so both are read through their ISO form.
    day = peewee.fn.DATE(turn.created_at)
    rows = (
        turn.select(day.alias("day"), turn.status, peewee.fn.COUNT(turn.id).alias("count"))
        .where(_in_window(turn.created_at, since, until))
        .group_by(day, turn.status)
        .tuples()
    )
    return [(date.fromisoformat(str(value)[:10]), status, int(count)) for value, status, count in rows]


def _latency_samples(models: LogModels, since: datetime, until: datetime) -> list[tuple[int, int | None]]:
    """(latency_ms, first_token_ms) of the window's newest answered turns."""
    turn = models.turn
    rows = (
        turn.select(turn.latency_ms, turn.first_token_ms)
        .where(_in_window(turn.created_at, since, until) & (turn.status == "ok"))
        .order_by(turn.created_at.desc())
        .limit(MAX_LATENCY_SAMPLES)
        .tuples()
    )
    return list(rows)


def _feedback_votes(models: LogModels, since: datetime, until: datetime) -> tuple[int, int]:
    """Count helpful and unhelpful votes, keeping only each user's latest vote on a turn.

    A comment without a vote (rating 0) does not replace an earlier vote.
    """
    feedback = models.feedback
    rows = (
        feedback.select(feedback.turn, feedback.user, feedback.rating)
        .where(_in_window(feedback.created_at, since, until) & (feedback.rating != 0))
        .order_by(feedback.created_at.desc(), feedback.id.desc())
        .limit(MAX_FEEDBACK_ROWS)
        .tuples()
    )
    latest: dict[tuple[str, str | None], int] = {}
    for turn_id, user, rating in rows:
        latest.setdefault((str(turn_id), user), rating)  # rows come newest first
    up = sum(1 for rating in latest.values() if rating > 0)
    return up, len(latest) - up


def _unanswered(models: LogModels, since: datetime, until: datetime, limit: int) -> list[UnansweredQuestion]:
    if limit == 0:
        return []
    turn = models.turn
    rows = (
        turn.select(turn.id, turn.conversation, turn.question, turn.created_at)
        .where(_in_window(turn.created_at, since, until) & (turn.status == "no_answer"))
        .order_by(turn.created_at.desc(), turn.id)
        .limit(limit)
        .tuples()
    )
    return [
        UnansweredQuestion(
            asked_at=as_utc(created_at),
            question=question,
            conversation_id=str(conversation_id),
            turn_id=str(turn_id),
        )
        for turn_id, conversation_id, question, created_at in rows
    ]
