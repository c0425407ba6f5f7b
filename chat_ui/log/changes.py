"""Changes to stored conversations (rename, delete) and what the writer needs to order them.

The log's writes are entries that a background thread inserts later (writer.py). A change
to rows that already exist must not overtake those entries. A turn whose conversation is
missing creates an empty placeholder conversation, so a delete that ran while a turn was
still queued would be undone when the turn arrives. Changes therefore run
on the writer thread as a ``Change`` in the same queue. The ids a delete removed become
``Tombstones``, and the writer drops the entries that still name them.

Every change is scoped to an owner: it only touches a conversation whose ``user`` column
equals the given user (NULL for ``None``), so a caller cannot change another user's rows
by guessing an id. The functions here must run inside a transaction.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chat_ui.log.models import LogModels

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Deleted ids that the writer remembers. An entry that names one comes from a chat turn
# that was still streaming or queued during the delete, seconds to minutes before, so the
# most recent ids are enough.
MAX_TOMBSTONES = 10_000


@dataclass
class Change(Generic[_T]):
    """A change to stored rows, queued to run on the writer thread in queue order."""

    action: Callable[[], _T]
    # Ids that the committed change removed, so that the writer drops later entries for them.
    tombstones_of: Callable[[_T], Iterable[str]] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: _T | None = None
    error: BaseException | None = None


class ChangeUnavailable(Exception):
    """The database cannot take a change now: it is unreachable, or the journal contains
    entries that must reach it first. ``detail`` has any password scrubbed."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Tombstones:
    """Ids of deleted conversations and turns, the most recent MAX_TOMBSTONES. Thread-safe.

    NOTE: each writer keeps its own. A late turn written through another ConversationLog on
    the same database, or by another replica, still creates a placeholder conversation
    without a user.
    """

    def __init__(self, limit: int = MAX_TOMBSTONES) -> None:
        self._limit = limit
        # Insertion-ordered, so that the oldest ids are forgotten first.
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, ids: Iterable[str]) -> None:
        with self._lock:
            for value in ids:
                self._ids[value] = None
                self._ids.move_to_end(value)
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def __contains__(self, value: object) -> bool:
        with self._lock:
            return value in self._ids

    def drops(self, entry: dict[str, Any]) -> bool:
        """Return whether ``entry`` belongs to a deleted conversation, logging the drop."""
        with self._lock:
            if not self._ids:
                return False
            # A conversation entry names itself, a turn its conversation, feedback its turn.
            keys = (entry.get("id"), entry.get("conversation_id"), entry.get("turn_id"))
            hit = next((key for key in keys if key in self._ids), None)
        if hit is None:
            return False
        logger.info(
            "Dropped %s entry %s: it belongs to %s, which was deleted",
            entry.get("kind"),
            entry.get("id"),
            hit,
        )
        return True


@dataclass(frozen=True)
class DeletedConversation:
    """Rows removed by a delete: the conversation's id, its turns' ids and the feedback count."""

    conversation_id: str
    turn_ids: tuple[str, ...]
    feedback: int

    def ids(self) -> list[str]:
        return [self.conversation_id, *self.turn_ids]


def _owned(models: LogModels, conversation_id: uuid.UUID, user: str | None) -> Any:
    conversation = models.conversation
    owner = conversation.user.is_null() if user is None else conversation.user == user
    return (conversation.id == conversation_id) & owner


def rename_conversation(
    models: LogModels, conversation_id: uuid.UUID, user: str | None, title: str
) -> bool:
    """Set the title of ``user``'s conversation; return False when there is none.

    updated_at is left alone: it orders the history list by the last question asked.
    """
    conversation = models.conversation
    if not conversation.select().where(_owned(models, conversation_id, user)).exists():
        return False
    conversation.update(title=title).where(conversation.id == conversation_id).execute()
    return True


def delete_conversation(
    models: LogModels, conversation_id: uuid.UUID, user: str | None
) -> DeletedConversation | None:
    """Delete ``user``'s conversation with its turns and their feedback; None when there is
    no such conversation."""
    conversation, turn, feedback = models
    if not conversation.select().where(_owned(models, conversation_id, user)).exists():
        return None

    # Children first and explicitly, rather than by ON DELETE CASCADE, because SQLite only
    # cascades on connections that enabled foreign keys, and so that the count is known.
    turn_ids = [row.id for row in turn.select(turn.id).where(turn.conversation == conversation_id)]
    feedback_count = 0
    if turn_ids:
        feedback_count = feedback.delete().where(feedback.turn.in_(turn_ids)).execute()
        turn.delete().where(turn.id.in_(turn_ids)).execute()
    conversation.delete().where(conversation.id == conversation_id).execute()

    logger.info(
        "Deleted conversation %s with %d turns and %d feedback records",
        conversation_id,
        len(turn_ids),
        feedback_count,
    )
    return DeletedConversation(
        conversation_id=str(conversation_id),
        turn_ids=tuple(str(turn_id) for turn_id in turn_ids),
        feedback=feedback_count,
    )
