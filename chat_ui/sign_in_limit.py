"""Locks a user name after repeated failed sign-ins, to slow down password guessing.

After `max_failures` failed sign-ins for one user name within `failure_window_s`, every
attempt for that name is rejected for a lock period, even with the right password. The
first lock lasts `lock_initial_s`, each further lock twice as long as the one before, up
to `lock_max_s`. A successful sign-in clears the failures and the lock count of its name.

The state is per process and in memory: a restart clears it, and each chat replica counts
on its own. The limit is per user name, not per client address, so a reverse proxy that
limits the request rate of /login is still the defence against guessing across many names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# User names tracked at once. Past this, names without a lock and without a recent failure
# are forgotten first, so a flood of invented names cannot exhaust memory.
MAX_TRACKED_NAMES = 10_000
# Characters of a user name that are kept and logged. Account names have at most 255
# characters (the log's user column), so longer names never match an account.
NAME_CHARS = 256


@dataclass
class _NameState:
    failures: deque[float] = field(default_factory=deque)  # clock times of recent failures
    locked_until: float = float("-inf")
    locks: int = 0  # locks so far, which sets the length of the next one
    rejected_while_locked: int = 0


class SignInLimiter:
    """Counts failed sign-ins per user name and locks a name that fails too often.

    Times are in seconds. `clock` returns the current time, and tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        failure_window_s: float = 15 * 60,
        lock_initial_s: float = 30.0,
        lock_max_s: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures!r}")
        if failure_window_s <= 0:
            raise ValueError(f"failure_window_s must be positive seconds, got {failure_window_s!r}")
        if not 0 < lock_initial_s <= lock_max_s:
            raise ValueError(
                "lock periods must satisfy 0 < lock_initial_s <= lock_max_s, "
                f"got {lock_initial_s!r} and {lock_max_s!r}"
            )
        self.max_failures = max_failures
        self.failure_window_s = failure_window_s
        self.lock_initial_s = lock_initial_s
        self.lock_max_s = lock_max_s
        self._clock = clock
        self._names: dict[str, _NameState] = {}
        self._lock = threading.Lock()

    def lock_remaining_s(self, user: str) -> float:
        """Return the seconds left in `user`'s lock, or 0.0 when the name may sign in."""
        now = self._clock()
        with self._lock:
            state = self._names.get(user[:NAME_CHARS])
            return 0.0 if state is None else max(0.0, state.locked_until - now)

    def reject_if_locked(self, user: str) -> bool:
        """Return True, and count the attempt, when `user` is locked.

        Only the first rejected attempt of each lock is logged, so a flood of attempts
        cannot flood the log.
        """
        now = self._clock()
        with self._lock:
            state = self._names.get(user[:NAME_CHARS])
            if state is None or state.locked_until <= now:
                return False
            state.rejected_while_locked += 1
            first = state.rejected_while_locked == 1
        if first:
            logger.warning(
                "rejected a sign-in for locked user %r, %.0f s before the lock ends; "
                "later attempts during this lock are counted, not logged",
                user[:NAME_CHARS],
                state.locked_until - now,
            )
        return True

    def record_failure(self, user: str) -> None:
        """Count a failed sign-in for `user`, and lock the name when it reaches max_failures."""
        now = self._clock()
        name = user[:NAME_CHARS]
        with self._lock:
            state = self._names.get(name)
            if state is None:
                self._forget_idle_names(now)
                state = self._names[name] = _NameState()

            # Only failures within the window count.
            while state.failures and state.failures[0] <= now - self.failure_window_s:
                state.failures.popleft()
            state.failures.append(now)
            if len(state.failures) < self.max_failures:
                return

            lock_s = min(self.lock_max_s, self.lock_initial_s * 2**state.locks)
            state.locks += 1
            state.locked_until = now + lock_s
            state.failures.clear()
            locks = state.locks
            rejected, state.rejected_while_locked = state.rejected_while_locked, 0
        logger.warning(
            "locked sign-in for user %r for %.0f s after %d failed attempts within %.0f s "
            "(lock %d; %d attempts were rejected during the previous lock)",
            name,
            lock_s,
            self.max_failures,
            self.failure_window_s,
            locks,
            rejected,
        )

    def record_success(self, user: str) -> None:
        """Clear `user`'s failures and lock count after a successful sign-in."""
        with self._lock:
            self._names.pop(user[:NAME_CHARS], None)

    def _forget_idle_names(self, now: float) -> None:
        # Called with the lock held. A dropped name loses its count of locks, so its next
        # lock starts again at lock_initial_s.
        if len(self._names) < MAX_TRACKED_NAMES:
            return
        idle = [
            name
            for name, state in self._names.items()
            if state.locked_until <= now and (not state.failures or state.failures[-1] <= now - self.failure_window_s)
        ]
        for name in idle:
            del self._names[name]
        if idle:
            logger.info("forgot %d user names without a recent failed sign-in", len(idle))
