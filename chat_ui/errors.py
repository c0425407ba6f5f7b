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


class LogSchemaError(ChatUIError, RuntimeError):
    """The log database's schema cannot be used as it is.

    Its text columns are not utf8mb4, its version is newer than this code, or a migration
    is pending while automatic migration is off.
    """


class LogFlushTimeout(ChatUIError, TimeoutError):
    """The conversation log's background writer did not finish its pending writes in time."""


class LogJournalError(ChatUIError, OSError):
    """The conversation log's local journal directory cannot be created or written."""


class SecretNotFoundError(ChatUIError, LookupError):
    """A database secret named in the settings does not exist in AWS SSM Parameter Store."""


class SecretUnavailableError(ChatUIError, ConnectionError):
    """AWS SSM Parameter Store could not be reached or refused to return a database secret."""


class RerankerLoadError(ChatUIError, OSError):
    """The cross-encoder named by the reranker setting could not be loaded."""


class PageError(ChatUIError):
    """Base class of the errors that stop a cited page from being shown as an image."""


class PageSourceRejected(PageError, PermissionError):
    """The citation's source URI is not a local PDF inside the index's source folder."""


class PageSourceRemote(PageError, ValueError):
    """The source is stored remotely (s3://), so the chat server has no file to render."""


class PageNotFound(PageError, LookupError):
    """The PDF is missing or has no page with the cited number."""


class ShareWithoutAuthError(ChatUIError, ValueError):
    """A share link was requested while no sign-in accounts are configured."""
