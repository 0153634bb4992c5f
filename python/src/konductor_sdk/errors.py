"""One exception class per outcome of the contract koncli follows (its exit codes), each
naming the object it is about: ``kind``, ``namespace``, ``name``."""

from __future__ import annotations

from typing import Optional


class KonductorError(Exception):
    """Anything that went wrong, about the ``kind`` object ``namespace/name``."""

    #: The koncli exit code this error stands for.
    exit_code = 1

    def __init__(self, kind: str, namespace: str, name: str, message: str) -> None:
        super().__init__(f"{kind} {namespace}/{name}: {message}")
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.message = message


class AlreadyDone(KonductorError):
    """The work is done already — a WaitGroup member marked done by an earlier attempt:
    nothing was run (koncli exits 0 then). Not a failure: catch it to go on."""

    exit_code = 0


class NotFound(KonductorError):
    """The object does not exist (exit 1)."""

    def __init__(self, kind: str, namespace: str, name: str, message: Optional[str] = None) -> None:
        super().__init__(kind, namespace, name, message or "not found")


class UsageError(KonductorError):
    """An argument that cannot be used (exit 2)."""

    exit_code = 2


class TimedOut(KonductorError):
    """The object timed out by its own timeout: phase Timeout (exit 3)."""

    exit_code = 3


class Failed(KonductorError):
    """The object failed: phase Failed (exit 4)."""

    exit_code = 4


class WaitTimeout(KonductorError):
    """The caller's own ``timeout=`` passed first (exit 5) — not the object's timeout."""

    exit_code = 5


class Busy(KonductorError):
    """The lock is held by others and the caller did not wait (exit 6)."""

    exit_code = 6


class GrantLost(KonductorError):
    """A held grant was lost: renewals unacknowledged too long, expired, or its claim
    deleted (exit 7). Stop using what the lock protects."""

    exit_code = 7


class FailedForGood(KonductorError):
    """Every allowed attempt failed (a Once key, a WaitGroup member; exit 8)."""

    exit_code = 8


class NotDone(KonductorError):
    """The work is not done for the key (``Once.check``; exit 9)."""

    exit_code = 9


class Skipped(KonductorError):
    """A lock was busy, so the work was skipped (``if_busy="skip"``; exit 10)."""

    exit_code = 10


class Interrupted(KonductorError, KeyboardInterrupt):
    """Interrupted by a signal while waiting; the claim was withdrawn (exit 130/143).
    Interrupted is not failed. It is also a :class:`KeyboardInterrupt`, so code that
    stops on Ctrl-C stops on it."""

    exit_code = 130
