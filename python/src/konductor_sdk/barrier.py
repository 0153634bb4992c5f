"""Barriers: N processes wait until enough of them have arrived.

    from konductor_sdk import Barrier

    Barrier("etl").arrive()              # this holder arrived (stable identity)
    Barrier("etl").wait(timeout=600)     # returns the status once Open

``wait`` watches (no polling), waits for a barrier not created yet, and raises
:class:`~konductor_sdk.errors.Failed` (phase Failed), :class:`~konductor_sdk.errors.TimedOut`
(the barrier's own timeout) or :class:`~konductor_sdk.errors.WaitTimeout` (``timeout=``)."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

from lightkube.core.exceptions import ApiError

from . import _resources as res
from ._connection import Connection, default_connection
from ._names import arrival_name
from .errors import Failed, NotFound, TimedOut, WaitTimeout
from ._threads import in_thread
from ._watching import wait_until
from .identity import arrival_holder

BARRIER_LABEL = "konductor.io/barrier"


def _status(obj: Any) -> Dict[str, Any]:
    return dict(getattr(obj, "status", None) or {})


class Barrier:
    """The Barrier ``name`` (in the connection's namespace unless ``namespace`` says)."""

    kind = "barrier"

    def __init__(
        self,
        name: str,
        *,
        namespace: Optional[str] = None,
        connection: Optional[Connection] = None,
    ) -> None:
        self.name = name
        self.connection = connection or default_connection()
        self.namespace = namespace or self.connection.namespace

    def _not_found(self) -> NotFound:
        return NotFound(self.kind, self.namespace, self.name)

    def create(
        self, expected: int, *, quorum: Optional[int] = None, timeout: Optional[str] = None
    ) -> Dict[str, Any]:
        """Creates the barrier: it opens at ``expected`` arrivals (or ``quorum``), and
        times out after ``timeout`` (a Go duration, ``"30m"``) if given."""
        spec: Dict[str, Any] = {"expected": expected}
        if quorum is not None:
            spec["quorum"] = quorum
        if timeout is not None:
            spec["timeout"] = timeout
        created = self.connection.client.create(
            res.Barrier(metadata={"name": self.name}, spec=spec), namespace=self.namespace
        )
        return dict(created.spec)

    def status(self) -> Dict[str, Any]:
        """The barrier's status as the controller last wrote it."""
        try:
            return _status(self.connection.client.get(res.Barrier, self.name, namespace=self.namespace))
        except ApiError as error:
            if error.status.code == 404:
                raise self._not_found() from error
            raise

    def arrive(
        self, holder: Optional[str] = None, *, failed: bool = False, message: Optional[str] = None
    ) -> str:
        """Records that ``holder`` (default: ``$KONDUCTOR_HOLDER``, ``$POD_NAME``, the
        hostname) arrived — or, with ``failed=True``, will never arrive. Arriving twice
        counts once. Returns the holder."""
        holder = arrival_holder(holder)
        client = self.connection.client
        try:
            barrier = client.get(res.Barrier, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code == 404:
                raise self._not_found() from error
            raise
        spec: Dict[str, Any] = {
            "barrier": self.name,
            "holder": holder,
            "outcome": "Failed" if failed else "Succeeded",
        }
        if message is not None:
            spec["message"] = message
        arrival = res.Arrival(
            metadata={
                "name": arrival_name(self.name, holder),
                "labels": {BARRIER_LABEL: self.name},
                "ownerReferences": [
                    {
                        "apiVersion": f"{res.GROUP}/{res.VERSION}",
                        "kind": "Barrier",
                        "name": self.name,
                        "uid": barrier.metadata.uid,
                    }
                ],
            },
            spec=spec,
        )
        try:
            client.create(arrival, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 409:
                raise
        return holder

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits until the barrier is Open and returns its status; a barrier not created
        yet is waited for. ``timeout`` (seconds) bounds the wait."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def opened(obj: Any) -> Optional[Dict[str, Any]]:
            status = _status(obj)
            self._check(status)
            return status if status.get("phase") == "Open" else None

        status = wait_until(self.connection, res.Barrier, self.name, self.namespace, deadline, opened)
        if status is not None:
            return status
        raise WaitTimeout(self.kind, self.namespace, self.name, f"not open within {timeout}s")

    def _check(self, status: Dict[str, Any]) -> None:
        phase = status.get("phase")
        if phase == "Failed":
            raise Failed(self.kind, self.namespace, self.name, "the barrier failed")
        if phase == "Timeout":
            raise TimedOut(self.kind, self.namespace, self.name, "the barrier timed out")

    async def arrive_async(self, holder: Optional[str] = None, *, failed: bool = False, message: Optional[str] = None) -> str:
        """:meth:`arrive` for asyncio."""
        return await in_thread(lambda: self.arrive(holder, failed=failed, message=message))

    async def wait_async(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """:meth:`wait` for asyncio (the watch runs on a thread of its own)."""
        return await in_thread(self.wait, timeout)
