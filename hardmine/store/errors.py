"""The run store's exceptions and warning."""
from __future__ import annotations


class RunStoreError(ValueError):
    """A run directory's bookkeeping is unusable; the message says which file to delete or fix."""


class RunLockedError(RunStoreError):
    """Another process holds the run's lock (``<run>/.lock``).

    ``holder``: the lock's JSON (pid, host, started, command), or None when it is unreadable;
    ``lock_path``: the lock file to delete if that process is gone.
    """

    def __init__(self, message: str, holder: dict | None = None, lock_path: str | None = None):
        super().__init__(message)
        self.holder = holder
        self.lock_path = lock_path


class RunStoreWarning(UserWarning):
    """A run store repaired itself (damaged manifest, stale lock): emitted when the store has no ``log``."""
