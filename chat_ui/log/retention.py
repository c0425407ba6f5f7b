"""Delete log rows older than the retention period.

A purge deletes every turn and every piece of feedback created before the cutoff, and
every conversation whose last activity (``updated_at``) is before it, with all of its
turns. It deletes in batches of PURGE_BATCH_SIZE rows, one transaction each, so that a
large purge never holds long locks on a live database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from chat_ui.log.models import LogModels, utc_now

PURGE_BATCH_SIZE = 1000


@dataclass(frozen=True)
class PurgeResult:
    """Rows that a purge deleted, or would delete in a dry run."""

    cutoff: datetime  # naive UTC; rows strictly older than this are purged
    conversations: int
    turns: int
    feedback: int
    rejected_entries: int = 0  # lines dropped from the journal's rejected.jsonl


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """Return the naive UTC time ``days`` before ``now`` (default: the current time)."""
    return (now or utc_now()) - timedelta(days=days)


def count_expired(models: LogModels, cutoff: datetime) -> PurgeResult:
    """Count what ``purge_expired`` would delete, without deleting anything."""
    conversation, turn, feedback = models
    old_conversations = conversation.select(conversation.id).where(conversation.updated_at < cutoff)
    expired_turns = turn.select(turn.id).where(
        (turn.created_at < cutoff) | turn.conversation.in_(old_conversations)
    )
    expired_feedback = feedback.select().where(
        (feedback.created_at < cutoff) | feedback.turn.in_(expired_turns)
    )
    return PurgeResult(
        cutoff=cutoff,
        conversations=old_conversations.count(),
        turns=expired_turns.count(),
        feedback=expired_feedback.count(),
    )


def purge_expired(
    database: peewee.Database, models: LogModels, cutoff: datetime
) -> PurgeResult:
    """Delete the rows older than ``cutoff`` and return how many went.

    Must run inside a connection context and outside a transaction.
    """
    conversation, turn, feedback = models

    feedback_count = _delete_in_batches(
        database, feedback, lambda: feedback.created_at < cutoff
    )
    turn_count = 0
    for turn_condition in (
        lambda: turn.created_at < cutoff,
        # A conversation's turns are normally older than its updated_at, so this finds
        # only turns with clock skew; the foreign key would otherwise block the delete.
        lambda: turn.conversation.in_(
            conversation.select(conversation.id).where(conversation.updated_at < cutoff)
        ),
    ):
        deleted_turns, deleted_feedback = _delete_turns_in_batches(
            database, models, turn_condition
        )
        turn_count += deleted_turns
        feedback_count += deleted_feedback

    conversation_count = _delete_in_batches(
        database, conversation, lambda: conversation.updated_at < cutoff
    )
    return PurgeResult(
        cutoff=cutoff, conversations=conversation_count, turns=turn_count, feedback=feedback_count
    )


def _delete_in_batches(
    database: peewee.Database, model: type[peewee.Model], condition: Callable[[], Any]
) -> int:
    # MySQL rejects LIMIT inside an IN subquery, so each batch selects its ids first.
    deleted = 0
    while True:
        with database.atomic():
            ids = [row.id for row in model.select(model.id).where(condition()).limit(PURGE_BATCH_SIZE)]
            if not ids:
                return deleted
            deleted += model.delete().where(model.id.in_(ids)).execute()


def _delete_turns_in_batches(
    database: peewee.Database, models: LogModels, condition: Callable[[], Any]
) -> tuple[int, int]:
    turn, feedback = models.turn, models.feedback
    turns_deleted = feedback_deleted = 0
    while True:
        with database.atomic():
            ids = [row.id for row in turn.select(turn.id).where(condition()).limit(PURGE_BATCH_SIZE)]
            if not ids:
                return turns_deleted, feedback_deleted
            # Explicit rather than ON DELETE CASCADE, so the result can count feedback.
            feedback_deleted += feedback.delete().where(feedback.turn.in_(ids)).execute()
            turns_deleted += turn.delete().where(turn.id.in_(ids)).execute()
