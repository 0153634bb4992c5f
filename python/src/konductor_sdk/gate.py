"""Gates, and waiting for conditions on other objects with no Gate.

    from konductor_sdk import Gate, wait_for

    Gate("load").create("job/extract", "barrier/transformed")   # opens when both hold
    Gate("load").wait(timeout=3600)

    wait_for("job/migrate", "deployment/api", any=True, timeout=600)

Objects are named as kubectl names them (``job/NAME``, ``deploy/NAME``,
``barrier/NAME``…) and tested by their kind's preset, as ``koncli gate create --for
KIND/NAME`` and ``koncli wait --for KIND/NAME`` do: a Job completes (``Complete=True``;
``Failed=True`` fails the wait), a Deployment is Available at its current generation
(a ``ProgressDeadlineExceeded`` fails it), a Barrier or Gate is Open, a WaitGroup Done,
a Once Succeeded, a Mutex or RWMutex Unlocked, a Semaphore Available. An object not
created yet is waited for."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job

from . import _resources as res
from ._connection import Connection, default_connection
from ._threads import in_thread
from ._watching import follow
from .errors import Failed, NotFound, TimedOut, UsageError, WaitTimeout

# kubectl's words for each kind → (apiVersion, kind, resource class).
_KINDS: Dict[str, Tuple[str, str, Any]] = {}
for _words, _entry in [
    (("job", "jobs", "jobs.batch"), ("batch/v1", "Job", Job)),
    (("deployment", "deploy", "deployments", "deployments.apps"), ("apps/v1", "Deployment", Deployment)),
    (("barrier", "barriers", "bar"), ("konductor.io/v1", "Barrier", res.Barrier)),
    (("once", "onces"), ("konductor.io/v1", "Once", res.Once)),
    (("waitgroup", "waitgroups", "wg"), ("konductor.io/v1", "WaitGroup", res.WaitGroup)),
    (("gate", "gates"), ("konductor.io/v1", "Gate", res.Gate)),
    (("mutex", "mutexes"), ("konductor.io/v1", "Mutex", res.Mutex)),
    (("rwmutex", "rwmutexes"), ("konductor.io/v1", "RWMutex", res.RWMutex)),
    (("semaphore", "semaphores"), ("konductor.io/v1", "Semaphore", res.Semaphore)),
]:
    for _word in _words:
        _KINDS[_word] = _entry

# The phases that meet and that fail each of Konductor's kinds' presets.
_PHASES: Dict[str, Tuple[List[str], List[str]]] = {
    "Barrier": (["Open"], ["Failed", "Timeout"]),
    "Once": (["Succeeded"], ["Failed"]),
    "WaitGroup": (["Done"], ["Failed", "Timeout"]),
    "Gate": (["Open"], ["Failed", "Timeout"]),
    "Mutex": (["Unlocked"], []),
    "RWMutex": (["Unlocked"], []),
    "Semaphore": (["Available"], []),
}


def _target(text: str) -> Tuple[str, str, Any, str]:
    word, _, name = text.partition("/")
    if not name or "=" in name:
        raise UsageError("target", "", text, "expected KIND/NAME with a kind that has a preset (job/NAME, deploy/NAME, barrier/NAME…)")
    entry = _KINDS.get(word.lower())
    if entry is None:
        raise UsageError("target", "", text, f"no preset for {word!r}: use a Gate with its own test")
    api_version, kind, resource = entry
    return api_version, kind, resource, name


def _condition(obj: Any, type_: str) -> Optional[Dict[str, Any]]:
    status = obj.status if not isinstance(getattr(obj, "status", None), dict) else obj.status
    conditions = getattr(status, "conditions", None) if status is not None and not isinstance(status, dict) else (status or {}).get("conditions")
    for c in conditions or []:
        c = c if isinstance(c, dict) else c.to_dict()
        if c.get("type") == type_:
            return c
    return None


def verdict(kind: str, obj: Any) -> Optional[str]:
    """``"met"``, ``"failed"`` or ``None`` (not yet) for ``obj`` of ``kind`` by its
    preset."""
    if kind in _PHASES:
        met, failed = _PHASES[kind]
        phase = dict(getattr(obj, "status", None) or {}).get("phase")
        return "met" if phase in met else "failed" if phase in failed else None
    if kind == "Job":
        complete, failure = _condition(obj, "Complete"), _condition(obj, "Failed")
        if complete and complete.get("status") == "True":
            return "met"
        return "failed" if failure and failure.get("status") == "True" else None
    if kind == "Deployment":
        available = _condition(obj, "Available")
        progressing = _condition(obj, "Progressing")
        observed = getattr(obj.status, "observedGeneration", None) if obj.status else None
        if available and available.get("status") == "True" and observed is not None and observed >= (obj.metadata.generation or 0):
            return "met"
        if progressing and progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
            return "failed"
    return None


def wait_for(
    *targets: str,
    any: bool = False,
    timeout: Optional[float] = None,
    namespace: Optional[str] = None,
    connection: Optional[Connection] = None,
) -> Dict[str, str]:
    """Waits until every target's preset holds (or the first, with ``any=True``) and
    returns each target's verdict so far; raises :class:`Failed` as soon as a target
    can no longer meet it, :class:`WaitTimeout` when ``timeout`` (seconds) passes."""
    if not targets:
        raise UsageError("wait_for", "", "", "give at least one KIND/NAME")
    connection = connection or default_connection()
    namespace = namespace or connection.namespace
    parsed = [(text, *_target(text)) for text in targets]
    deadline = None if timeout is None else time.monotonic() + timeout
    stop = threading.Event()
    seen: "queue.Queue[Tuple[str, str, Any]]" = queue.Queue()

    def watch(text: str, kind: str, resource: Any, name: str) -> None:
        try:
            version = None
            try:
                obj = connection.client.get(resource, name, namespace=namespace)
                answer = verdict(kind, obj)
                if answer:
                    seen.put((text, answer, None))
                    return
                version = obj.metadata.resourceVersion
            except ApiError as error:
                if error.status.code != 404:
                    raise
            for _, obj in follow(connection, resource, name, namespace, version, deadline):
                if stop.is_set():
                    return
                answer = verdict(kind, obj)
                if answer:
                    seen.put((text, answer, None))
                    return
        except Exception as error:
            seen.put((text, "error", error))

    for text, _, kind, resource, name in parsed:
        threading.Thread(target=watch, args=(text, kind, resource, name), daemon=True).start()
    verdicts: Dict[str, str] = {}
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout("wait", namespace, ", ".join(targets), f"not met within {timeout}s")
            try:
                text, answer, error = seen.get(timeout=left)
            except queue.Empty:
                continue
            if error is not None:
                raise error
            verdicts[text] = answer
            if answer == "failed":
                raise Failed("wait", namespace, text, f"{text} can no longer meet its condition")
            if any or len(verdicts) == len(targets):
                return verdicts
    finally:
        stop.set()


class Gate:
    """The Gate ``name``: a stored wait on other objects that the controller
    evaluates (and that can resume suspended Jobs when it opens — see the docs)."""

    kind = "gate"

    def __init__(self, name: str, *, namespace: Optional[str] = None, connection: Optional[Connection] = None) -> None:
        self.name = name
        self.connection = connection or default_connection()
        self.namespace = namespace or self.connection.namespace

    def create(self, *targets: str, any: bool = False, timeout: Optional[str] = None) -> None:
        """Creates the Gate on ``targets`` (``job/NAME``…), each tested by its preset;
        ``any=True`` opens it on the first; ``timeout`` is a Go duration."""
        conditions = []
        for text in targets:
            api_version, kind, _, name = _target(text)
            conditions.append({"ref": {"apiVersion": api_version, "kind": kind, "name": name}})
        spec: Dict[str, Any] = {"conditions": conditions}
        if any:
            spec["match"] = "Any"
        if timeout is not None:
            spec["timeout"] = timeout
        self.connection.client.create(res.Gate(metadata={"name": self.name}, spec=spec), namespace=self.namespace)

    def status(self) -> Dict[str, Any]:
        """The Gate's status as the controller last wrote it."""
        try:
            obj = self.connection.client.get(res.Gate, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code == 404:
                raise NotFound(self.kind, self.namespace, self.name) from error
            raise
        return dict(getattr(obj, "status", None) or {})

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits until the Gate is Open and returns its status (:class:`Failed`,
        :class:`TimedOut`, :class:`WaitTimeout` otherwise)."""
        try:
            wait_for(f"gate/{self.name}", timeout=timeout, namespace=self.namespace, connection=self.connection)
        except Failed:
            status = self.status()
            if status.get("phase") == "Timeout":
                raise TimedOut(self.kind, self.namespace, self.name, "the gate timed out") from None
            raise Failed(self.kind, self.namespace, self.name, "the gate failed") from None
        return self.status()

    async def wait_async(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """:meth:`wait` for asyncio (the watch runs on a thread of its own)."""
        return await in_thread(self.wait, timeout)


async def wait_for_async(*targets: str, **options: Any) -> Dict[str, str]:
    """:func:`wait_for` for asyncio (the watches run on threads of their own)."""
    return await in_thread(lambda: wait_for(*targets, **options))
