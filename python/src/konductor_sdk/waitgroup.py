"""WaitGroups: fan-out / fan-in with named members.

    from konductor_sdk import WaitGroup

    wg = WaitGroup("ingest")
    wg.create(expected=3)                 # or add members as work is found
    wg.add("file-01", "file-02", "file-03")
    with wg.member("file-01"):            # done when the block ends, failed if it raises
        ingest("file-01")
    wg.wait(timeout=3600)                 # returns the status once Done

A member is a WaitGroupMember object named as koncli names it, so ``koncli waitgroup
done ingest --member file-01`` and Python mark the same member. ``member()`` holds its
member as ``koncli waitgroup run`` does: a retry of a member done already raises
:class:`~konductor_sdk.errors.AlreadyDone` without running the block, one that failed
for good :class:`~konductor_sdk.errors.FailedForGood`; with the group's ``memberTTL``
the member is renewed in the background and the hold can be lost (``held``,
``check()``); an interrupted block (Ctrl-C, :class:`~konductor_sdk.errors.Interrupted`)
gives the member back — interrupted is not failed. ``wait`` raises
:class:`~konductor_sdk.errors.Failed` when more than ``maxFailed`` members failed,
:class:`~konductor_sdk.errors.TimedOut` for the group's own timeout and
:class:`~konductor_sdk.errors.WaitTimeout` for ``timeout=``."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from . import _resources as res
from ._connection import Connection, default_connection
from ._names import claim_name
from ._threads import in_thread
from ._watching import wait_until
from .errors import AlreadyDone, Failed, FailedForGood, GrantLost, NotFound, TimedOut, UsageError, WaitTimeout
from .identity import run_holder
from .locks import Timing, _now_micro, _Renewed, parse_duration

WAITGROUP_LABEL = "konductor.io/waitgroup"

#: How many interruptions of one member are not counted as failures, unless the group
#: says otherwise (``spec.maxInterruptions``).
DEFAULT_MAX_INTERRUPTIONS = 3


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

    def create(
        self,
        expected: Optional[int] = None,
        *,
        max_failed: int = 0,
        timeout: Optional[str] = None,
        member_ttl: Optional[str] = None,
        member_attempts: Optional[int] = None,
    ) -> None:
        """Creates the group (``expected`` members, if known; more than ``max_failed``
        failures fail it; it times out after ``timeout``, a Go duration). With
        ``member_ttl`` a held member not renewed for that long fails (its worker died);
        ``member_attempts`` failed attempts make a member fail for good (default 1)."""
        spec: Dict[str, Any] = {"maxFailed": max_failed}
        if expected is not None:
            spec["expected"] = expected
        if timeout is not None:
            spec["timeout"] = timeout
        if member_ttl is not None:
            spec["memberTTL"] = member_ttl
        if member_attempts is not None:
            spec["memberAttempts"] = member_attempts
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

    def hold(self, member: str, *, holder: Optional[str] = None) -> "MemberHold":
        """Takes ``member`` as ``holder`` (default: this host and a nonce), adding it if
        needed; renewed in the background with the group's ``memberTTL``. Raises
        :class:`AlreadyDone` for a member done already, :class:`FailedForGood` for one
        whose every allowed attempt failed; a member whose last attempt failed with
        attempts left, or was interrupted, is taken for a new attempt (the ended one
        recorded). A sealed group takes no new member."""
        group = self._group()
        spec = dict(group.spec or {})
        ttl = parse_duration(spec["memberTTL"]) if spec.get("memberTTL") else None
        holder = run_holder(holder)
        name = member_name(self.name, member)
        client = self.connection.client
        while True:
            try:
                current = client.get(res.WaitGroupMember, name, namespace=self.namespace)
            except ApiError as error:
                if error.status.code != 404:
                    raise
                if spec.get("sealed"):
                    raise UsageError(
                        self.kind, self.namespace, self.name, f"is sealed and has no member {member!r}"
                    ) from None
                self.add(member)
                continue
            standing, ended = _standing(current, spec)
            if standing == "done":
                raise AlreadyDone(self.kind, self.namespace, self.name, f"member {member!r} is done already; nothing to run")
            if standing == "failed":
                raise FailedForGood(
                    self.kind, self.namespace, self.name, f"member {member!r} failed for good: {ended.get('message')}"
                )
            work = dict(current.spec or {})
            attempts: List[Dict[str, Any]] = list(work.get("attempts") or [])
            now = _now_micro()
            if standing == "retry":
                attempts.append({**ended, "finishedAt": ended.get("finishedAt") or now})
            elif work.get("interrupting"):
                # Its worker was interrupted and did not withdraw (killed after the
                # signal): an interruption, recorded as it would have.
                attempts.append(
                    _attempt("Interrupted", work.get("holder"), "interrupted, and its worker did not withdraw", now)
                )
            sent = time.monotonic()
            try:
                # Over the version read: two workers retrying one member never both
                # record the ended attempt.
                taken = client.patch(
                    res.WaitGroupMember,
                    name,
                    {
                        "metadata": {"resourceVersion": current.metadata.resourceVersion},
                        "spec": {
                            "attempts": attempts,
                            "outcome": None,
                            "interrupting": False,
                            "holder": holder,
                            "renewTime": now,
                        },
                    },
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
            except ApiError as error:
                if error.status.code == 409:
                    continue
                raise
            return MemberHold(self, member, holder, taken.metadata.uid, ttl, sent)

    @contextlib.contextmanager
    def member(self, member: str, *, holder: Optional[str] = None) -> Iterator["MemberHold"]:
        """Holds ``member`` (:meth:`hold`) while the block runs, then marks it done — or
        failed with the exception's message if the block raises (the exception goes on).
        An interruption (``KeyboardInterrupt``, :class:`Interrupted`) gives the member
        back instead: pending again, for a retry. A hold lost while the block ran
        (renewals unacknowledged, the member expired) raises :class:`GrantLost` and
        marks nothing: the controller counts it as failed."""
        held = self.hold(member, holder=holder)
        try:
            yield held
        except KeyboardInterrupt as error:
            held.withdraw_interrupted(f"interrupted: {type(error).__name__}")
            raise
        except BaseException as error:
            held.stop()
            if held._lost is None:
                self.done(member, failed=True, message=f"{type(error).__name__}: {error}")
            raise
        held.stop()
        if held._lost is not None:
            raise GrantLost(self.kind, self.namespace, self.name, f"member {member!r}: {held._lost}")
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
        """Waits until the group is Done and returns its status; a group not created
        yet is waited for."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def finished(group: Any) -> Optional[Dict[str, Any]]:
            status = dict(getattr(group, "status", None) or {})
            phase = status.get("phase")
            if phase == "Failed":
                raise Failed(self.kind, self.namespace, self.name, f"{status.get('failed', 0)} member(s) failed")
            if phase == "Timeout":
                raise TimedOut(self.kind, self.namespace, self.name, "the group timed out")
            return status if phase == "Done" else None

        status = wait_until(self.connection, res.WaitGroup, self.name, self.namespace, deadline, finished)
        if status is None:
            raise WaitTimeout(self.kind, self.namespace, self.name, f"not done within {timeout}s")
        return status

    async def wait_async(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """:meth:`wait` for asyncio (the watch runs on a thread of its own)."""
        return await in_thread(self.wait, timeout)


def _attempt(result: str, holder: Optional[str], message: Optional[str], finished_at: Optional[str], exit_code: Optional[int] = None) -> Dict[str, Any]:
    """An entry of a member's ``spec.attempts`` (unset fields left out)."""
    attempt = {"result": result, "holder": holder, "exitCode": exit_code, "message": message, "finishedAt": finished_at}
    return {key: value for key, value in attempt.items() if value is not None}


def _expired(member: Any) -> bool:
    """Whether the controller expired the member's current attempt."""
    status = dict(getattr(member, "status", None) or {})
    attempts = (dict(member.spec or {}).get("attempts")) or []
    return bool(status.get("expired")) and status.get("expiredAttempt") in (None, len(attempts))


def _standing(member: Any, group: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """Where a member stands under its group's attempt rules, as the controller judges
    it: ``done``; ``failed`` (for good; the last failure); ``retry`` (the attempt that
    ended, to record); or ``pending``. Interruptions beyond ``maxInterruptions`` count
    as failures; ``memberAttempts`` failures make it fail for good."""
    spec = dict(member.spec or {})
    if _expired(member):
        interrupting = bool(spec.get("interrupting"))
        ended: Optional[Dict[str, Any]] = _attempt(
            "Interrupted" if interrupting else "Failed",
            spec.get("holder"),
            "interrupted, and its worker stopped renewing it before it withdrew"
            if interrupting
            else "expired: its worker stopped renewing it before it was done",
            None,
        )
    else:
        outcome = spec.get("outcome")
        if outcome and outcome.get("result") == "Succeeded":
            return "done", {}
        ended = (
            _attempt("Failed", spec.get("holder"), outcome.get("message"), None, outcome.get("exitCode"))
            if outcome
            else None
        )
    allowed_interruptions = int(group.get("maxInterruptions", DEFAULT_MAX_INTERRUPTIONS))
    interruptions = failures = 0
    last: Optional[Dict[str, Any]] = None
    for attempt in list(spec.get("attempts") or []) + ([ended] if ended else []):
        if attempt.get("result") == "Interrupted":
            interruptions += 1
            failed = interruptions > allowed_interruptions
        else:
            failed = True
        if failed:
            failures += 1
            last = attempt
    if last is not None and failures >= max(1, int(group.get("memberAttempts", 1))):
        return "failed", {"message": last.get("message") or "failed"}
    return ("retry", ended) if ended else ("pending", {})


class MemberHold(_Renewed):
    """A WaitGroup member held by this process (:meth:`WaitGroup.hold`): renewed in
    the background with the group's ``memberTTL`` until marked done or given back.
    ``held`` turns false, and ``check()`` raises :class:`GrantLost`, once renewals went
    unacknowledged for the ttl less a fifth or the controller expired the member."""

    word = "waitgroup"

    def __init__(self, group: WaitGroup, member: str, holder: str, uid: str, ttl: Optional[float], sent: float) -> None:
        self._reset_renewals()
        self.group = group
        self.member = member
        self.holder = holder
        self.name = group.name
        self.namespace = group.namespace
        self.connection = group.connection
        self._object = member_name(group.name, member)
        self._uid = uid
        self._pid = os.getpid()
        self._granted = True
        if ttl is None:
            self._trusted_until = float("inf")  # nothing can expire it
        else:
            self._timing = Timing(ttl)
            self._start_renewals(sent)

    def _renewed(self) -> Tuple[Any, str]:
        return res.WaitGroupMember, self._object

    def _refused(self, answer: Any) -> Optional[str]:
        if _expired(answer):
            return "expired: the controller did not see it renewed within memberTTL"
        return None

    def check(self) -> None:
        """Raises :class:`GrantLost` unless the hold can be trusted now."""
        self._check_held()

    def stop(self) -> None:
        """Stops renewing (the member stays as it is)."""
        self._released.set()

    def done(self, *, failed: bool = False, message: Optional[str] = None, exit_code: Optional[int] = None) -> None:
        """Stops renewing and marks the member done (or failed, with why)."""
        self.stop()
        self.group.done(self.member, failed=failed, message=message, exit_code=exit_code)

    def withdraw_interrupted(self, message: Optional[str] = None, exit_code: Optional[int] = None) -> None:
        """Gives the member back after its work was interrupted: pending again, the
        interruption recorded in ``spec.attempts`` (beyond the group's
        ``maxInterruptions`` it counts as a failed attempt). Nothing is written if the
        member was taken over or finished meanwhile."""
        self.stop()
        client = self.connection.client
        while True:
            try:
                current = client.get(res.WaitGroupMember, self._object, namespace=self.namespace)
            except ApiError as error:
                if error.status.code == 404:
                    return
                raise
            work = dict(current.spec or {})
            if current.metadata.uid != self._uid or work.get("holder") != self.holder or work.get("outcome"):
                return
            attempts = list(work.get("attempts") or [])
            attempts.append(_attempt("Interrupted", self.holder, message, _now_micro(), exit_code))
            try:
                client.patch(
                    res.WaitGroupMember,
                    self._object,
                    {
                        "metadata": {"resourceVersion": current.metadata.resourceVersion},
                        "spec": {"attempts": attempts, "interrupting": False, "holder": None, "renewTime": None},
                    },
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
                return
            except ApiError as error:
                if error.status.code != 409:
                    raise
