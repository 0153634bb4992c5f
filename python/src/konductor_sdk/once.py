"""Once: run a piece of work once per key across any number of replicas.

    from konductor_sdk import Once

    ran = Once("db-migrate").run(migrate, key=schema_sha)
    if ran.executed:
        print("migrated with fencing token", ran.token)

    @Once("warm-cache", key="v3")
    def warm():
        ...
    warm()          # runs here, or not at all if the key is done

The claim is a Permit on the Once, held like a lock's (renewed, fenced, lost when not
renewed in time); one caller runs the work as the executor and records its outcome,
the others return without running once the key is done. Work that raises is recorded
as failed (the next waiter tries, up to the Once's ``maxAttempts``); a key whose every
attempt failed raises :class:`~konductor_sdk.errors.FailedForGood` — never success."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Optional, Tuple, TypeVar

from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from . import _resources as res
from ._connection import Connection, default_connection
from ._threads import in_thread
from ._watching import wait_until
from .errors import FailedForGood, GrantLost, NotDone, NotFound, WaitTimeout
from .locks import _Lock

T = TypeVar("T")


@dataclass
class Ran(Generic[T]):
    """What ``run`` came to: ``executed`` here (with the fencing token and what the work
    returned) or already done (``token`` is then the one it was done with)."""

    executed: bool
    token: int
    value: Optional[T] = None


class _KeyFinished(Exception):
    def __init__(self, done: Dict[str, Any]) -> None:
        super().__init__(done.get("key"))
        self.done = done


def _finished(status: Dict[str, Any], key: str) -> Optional[Dict[str, Any]]:
    for done in reversed(status.get("completedKeys") or []):
        if done.get("key") == key:
            return dict(done)
    return None


class _OnceClaim(_Lock):
    kind = "Once"
    word = "once"
    resource = res.Once
    follows_lock = True

    def __init__(self, name: str, key: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.key = key

    def _spec_for_creation(self) -> Dict[str, Any]:
        return {"ttl": self.ttl} if self.ttl else {}

    def _permit_spec(self) -> Dict[str, Any]:
        return {"key": self.key} if self.key else {}

    def _stop_waiting(self, status: Dict[str, Any]) -> None:
        done = _finished(status, self.key)
        if done is not None:
            raise _KeyFinished(done)


class Once:
    """The Once ``name``: ``run(fn, key=…)`` runs ``fn`` once per key across replicas.
    Also a decorator: ``@Once("name", key="v1")``."""

    def __init__(self, name: str, *, key: Optional[str] = None, **options: Any) -> None:
        self.name = name
        self.key = key
        self.options = options
        self.token: Optional[int] = None

    def run(self, work: Callable[..., T], *args: Any, key: Optional[str] = None, **kwargs: Any) -> Ran[T]:
        """Runs ``work(*args, **kwargs)`` if this caller becomes the executor for
        ``key`` (default: the Once's own key); returns without running if the key is
        done. While it runs, ``self.token`` is the fencing token."""
        claim = _OnceClaim(self.name, key if key is not None else (self.key or ""), **self.options)
        lock = claim._ensure()
        status = dict(getattr(lock, "status", None) or {})
        effective = claim.key or str(dict(lock.spec or {}).get("key") or "")
        claim.key = effective
        done = _finished(status, effective)
        if done is None:
            try:
                self.token = claim.acquire()
            except _KeyFinished as finished:
                done = finished.done
        if done is not None:
            if done.get("phase") != "Succeeded":
                raise FailedForGood("once", claim.namespace, self.name, f"key {effective!r} failed for good")
            return Ran(executed=False, token=int(done.get("fencingToken") or 0))
        token = self.token
        assert token is not None
        try:
            value = work(*args, **kwargs)
        except KeyboardInterrupt as error:
            # Interrupted is not failed: the next claim runs the work again (within the
            # Once's maxInterruptions).
            self._report(claim, token, "Failed", f"interrupted: {type(error).__name__}", interrupted=True)
            raise
        except BaseException as error:
            self._report(claim, token, "Failed", f"{type(error).__name__}: {error}")
            raise
        if not claim.held:
            raise GrantLost("once", claim.namespace, self.name, claim._lost or "lost while the work ran")
        self._report(claim, token, "Succeeded", None)
        return Ran(executed=True, token=token, value=value)

    def _report(
        self, claim: _OnceClaim, token: int, result: str, message: Optional[str], interrupted: bool = False
    ) -> None:
        outcome: Dict[str, Any] = {"result": result, "fencingToken": token}
        if interrupted:
            outcome["interrupted"] = True
        if message:
            outcome["message"] = message[:1024]
        client = claim.connection.client
        client.patch(
            res.Permit,
            claim._permit,
            {"metadata": {"uid": claim._uid}, "spec": {"outcome": outcome}},
            namespace=claim.namespace,
            patch_type=PatchType.MERGE,
        )
        # The outcome is recorded when the Once's history has this token's attempt.
        deadline = time.monotonic() + (claim._timing.ttl if claim._timing else 300.0)
        wait_until(
            claim.connection,
            res.Once,
            self.name,
            claim.namespace,
            deadline,
            lambda once: True if self._recorded(once, token) else None,
        )
        claim.release()

    async def run_async(self, work: Callable[..., Any], *args: Any, key: Optional[str] = None, **kwargs: Any) -> Ran[Any]:
        """:meth:`run` for asyncio: ``work`` may be a coroutine function (awaited on the
        event loop) or a plain one (run in a worker thread)."""
        import asyncio
        import inspect

        loop = asyncio.get_running_loop()

        def blocking_work() -> Any:
            if inspect.iscoroutinefunction(work):
                return asyncio.run_coroutine_threadsafe(work(*args, **kwargs), loop).result()
            return work(*args, **kwargs)

        return await in_thread(lambda: self.run(blocking_work, key=key))

    def _lookup(self, once: Any, key: Optional[str]) -> Optional[Dict[str, Any]]:
        """The finished record of `key` (default: the Once's key) on `once`, or None;
        raises :class:`FailedForGood` for a key whose every attempt failed."""
        effective = key if key is not None else (self.key or str(dict(once.spec or {}).get("key") or ""))
        done = _finished(dict(getattr(once, "status", None) or {}), effective)
        if done is not None and done.get("phase") != "Succeeded":
            raise FailedForGood("once", once.metadata.namespace, self.name, f"key {effective!r} failed for good")
        return done

    def _where(self) -> Tuple[Connection, str]:
        """The connection and namespace the Once is in."""
        connection = self.options.get("connection") or default_connection()
        return connection, self.options.get("namespace") or connection.namespace

    def _get(self) -> Any:
        connection, namespace = self._where()
        try:
            return connection.client.get(res.Once, self.name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                raise NotFound("once", namespace, self.name, "not found") from None
            raise

    def status(self) -> Dict[str, Any]:
        """The Once's status as the controller last wrote it."""
        return dict(getattr(self._get(), "status", None) or {})

    def check(self, key: Optional[str] = None) -> Dict[str, Any]:
        """Without waiting: the record of ``key`` (default: the Once's key) if its work
        is done; raises :class:`NotDone` if it is not (yet), :class:`FailedForGood` if
        every attempt failed — as ``koncli once check`` exits 0, 9 or 8. To act on it,
        use :meth:`run`, which cannot run twice; check-then-act can."""
        once = self._get()
        done = self._lookup(once, key)
        if done is None:
            raise NotDone("once", once.metadata.namespace, self.name, "the work is not done for this key")
        return done

    def wait(self, timeout: Optional[float] = None, key: Optional[str] = None) -> Dict[str, Any]:
        """Waits until the work for ``key`` is done (a Once not created yet is waited
        for) and returns its record; :class:`FailedForGood` if every attempt failed,
        :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        connection, namespace = self._where()
        done = wait_until(connection, res.Once, self.name, namespace, deadline, lambda once: self._lookup(once, key))
        if done is not None:
            return done
        raise WaitTimeout("once", namespace, self.name, f"not done within {timeout}s")

    async def wait_async(self, timeout: Optional[float] = None, key: Optional[str] = None) -> Dict[str, Any]:
        """:meth:`wait` for asyncio (the watch runs on a thread of its own)."""
        return await in_thread(self.wait, timeout, key)

    @staticmethod
    def _recorded(once: Any, token: int) -> bool:
        history = dict(getattr(once, "status", None) or {}).get("history") or []
        return any(a.get("fencingToken") == token and a.get("outcome") != "Lost" for a in history)

    def __call__(self, work: Callable[..., T]) -> Callable[..., Ran[T]]:
        """As a decorator: the function runs once per key across replicas."""

        @functools.wraps(work)
        def once(*args: Any, **kwargs: Any) -> Ran[T]:
            return self.run(work, *args, **kwargs)

        return once
