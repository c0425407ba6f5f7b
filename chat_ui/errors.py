"""Errors raised by the chat_ui package.

Every error derives from ``ChatUIError`` and also from the stdlib type a caller would
already catch, so ``except ValueError`` or ``except ConnectionError`` keeps working.
Messages name the failing value and the fix. They never contain a database password.
"""

from __future__ import annotations


class ChatUIError(Exception):
    """Base class of every error raised by chat_ui."""


class InvalidDatabaseURL(ChatUIError, ValueError):
    """The conversation log's database URL has an unsupported form."""


class LogDatabaseError(ChatUIError, ConnectionError):
    """The conversation log could not connect to, read from or write to its database."""


class InvalidLogValueError(ChatUIError, ValueError):
    """A record field or argument given to the conversation log is invalid."""


class ConversationNotFoundError(ChatUIError, LookupError):
    """No conversation with the given id exists in the log."""


class TurnNotFoundError(ChatUIError, LookupError):
    """No turn with the given id exists in the log."""


class LogClosedError(ChatUIError, RuntimeError):
    """The conversation log was used after ``close()``."""
