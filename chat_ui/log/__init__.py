"""Conversation log: every question, answer and cited source of the chat, in SQLite or MySQL.

    log = ConversationLog.open("sqlite:///var/veraclaim.sqlite3")
    conversation_id = log.start_conversation(user="examiner-7", title="청구항 1 해석")
    log.record_turn(TurnRecord(conversation_id=conversation_id, question=..., ...))
"""

from chat_ui.log.database import DEFAULT_DATABASE_URL, mask_url
from chat_ui.log.records import (
    TURN_STATUSES,
    CitedSource,
    ConversationInfo,
    LoggedTurn,
    TurnRecord,
    TurnStatus,
)
from chat_ui.log.store import ConversationLog

__all__ = [
    "DEFAULT_DATABASE_URL",
    "TURN_STATUSES",
    "CitedSource",
    "ConversationInfo",
    "ConversationLog",
    "LoggedTurn",
    "TurnRecord",
    "TurnStatus",
    "mask_url",
]
