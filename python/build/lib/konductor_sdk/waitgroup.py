"""WaitGroups: fan-out / fan-in with named members.

    from konductor_sdk import WaitGroup

    wg = WaitGroup("ingest")
    wg.create(expected=3)                 # or add members as work is found
    wg.add("file-01", "file-02", "file-03")
    with wg.member("file-01"):            # done when the block ends, failed if it raises
        ingest("file-01")
    wg.wait(timeout=3600)                 # returns the status once Done

A member is a WaitGroupMember object named as koncli names it, so ``koncli waitgroup
done ingest --member file-01`` and Python mark the same member. ``wait`` raises
:class:`~konductor_sdk.errors.Failed` when more than ``maxFailed`` members failed,
:class:`~konductor_sdk.errors.TimedOut` for the group's own timeout and
:class:`~konductor_sdk.errors.WaitTimeout` for ``timeout=``."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Dict, Iterator, Optional

from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from . import _resources as res
from ._connection import Connection, default_connection
from ._names import claim_name
from ._watching import follow
from .errors import Failed, NotFound, TimedOut, WaitTimeout

WAITGROUP_LABEL = "konductor.io/waitgroup"


def member_name(group: str, member: str) -> str:
    """The object name of member ``member`` of ``group`` (as the Rust side makes it)."""
    return claim_name(group, member)


class WaitGroup:
    """The WaitGroup ``name``."""

    kind = "waitgroup"

    def __init__(self, name: str, *, namespace: Optional[str] = None, connection: Optional[Connection] = None) -> None:
        self.name = name
        self.connection = connection or default_connection()
        self.namespace = namespace or self.connection.namespace

    def create(self, expected: Optional[int] = None, *, max_failed: int = 0, timeout: Optional[str] = None) -> None:
        """Creates the group (``expected`` members, if known; more than ``max_failed``
        failures fail it; it times out after ``timeout``, a Go duration)."""
        spec: Dict[str, Any] = {"maxFailed": max_failed}
        if expected is not None:
            spec["expected"] = expected
        if timeout is not None:
            spec["timeout"] = timeout
        self.connection.client.create(res.WaitGroup(metadata={"name": self.name}, spec=spec), namespace=self.namespace)

    def _group(self) -> Any:
        try:
            return self.connection.client.get(res.WaitGroup, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code == 404:
                raise NotFound(self.kind, self.namespace, self.name) from error
            raise

    def add(self, *members: str) -> int:
        """Adds members (adding one twice adds it once); returns how many were new."""
        uid = self._group().metadata.uid
        added = 0
        for member in members:
            obj = res.WaitGroupMember(
                metadata={
                    "name": member_name(self.name, member),
                    "labels": {WAITGROUP_LABEL: self.name},
                    "ownerReferences": [
                        {"apiVersion": f"{res.GROUP}/{res.VERSION}", "kind": "WaitGroup", "name": self.name, "uid": uid}
                    ],
                },
                spec={"waitGroup": self.name, "member": member},
            )
            try:
                self.connection.client.create(obj, namespace=self.namespace)
                added += 1
            except ApiError as error:
                if error.status.code != 409:
                    raise
        return added

    def done(self, member: str, *, failed: bool = False, message: Optional[str] = None, exit_code: Optional[int] = None) -> None:
        """Marks ``member`` done (or failed, with why); a member not added yet is added
        done."""
        outcome: Dict[str, Any] = {"result": "Failed" if failed else "Succeeded"}
        if message is not None:
            outcome["message"] = message[:1024]
        if exit_code is not None:
            outcome["exitCode"] = exit_code
        try:
            self.connection.client.patch(
                res.WaitGroupMember,
                member_name(self.name, member),
                {"spec": {"outcome": outcome}},
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )
        except ApiError as error:
            if error.status.code != 404:
                raise
            self.add(member)
            self.done(member, failed=failed, message=message, exit_code=exit_code)

    @contextlib.contextmanager
    def member(self, member: str) -> Iterator[str]:
        """Adds ``member``, runs the block, marks it done — or failed with the
        exception's message if the block raises (the exception goes on)."""
        self.add(member)
        try:
            yield member
        except BaseException as error:
            self.done(member, failed=True, message=f"{type(error).__name__}: {error}")
            raise
        self.done(member)

    def seal(self) -> None:
        """No more members may be added: the group finishes when those it has are."""
        self.connection.client.patch(
            res.WaitGroup, self.name, {"spec": {"sealed": True}}, namespace=self.namespace, patch_type=PatchType.MERGE
        )

    def status(self) -> Dict[str, Any]:
        """The group's status as the controller last wrote it."""
        return dict(getattr(self._group(), "status", None) or {})

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits until the group is Done and returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        group = self._group()
        current: Any = group
        while True:
            status = dict(getattr(current, "status", None) or {})
            phase = status.get("phase")
            if phase == "Done":
                return status
            if phase == "Failed":
                raise Failed(self.kind, self.namespace, self.name, f"{status.get('failed', 0)} member(s) failed")
            if phase == "Timeout":
                raise TimedOut(self.kind, self.namespace, self.name, "the group timed out")
            latest = None
            for latest in follow(self.connection, res.WaitGroup, self.name, self.namespace, current.metadata.resourceVersion, deadline):
                if dict(getattr(latest, "status", None) or {}).get("phase") in ("Done", "Failed", "Timeout"):
                    break
            if latest is None:
                raise WaitTimeout(self.kind, self.namespace, self.name, f"not done within {timeout}s")
            current = latest

    async def wait_async(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """:meth:`wait` for asyncio (the watch runs in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(self.wait, timeout)
