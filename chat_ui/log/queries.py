"""Read queries of the conversation log, and the conversion of rows into records.

Each function must run inside a connection context and returns None where the store
raises a not-found error.
"""

from __future__ import annotations

import uuid
from typing import Any

from chat_ui.log.models import LogModels, as_utc
from chat_ui.log.records import (
    ConversationInfo,
    FeedbackInfo,
    LoggedTurn,
    decode_sampling_params,
    decode_sources,
)


def conversation_turns(models: LogModels, conversation_id: uuid.UUID) -> list[LoggedTurn] | None:
    """Return a conversation's turns, oldest first, or None for an unknown conversation."""
    conversation, turn = models.conversation, models.turn
    if not conversation.select().where(conversation.id == conversation_id).exists():
        return None
    # The id breaks ties between turns stored in the same microsecond, so the order is at
    # least stable.
    rows = turn.select().where(turn.conversation == conversation_id).order_by(turn.created_at, turn.id)
    return [_to_logged_turn(row) for row in rows]


def turn_by_id(models: LogModels, turn_id: uuid.UUID) -> LoggedTurn | None:
    row = models.turn.get_or_none(models.turn.id == turn_id)
    return None if row is None else _to_logged_turn(row)


def conversation_by_id(models: LogModels, conversation_id: uuid.UUID) -> ConversationInfo | None:
    row = models.conversation.get_or_none(models.conversation.id == conversation_id)
    return None if row is None else _to_conversation_info(row)


def user_conversations(models: LogModels, user: str | None, limit: int) -> list[ConversationInfo]:
    """Return a user's conversations (None: those without a user), most recent first."""
    conversation = models.conversation
    owner = conversation.user.is_null() if user is None else conversation.user == user
    rows = (
        conversation.select()
        .where(owner)
        .order_by(conversation.updated_at.desc(), conversation.id)
        .limit(limit)
    )
    return [_to_conversation_info(row) for row in rows]


def turn_feedback(models: LogModels, turn_id: uuid.UUID) -> list[FeedbackInfo]:
    feedback = models.feedback
    rows = feedback.select().where(feedback.turn == turn_id).order_by(feedback.created_at, feedback.id)
    return [
        FeedbackInfo(
            feedback_id=str(row.id),
            turn_id=str(row.turn_id),
            rating=row.rating,
            comment=row.comment,
            user=row.user,
            created_at=as_utc(row.created_at),
        )
        for row in rows
    ]


def _to_logged_turn(row: Any) -> LoggedTurn:
    return LoggedTurn(
        turn_id=str(row.id),
        conversation_id=str(row.conversation_id),
        question=row.question,
        answer=row.answer,
        sources=decode_sources(row.sources),
        model_id=row.model_id,
        model_base_url=row.model_base_url,
        latency_ms=row.latency_ms,
        first_token_ms=row.first_token_ms,
        status=row.status,
        error_type=row.error_type,
        error_message=row.error_message,
        index_version=row.index_version,
        search_query=row.search_query,
        reasoning=row.reasoning,
        sampling_params=decode_sampling_params(row.sampling_params),
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        invalid_citations=row.invalid_citations,
        created_at=as_utc(row.created_at),
    )


def _to_conversation_info(row: Any) -> ConversationInfo:
    return ConversationInfo(
        conversation_id=str(row.id),
        user=row.user,
        title=row.title,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )
