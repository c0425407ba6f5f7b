"""Records on their way to the database, and how they are written without duplicates.

An entry is a JSON-ready dict: the background writer's queue carries entries, and the
journal stores one per line. Every entry has a ``kind`` (conversation, turn or feedback)
and the UUID ``id`` that the log returned to the caller. Writing an entry twice, as after
a replay that a crash cut short or a commit whose reply was lost, therefore finds the
row and skips it.

Writes follow the order in which the log accepted them, but they need not: a turn whose
conversation row is missing (the conversation was journaled by another process, say)
creates a placeholder conversation, which the conversation's own entry fills in later.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from chat_ui.log.models import LogModels
from chat_ui.log.records import TurnRecord

logger = logging.getLogger(__name__)

Entry = dict[str, Any]

# Version of the entry layout, stored in every journal line.
ENTRY_FORMAT = 1
ENTRY_KINDS = ("conversation", "turn", "feedback")

# Fields that may contain personal data typed by a user or echoed by the model.
REDACTED_FIELDS = {
    "conversation": ("title",),
    "turn": ("question", "answer", "reasoning", "search_query", "error_message"),
    "feedback": ("comment",),
}


class EntryRejected(Exception):
    """An entry that can never be written as it is, such as feedback on an unknown turn."""


def conversation_entry(
    conversation_id: uuid.UUID, user: str | None, title: str, created_at: datetime
) -> Entry:
    """Return the entry that creates a conversation."""
    return {
        "format": ENTRY_FORMAT,
        "kind": "conversation",
        "id": str(conversation_id),
        "user": user,
        "title": title,
        "created_at": created_at.isoformat(),
    }


def turn_entry(
    turn_id: uuid.UUID,
    conversation_id: uuid.UUID,
    record: TurnRecord,
    *,
    sources_json: str,
    sampling_json: str,
    created_at: datetime,
) -> Entry:
    """Return the entry that stores a validated turn. Times are rounded to milliseconds."""
    first_token_ms = None if record.first_token_ms is None else round(record.first_token_ms)
    return {
        "format": ENTRY_FORMAT,
        "kind": "turn",
        "id": str(turn_id),
        "conversation_id": str(conversation_id),
        "question": record.question,
        "answer": record.answer,
        "sources": sources_json,
        "model_id": record.model_id,
        "model_base_url": record.model_base_url,
        "latency_ms": round(record.latency_ms),
        "first_token_ms": first_token_ms,
        "status": record.status,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "index_version": record.index_version,
        "search_query": record.search_query,
        "reasoning": record.reasoning,
        "sampling_params": sampling_json,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "invalid_citations": record.invalid_citations,
        "created_at": created_at.isoformat(),
    }


def feedback_entry(
    feedback_id: uuid.UUID,
    turn_id: uuid.UUID,
    rating: int,
    comment: str,
    user: str | None,
    created_at: datetime,
) -> Entry:
    """Return the entry that stores feedback on a turn."""
    return {
        "format": ENTRY_FORMAT,
        "kind": "feedback",
        "id": str(feedback_id),
        "turn_id": str(turn_id),
        "rating": rating,
        "comment": comment,
        "user": user,
        "created_at": created_at.isoformat(),
    }


def redact_entry(entry: Entry, redact: Callable[[str], str]) -> Entry:
    """Return a copy of ``entry`` with ``redact`` applied to its free-text fields."""
    redacted = dict(entry)
    for name in REDACTED_FIELDS.get(entry.get("kind", ""), ()):
        value = redacted.get(name)
        if isinstance(value, str):
            redacted[name] = redact(value)
    return redacted


def check_entry(entry: Any) -> Entry:
    """Return ``entry`` if it has a known format, kind and a UUID id, else raise EntryRejected.

    The journal calls this on every line it reads, because a line may come from an older
    or newer release.
    """
    if not isinstance(entry, dict):
        raise EntryRejected(f"an entry must be a JSON object, got {type(entry).__name__}")
    if entry.get("format") != ENTRY_FORMAT:
        raise EntryRejected(
            f"unknown entry format {entry.get('format')!r}, expected {ENTRY_FORMAT}"
        )
    if entry.get("kind") not in ENTRY_KINDS:
        raise EntryRejected(f"unknown entry kind {entry.get('kind')!r}")
    try:
        uuid.UUID(str(entry.get("id")))
    except ValueError:
        raise EntryRejected(f"entry id {entry.get('id')!r} is not a UUID") from None
    return entry


def apply_entries(models: LogModels, entries: Iterable[Entry]) -> int:
    """Write ``entries`` in order, skipping rows that already exist; return the rows added.

    Run inside a transaction, so that each existence check and its insert see the same
    state. Raises EntryRejected for an entry that can never be written, and the database
    error for one that cannot be written now.
    """
    written = 0
    for entry in entries:
        kind = entry["kind"]
        if kind == "conversation":
            written += _apply_conversation(models, entry)
        elif kind == "turn":
            written += _apply_turn(models, entry)
        else:
            written += _apply_feedback(models, entry)
    return written


def _apply_conversation(models: LogModels, entry: Entry) -> int:
    conversation = models.conversation
    conversation_id = uuid.UUID(entry["id"])
    created_at = datetime.fromisoformat(entry["created_at"])
    row = conversation.get_or_none(conversation.id == conversation_id)

    if row is None:
        conversation.insert(
            id=conversation_id,
            user=entry["user"],
            title=entry["title"],
            created_at=created_at,
            updated_at=created_at,
        ).execute()
        return 1

    # A placeholder that a turn created before this entry arrived: fill it in.
    if row.user is None and row.title == "" and (entry["user"] is not None or entry["title"]):
        conversation.update(
            user=entry["user"], title=entry["title"], created_at=min(row.created_at, created_at)
        ).where(conversation.id == conversation_id).execute()
    return 0


def _apply_turn(models: LogModels, entry: Entry) -> int:
    conversation, turn = models.conversation, models.turn
    turn_id = uuid.UUID(entry["id"])
    if turn.select().where(turn.id == turn_id).exists():
        return 0

    conversation_id = uuid.UUID(entry["conversation_id"])
    created_at = datetime.fromisoformat(entry["created_at"])
    if not conversation.select().where(conversation.id == conversation_id).exists():
        logger.warning(
            "Conversation %s of turn %s is not in the database; creating an empty one so the "
            "turn is kept",
            conversation_id,
            turn_id,
        )
        conversation.insert(
            id=conversation_id, user=None, title="", created_at=created_at, updated_at=created_at
        ).execute()

    turn.insert(
        id=turn_id,
        conversation=conversation_id,
        question=entry["question"],
        answer=entry["answer"],
        sources=entry["sources"],
        model_id=entry["model_id"],
        model_base_url=entry["model_base_url"],
        latency_ms=entry["latency_ms"],
        first_token_ms=entry["first_token_ms"],
        status=entry["status"],
        error_type=entry["error_type"],
        error_message=entry["error_message"],
        index_version=entry["index_version"],
        search_query=entry["search_query"],
        reasoning=entry["reasoning"],
        sampling_params=entry["sampling_params"],
        input_tokens=entry["input_tokens"],
        output_tokens=entry["output_tokens"],
        # Entries journaled before the field existed have no count.
        invalid_citations=entry.get("invalid_citations"),
        created_at=created_at,
    ).execute()

    # Conditional, so that a replayed older turn never moves updated_at backwards.
    conversation.update(updated_at=created_at).where(
        (conversation.id == conversation_id) & (conversation.updated_at < created_at)
    ).execute()
    return 1


def _apply_feedback(models: LogModels, entry: Entry) -> int:
    feedback, turn = models.feedback, models.turn
    feedback_id = uuid.UUID(entry["id"])
    if feedback.select().where(feedback.id == feedback_id).exists():
        return 0

    turn_id = uuid.UUID(entry["turn_id"])
    if not turn.select().where(turn.id == turn_id).exists():
        raise EntryRejected(f"feedback {feedback_id} refers to turn {turn_id}, which is not stored")

    feedback.insert(
        id=feedback_id,
        turn=turn_id,
        rating=entry["rating"],
        comment=entry["comment"],
        user=entry["user"],
        created_at=datetime.fromisoformat(entry["created_at"]),
    ).execute()
    return 1
