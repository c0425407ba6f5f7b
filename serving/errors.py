"""Errors raised by the serving package.

Every error derives from `ServingError`. Errors of the streaming client derive from
`ModelServerError`. Each subclass also inherits the stdlib type that a caller already
catches: an unreachable server is a `ConnectionError`, a slow one a `TimeoutError` and a
rejected request a `ValueError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The fix that most errors point to, in the words of the CLI and the settings.
START_HINT = "start it with `veraclaim-serve local` or set VERACLAIM_MODEL_BASE_URL"


class ServingError(Exception):
    """Base class of every error that the serving package raises."""


class ModelServerError(ServingError):
    """A request to the model server failed.

    `server_message` is the error text that the server sent, if any. `partial_text` is the
    answer text streamed before the failure, so a caller can still show it, and
    `partial_reasoning` the reasoning (Qwen3's think block) streamed before it.
    """

    def __init__(
        self,
        message: str,
        *,
        base_url: str,
        server_message: str | None = None,
        status_code: int | None = None,
        partial_text: str = "",
        partial_reasoning: str = "",
    ) -> None:
        super().__init__(message)
        self.base_url = base_url
        self.server_message = server_message
        self.status_code = status_code
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


class ModelServerUnavailable(ModelServerError, ConnectionError):
    """The model server refused or dropped the connection, or responded with 429, 502 or 503."""


class ModelServerTimeout(ModelServerError, TimeoutError):
    """The model server did not respond in time, or its stream stalled: no token for longer
    than the client's stall timeout."""


class ModelServerRejected(ModelServerError, ValueError):
    """The model server rejected the request with a 4xx status, for example TGI's 422.

    TGI's 424 (generation failed) is a server failure and raises the base class instead.
    """


class ModelStreamError(ModelServerError):
    """A 200 stream failed: it carried an error event or an invalid event, or it ended
    without a finish reason.

    `error_type` is TGI's `error_type` field (`generation`, `validation`, `overloaded`,
    `incomplete_generation`), or None when no error event named one.
    """

    def __init__(self, message: str, *, base_url: str, error_type: str | None = None, **details: Any) -> None:
        super().__init__(message, base_url=base_url, **details)
        self.error_type = error_type


class PromptTooLong(ServingError, ValueError):
    """The prompt exceeds the server's token limits even without context chunks and history."""


class TokenLimitsUnknown(ServingError, LookupError):
    """The server reports no token limits (no `/info`), and the settings give none either."""


class LocalModelError(ServingError):
    """Preparing the local model folder failed."""


class LocalModelSourceMissing(LocalModelError, FileNotFoundError):
    """The GGUF file of the local model is not installed."""


class LocalServerError(ServingError, RuntimeError):
    """The local model server failed to start or stopped unexpectedly.

    `log_tail` contains the last lines of the server's log, which usually name the cause.
    """

    def __init__(self, message: str, *, log_path: Path | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_path = log_path
        self.log_tail = log_tail


class LocalServerModelNotFound(LocalServerError, FileNotFoundError):
    """The model path given to the local server does not exist."""


class LocalServerTimeout(LocalServerError, TimeoutError):
    """The local model server did not report healthy in time."""
