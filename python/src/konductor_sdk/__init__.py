"""Konductor from Python: barriers, locks, rate limits, Once, WaitGroup and Gates on
Kubernetes or ``konductor server``, with the same guarantees as ``koncli``.

Built on lightkube (sync and asyncio clients; kubeconfig, context, namespace and
in-cluster configuration are lightkube's). Python 3.9 or later."""

from ._connection import Connection
from .barrier import Barrier
from .gate import Gate, wait_for, wait_for_async
from .locks import Held, Mutex, RateLimit, RWMutex, Semaphore, hold_all
from .once import Once, Ran
from .waitgroup import MemberHold, WaitGroup
from .errors import (
    AlreadyDone,
    Busy,
    Failed,
    FailedForGood,
    GrantLost,
    Interrupted,
    KonductorError,
    NotDone,
    NotFound,
    Skipped,
    TimedOut,
    UsageError,
    WaitTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyDone",
    "Barrier",
    "Busy",
    "Connection",
    "Failed",
    "FailedForGood",
    "Gate",
    "GrantLost",
    "Held",
    "Interrupted",
    "KonductorError",
    "MemberHold",
    "Mutex",
    "NotDone",
    "NotFound",
    "Once",
    "Ran",
    "RWMutex",
    "RateLimit",
    "Semaphore",
    "Skipped",
    "TimedOut",
    "UsageError",
    "WaitGroup",
    "hold_all",
    "wait_for",
    "wait_for_async",
    "WaitTimeout",
]
