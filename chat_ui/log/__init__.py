"""Conversation log: every question, answer, cited source and feedback of the chat, in
SQLite or MySQL, with a local journal for the times the database is unavailable.

    log = ConversationLog.open("sqlite:///var/veraclaim.sqlite3")
    conversation_id = log.start_conversation(user="examiner-7", title="청구항 1 해석")
    log.record_turn(TurnRecord(conversation_id=conversation_id, question=..., ...))
    log.rename_conversation(conversation_id, "청구항 1 해석 (수정)", user="examiner-7")
    log.delete_conversation(conversation_id, user="examiner-7")  # with its turns and feedback
    log.close()  # writes or journals every queued record
"""

from chat_ui.log.changes import DeletedConversation
from chat_ui.log.database import DEFAULT_DATABASE_URL, mask_url
from chat_ui.log.records import (
    FEEDBACK_RATINGS,
    TURN_STATUSES,
    CitedSource,
    ConversationInfo,
    FeedbackInfo,
    LoggedTurn,
    LogStatus,
    TurnRecord,
    TurnStatus,
)
from chat_ui.log.retention import PurgeResult
from chat_ui.log.settings import LogSettings
from chat_ui.log.store import ConversationLog

__all__ = [
    "DEFAULT_DATABASE_URL",
    "FEEDBACK_RATINGS",
    "TURN_STATUSES",
    "CitedSource",
    "ConversationInfo",
    "ConversationLog",
    "DeletedConversation",
    "FeedbackInfo",
    "LogSettings",
    "LogStatus",
    "LoggedTurn",
    "PurgeResult",
    "TurnRecord",
    "TurnStatus",
    "mask_url",
]
