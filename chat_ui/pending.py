"""Conversations that this process started and whose row may not be in the database yet.

`ConversationLog.start_conversation` returns a new id at once and writes the row from a
background queue, so a follow-up question can arrive before the row exists. The answer
pipeline records each id it starts here, with its user, and accepts an id that the
database does not know only when it is recorded here for the same user.

The record is bounded: past `max_entries` ids, the oldest is dropped. An id is also
dropped once the database returns its row.

NOTE: the record is per process. A follow-up that reaches another chat replica before the
row is written starts a new conversation there, as does one after a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

# Ids remembered. A row normally reaches the database within one batch of the log writer,
# so even a busy server has far fewer conversations waiting than this.
DEFAULT_MAX_ENTRIES = 10_000


class PendingConversations:
    """Thread-safe map of recently started conversation ids to their users."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        self._max_entries = max_entries
        self._users: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)

    def add(self, conversation_id: str, user: str | None) -> None:
        """Record that this process started `conversation_id` for `user`."""
        with self._lock:
            self._users[conversation_id] = user
            self._users.move_to_end(conversation_id)
            while len(self._users) > self._max_entries:
                self._users.popitem(last=False)

    def started_for(self, conversation_id: str, user: str | None) -> bool:
        """Return whether this process started `conversation_id` for `user` and still records it."""
        with self._lock:
            return conversation_id in self._users and self._users[conversation_id] == user

    def discard(self, conversation_id: str) -> None:
        """Forget `conversation_id`, because the database has its row now."""
        with self._lock:
            self._users.pop(conversation_id, None)
