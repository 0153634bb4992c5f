"""Locks: Mutex, Semaphore, RWMutex — a Permit per claim, granted by the controller,
renewed here on a background thread, fenced by a token.

    from konductor_sdk import Mutex

    with Mutex("db", ttl="30s") as lock:
        migrate(fencing_token=lock.token)   # pass the token to what you protect

The guarantees are koncli's (docs/locks.md, "What a holder can rely on"): the claim is
renewed six times per ttl, each renewal with its own timeout; the grant is trusted
until a ttl less a fifth after the last *acknowledged* renewal was *sent*. When that
passes — or the Permit is gone — the holder is told at once: ``lock.held`` turns
false, ``lock.check()`` raises :class:`~konductor_sdk.errors.GrantLost`, and
``on_lost`` is called. Python cannot stop code running inside a ``with`` block: use the
fencing token for anything that matters, or ``run_exclusive([...])``, which stops a
subprocess as ``koncli mutex run`` does.

Waiting in the main thread, SIGINT and SIGTERM withdraw the claim (a handler chained to
the one already installed, and only around that wait) and raise
:class:`~konductor_sdk.errors.Interrupted`. A forked child never renews or releases
its parent's claim."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from lightkube import Client
from lightkube.core import generic_client as _generic
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from . import _resources as res
from ._connection import Connection, default_connection
from ._names import permit_name
from ._threads import in_thread, start_in_thread
from ._watching import follow
from .errors import Busy, GrantLost, Interrupted, KonductorError, NotFound, Skipped, UsageError, WaitTimeout
from .identity import run_holder

# lightkube's HTTP library (httpx, or httpx2 from lightkube 1.0), as lightkube imports it.
httpx = _generic.httpx

DEFAULT_TTL = "5m"

#: What a ``with`` block or ``run_exclusive`` does when the lock cannot be had at once:
#: wait for it, skip the work (:class:`Skipped`), or fail (:class:`Busy`).
IF_BUSY = ("wait", "skip", "fail")

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``"1m30s"``, ``"500ms"``)."""
    total, number, i = 0.0, "", 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else c
        if unit not in _UNITS or not number:
            raise ValueError(f"not a duration: {text!r}")
        total += float(number) * _UNITS[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"not a duration (a unit is missing): {text!r}")
    return total


class Timing:
    """koncli's timing for a ttl: renew every ttl/6, trust a grant until a ttl less a
    fifth after the last acknowledged renewal was sent, abandon a renewal after that
    long, give a command half the margin between SIGTERM and SIGKILL."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.renew_every = ttl / 6
        self.margin = ttl / 5
        self.trusted_for = ttl - self.margin
        self.request_timeout = ttl - self.margin
        self.grace = self.margin / 2


class _Signals:
    """SIGINT/SIGTERM handlers chained to the installed ones, around one blocking wait
    in the main thread: a signal raises inside the wait, which withdraws its claim."""

    class Caught(BaseException):
        def __init__(self, signum: int) -> None:
            super().__init__(signum)
            self.signum = signum

    def __init__(self) -> None:
        self.previous: Dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._caught)
        return self

    @staticmethod
    def _caught(signum: int, frame: Any) -> None:
        raise _Signals.Caught(signum)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def chain(self, caught: "_Signals.Caught") -> None:
        """Hands the signal to the handler that was installed before (Celery's,
        Airflow's…) unless that is Python's default."""
        handler = self.previous.get(caught.signum)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(caught.signum, None)


class _Renewed:
    """What every claim kept alive by renewals shares — a lock's Permit, a held
    WaitGroup member: a renewal six times per ttl, each on a thread of its own with its
    own timeout; trust counted from when the last *acknowledged* renewal was *sent*;
    loss told at once (:attr:`held`, :meth:`check`, ``on_lost``). A forked child never
    renews: the renewals are threads of the process that took the claim."""

    word = "claim"
    name = ""
    namespace = ""
    connection: Connection
    on_lost: Optional[Callable[[str], None]] = None

    def _reset_renewals(self) -> None:
        self._uid: Optional[str] = None
        self._pid: Optional[int] = None
        self._granted = False
        self._lost: Optional[str] = None
        self._released = threading.Event()
        self._trusted_until = 0.0
        self._timing: Optional[Timing] = None
        self._lost_hooks: List[Callable[[str], None]] = []
        self._state = threading.Lock()

    def _renewed(self) -> Tuple[Any, str]:
        """The object each renewal writes: its resource and name."""
        raise NotImplementedError

    def _refused(self, answer: Any) -> Optional[str]:
        """Why an acknowledged renewal's answer still means the claim is lost (a
        WaitGroup member the controller expired), or None."""
        return None

    def _start_renewals(self, sent: float) -> None:
        """Counts the write that made the claim as its first renewal, sent at `sent`,
        and renews in the background from now on."""
        self._acknowledged(sent)
        name = self._renewed()[1]
        threading.Thread(target=self._renewals, daemon=True, name=f"konductor-renew-{name}").start()

    def _acknowledged(self, sent: float) -> None:
        assert self._timing is not None
        with self._state:
            self._trusted_until = max(self._trusted_until, sent + self._timing.trusted_for)

    def _renewals(self) -> None:
        timing = self._timing
        assert timing is not None
        # Made when the first renewal is due, not on the way to the grant.
        client: Optional[Client] = None
        next_renewal = time.monotonic() + timing.renew_every
        try:
            while not self._released.is_set() and self._lost is None:
                now = time.monotonic()
                if self._granted and now >= self._trusted_until:
                    self._lose("renewals went unacknowledged for the ttl less a fifth")
                    return
                if now >= next_renewal:
                    next_renewal = now + timing.renew_every
                    if client is None:
                        client = Client(
                            config=self.connection.config,
                            namespace=self.namespace,
                            timeout=httpx.Timeout(timing.request_timeout),
                        )
                    threading.Thread(target=self._renew_once, args=(client,), daemon=True).start()
                wake = min(next_renewal, self._trusted_until if self._granted else next_renewal)
                self._released.wait(max(0.0, wake - time.monotonic()))
        finally:
            if client is not None:
                client.close()

    def _renew_once(self, client: Client) -> None:
        sent = time.monotonic()
        resource, name = self._renewed()
        patch = {
            "metadata": {"uid": self._uid},
            "spec": {"renewTime": _now_micro()},
        }
        try:
            answer = client.patch(resource, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE)
        except ApiError as error:
            if error.status.code in (404, 409):
                self._lose(f"its {resource.__name__} is gone (deleted, or expired and replaced)")
            return
        except Exception:  # unanswered in time, or the connection failed: counted
            return
        why = self._refused(answer)
        if why is not None:
            self._lose(why)
        elif not self._released.is_set():
            self._acknowledged(sent)

    def _lose(self, why: str) -> None:
        with self._state:
            if self._lost is not None or self._released.is_set():
                return
            self._lost = why
            hooks = list(self._lost_hooks)
        self._released.set()
        for hook in hooks + ([self.on_lost] if self.on_lost else []):
            try:
                hook(why)
            except Exception as error:  # a callback's failure must not stop the others
                warnings.warn(f"on_lost callback failed: {error!r}", RuntimeWarning)

    @property
    def held(self) -> bool:
        """Whether the claim can be trusted now (false once lost, released, or in a
        forked child)."""
        if self._pid != os.getpid():
            return False
        with self._state:
            return self._granted and self._lost is None and not self._released.is_set() and (
                time.monotonic() < self._trusted_until
            )

    def _check_held(self) -> None:
        if self._pid is not None and self._pid != os.getpid():
            raise GrantLost(self.word, self.namespace, self.name, "held by the parent process, not this forked child")
        if not self.held:
            raise GrantLost(self.word, self.namespace, self.name, self._lost or "not held")


class _Lock(_Renewed):
    """One claim on a lock: taken with :meth:`acquire` (or ``with``), renewed until
    :meth:`release`."""

    kind = "Mutex"
    word = "mutex"
    resource: Any = res.Mutex
    #: What :class:`Busy` says when the claim cannot be granted at once.
    busy = "the lock is busy"
    #: Whether a waiter follows the lock object instead of its own Permit (a Once's
    #: waiter must also see its key finished by another, which only the Once says).
    follows_lock = False

    def __init__(
        self,
        name: str,
        *,
        ttl: Optional[str] = None,
        holder: Optional[str] = None,
        priority: int = 0,
        namespace: Optional[str] = None,
        connection: Optional[Connection] = None,
        on_lost: Optional[Callable[[str], None]] = None,
        create: bool = True,
        mode: str = "Exclusive",
        if_busy: str = "wait",
    ) -> None:
        if if_busy not in IF_BUSY:
            raise UsageError(self.word, namespace or "", name, f"if_busy must be one of {', '.join(IF_BUSY)}, not {if_busy!r}")
        self.if_busy = if_busy
        self.name = name
        self.connection = connection or default_connection()
        self.namespace = namespace or self.connection.namespace
        self.ttl = ttl
        self.holder_given = holder
        self.priority = priority
        self.on_lost = on_lost
        self.create_missing = create
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        self._reset_renewals()
        self.holder: Optional[str] = None
        self.token: Optional[int] = None
        self._permit: Optional[str] = None

    def _renewed(self) -> Tuple[Any, str]:
        assert self._permit is not None
        return res.Permit, self._permit

    # --- the lock object -------------------------------------------------------------

    def _spec_for_creation(self) -> Dict[str, Any]:
        return {"ttl": self.ttl or DEFAULT_TTL}

    def _ensure(self) -> Any:
        client = self.connection.client
        try:
            return client.get(self.resource, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
        if not self.create_missing:
            raise NotFound(self.word, self.namespace, self.name, "not found (and create=False)")
        spec = self._spec_for_creation()
        try:
            return client.create(
                self.resource(metadata={"name": self.name}, spec=spec), namespace=self.namespace
            )
        except ApiError as error:
            if error.status.code != 409:
                raise
            return client.get(self.resource, self.name, namespace=self.namespace)

    # --- taking it -------------------------------------------------------------------

    def acquire(self, timeout: Optional[float] = None, blocking: bool = True) -> int:
        """Claims the lock and waits for the grant; returns the fencing token. With
        ``blocking=False``, raises :class:`Busy` (claim withdrawn) if it is not granted
        at once; with ``timeout`` (seconds), :class:`WaitTimeout`."""
        if self._granted and not self._lost:
            raise UsageError(self.word, self.namespace, self.name, "already held by this object")
        self._reset()
        lock = self._ensure()
        self._timing = Timing(parse_duration(dict(lock.spec).get("ttl") or DEFAULT_TTL))
        self.holder = run_holder(self.holder_given)
        self._permit = permit_name(self.word, self.name, self.holder)
        self._pid = os.getpid()
        sent = time.monotonic()
        permit = res.Permit(
            metadata={
                "name": self._permit,
                "labels": {f"konductor.io/{self.word}": self.name},
                "ownerReferences": [
                    {
                        "apiVersion": f"{res.GROUP}/{res.VERSION}",
                        "kind": self.kind,
                        "name": self.name,
                        "uid": lock.metadata.uid,
                    }
                ],
            },
            spec={
                "lockRef": {"kind": self.kind, "name": self.name},
                "holder": self.holder,
                "mode": self.mode,
                "priority": self.priority,
                **self._permit_spec(),
            },
        )
        created = self.connection.client.create(permit, namespace=self.namespace)
        self._uid = created.metadata.uid
        self._start_renewals(sent)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with _Signals() as signals:
                try:
                    token = self._await_grant(lock, created, deadline, blocking)
                except _Signals.Caught as caught:
                    self._withdraw()
                    signals.chain(caught)
                    raise Interrupted(
                        self.word, self.namespace, self.name, "interrupted; claim withdrawn"
                    ) from None
        except BaseException:
            if not self._granted:
                self._withdraw()
            raise
        return token

    def _permit_spec(self) -> Dict[str, Any]:
        """What a kind adds to its Permit's spec (a Once: the key)."""
        return {}

    def _stop_waiting(self, status: Dict[str, Any]) -> None:
        """Raises to stop waiting for the grant, seeing the lock's `status` (a Once:
        the key finished by another); the claim is then withdrawn."""

    def _granted_token(self, status: Dict[str, Any]) -> Optional[int]:
        """This claim's token if the lock's `status` lists its grant."""
        for grant in status.get("grants") or []:
            if grant.get("uid") == self._uid:
                return int(grant["token"])
        return None

    def _standing(self, event: str, followed: Any) -> Tuple[Optional[int], bool]:
        """What the followed object says of this claim: its token if granted, and
        whether the controller has looked at the claim (queued or granted)."""
        status = dict(getattr(followed, "status", None) or {})
        if self.follows_lock:
            self._stop_waiting(status)
            token = self._granted_token(status)
            return token, token is not None
        if event == "DELETED" or followed.metadata.uid != self._uid:
            # A deleted lock takes its Permits with it: say which went.
            try:
                self.connection.client.get(self.resource, self.name, namespace=self.namespace)
                why = "its permit was deleted"
            except ApiError as error:
                if error.status.code != 404:
                    raise
                why = "the lock was deleted"
            raise KonductorError(self.word, self.namespace, self.name, f"no longer waiting: {why}")
        if status.get("phase") == "Granted" and status.get("fencingToken") is not None:
            return int(status["fencingToken"]), True
        return None, bool(status.get("phase"))

    def _await_grant(self, lock: Any, permit: Any, deadline: Optional[float], blocking: bool) -> int:
        """Waits until this claim is granted and the grant can be trusted; its token.

        A waiter follows its own Permit and nothing else: the controller writes a grant
        to the lock's status and then to the new holder's Permit, so a handover, a
        release or another waiter's renewal reaches only the process it is about, and
        what a waiter receives does not grow with the queue. (A Once's waiter follows
        the Once: only its status says the key was finished by another.)"""
        resource, name, current = (
            (self.resource, self.name, lock) if self.follows_lock else (res.Permit, self._permit, permit)
        )

        def granted(event: str, followed: Any) -> Optional[int]:
            token, looked_at = self._standing(event, followed)
            if token is not None and self._trust(token):
                with self._state:
                    self.token = token
                    self._granted = True
                return token
            if not blocking and (looked_at or (self.follows_lock and self._permit_looked_at())):
                raise Busy(self.word, self.namespace, self.name, self.busy)
            return None

        token = granted("ADDED", current)
        while token is None:
            # Short follows when not blocking: the claim's status says when the
            # controller has looked.
            until = deadline if blocking else time.monotonic() + 0.2
            seen = False
            for event, latest in follow(
                self.connection, resource, name, self.namespace, current.metadata.resourceVersion, until
            ):
                if self._released.is_set() and not self._granted:
                    raise Interrupted(self.word, self.namespace, self.name, "the wait was cancelled; claim withdrawn")
                seen, current = True, latest
                token = granted(event, latest)
                if token is not None:
                    break
            if token is not None:
                break
            if not seen:
                if blocking and deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(self.word, self.namespace, self.name, "not granted within the timeout")
                if self._lost:
                    raise GrantLost(self.word, self.namespace, self.name, self._lost)
                if not blocking:
                    token = granted("MODIFIED", current)
        return token

    def _trust(self, token: int) -> bool:
        """Whether a grant just seen can be used: only while the last acknowledged
        renewal is recent enough. Learned too late (renewals failing, the process
        stopped), it is renewed at once and confirmed on a fresh read of the lock."""
        if time.monotonic() < self._trusted_until:
            return True
        self._renew_once(self.connection.client)
        if time.monotonic() >= self._trusted_until:
            return False
        lock = self.connection.client.get(self.resource, self.name, namespace=self.namespace)
        return self._granted_token(dict(getattr(lock, "status", None) or {})) == token

    def _permit_looked_at(self) -> bool:
        try:
            permit = self.connection.client.get(res.Permit, self._permit, namespace=self.namespace)
        except ApiError:
            return False
        return bool((getattr(permit, "status", None) or {}).get("phase"))

    # --- what the holder can rely on -------------------------------------------------

    def check(self) -> int:
        """Returns the fencing token if the grant can be trusted now; else raises
        :class:`GrantLost` saying why."""
        self._check_held()
        assert self.token is not None
        return self.token

    # --- giving it back ----------------------------------------------------------------

    def _withdraw(self) -> None:
        self._released.set()
        if self._permit is None or self._uid is None:
            return
        # A uid-conditional delete: never someone else's Permit of the same name.
        gc = self.connection.client._client  # lightkube's generic client
        request = gc.prepare_request("delete", res.Permit, None, self._permit, self.namespace)
        request.data = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": self._uid},
        }
        try:
            response = gc.send(gc.build_adapter_request(request))
            if response.status_code not in (200, 202, 404, 409):
                response.raise_for_status()
        except httpx.HTTPError:
            pass  # it expires after its ttl

    def release(self) -> None:
        """Gives the lock back (deletes this claim's Permit, only if it is still this
        claim's). In a forked child it does nothing but warn: the parent holds it."""
        if self._pid is not None and self._pid != os.getpid():
            warnings.warn(
                f"{self.word} {self.namespace}/{self.name}: release() in a forked child does nothing; "
                "the parent process holds the lock",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self._withdraw()
        self._granted = False

    def _take(self, timeout: Optional[float] = None) -> int:
        """:meth:`acquire` as ``if_busy`` says: wait (the default), or when the lock
        cannot be had at once, raise :class:`Skipped` (``"skip"``) or :class:`Busy`
        (``"fail"``) — as ``koncli … run --if-busy`` exits 10 or 6."""
        if self.if_busy == "wait":
            return self.acquire(timeout=timeout)
        try:
            return self.acquire(blocking=False)
        except Busy as busy:
            if self.if_busy == "skip":
                raise Skipped(self.word, self.namespace, self.name, f"{busy.message}; skipped") from None
            raise

    def __enter__(self) -> "_Lock":
        self._take()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # --- asyncio ---------------------------------------------------------------------

    async def acquire_async(self, timeout: Optional[float] = None, blocking: bool = True) -> int:
        """:meth:`acquire` for asyncio: the wait runs on a thread of its own, the event loop
        stays free; cancelling the awaiting task withdraws the claim."""
        import asyncio

        waiting = start_in_thread(self.acquire, timeout, blocking)
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # Deleting the claim shows in what the waiting thread follows, which wakes it.
            await in_thread(self._withdraw)
            raise

    async def release_async(self) -> None:
        """:meth:`release` for asyncio."""
        await in_thread(self.release)

    async def __aenter__(self) -> "_Lock":
        if self.if_busy == "wait":
            await self.acquire_async()
        else:
            await in_thread(self._take)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release_async()

    # --- a subprocess that never outlives the grant ----------------------------------

    def run_exclusive(self, command: Sequence[str], timeout: Optional[float] = None, **popen: Any) -> int:
        """Takes the lock, runs ``command`` while holding it, gives it back; returns its
        exit code. If the grant is lost, the command gets SIGTERM, then SIGKILL a grace
        later, and :class:`GrantLost` is raised — as ``koncli mutex run`` exits 7. With
        ``if_busy="skip"`` a busy lock raises :class:`Skipped` and nothing runs."""
        self._take(timeout)
        assert self._timing is not None
        process = subprocess.Popen(list(command), start_new_session=True, **popen)
        stopped = threading.Event()

        def stop(_: str) -> None:
            stopped.set()
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                process.wait(self._timing.grace if self._timing else 1.0)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        self._lost_hooks.append(stop)
        try:
            code = process.wait()
        finally:
            self.release()
        if stopped.is_set():
            raise GrantLost(self.word, self.namespace, self.name, self._lost or "lost")
        return code


def _now_micro() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Mutex(_Lock):
    """One holder at a time: ``with Mutex("db") as lock: … lock.token``. Made on first
    use with ``ttl`` (default 5m)."""

    kind = "Mutex"
    word = "mutex"
    resource = res.Mutex


class Semaphore(_Lock):
    """At most ``permits`` holders at a time: ``Semaphore("gpus", permits=4)``. Made on
    first use only with ``permits``."""

    kind = "Semaphore"
    word = "semaphore"
    resource = res.Semaphore

    def __init__(self, name: str, *, permits: Optional[int] = None, **options: Any) -> None:
        super().__init__(name, **options)
        self.permits = permits

    def _spec_for_creation(self) -> Dict[str, Any]:
        if self.permits is None:
            raise NotFound(self.word, self.namespace, self.name, "not found; give permits= to create it")
        return {"permits": self.permits, "ttl": self.ttl or DEFAULT_TTL}


class RWMutex:
    """Many readers or one writer: ``with RWMutex("cache").read(): …``,
    ``with RWMutex("cache").write(): …``. Each call makes a new claim."""

    def __init__(self, name: str, **options: Any) -> None:
        self.name = name
        self.options = options

    def read(self) -> "_RWHandle":
        """A shared (read) claim."""
        return _RWHandle(self.name, mode="Shared", **self.options)

    def write(self) -> "_RWHandle":
        """An exclusive (write) claim."""
        return _RWHandle(self.name, mode="Exclusive", **self.options)


class _RWHandle(_Lock):
    kind = "RWMutex"
    word = "rwmutex"
    resource = res.RWMutex


class RateLimit(_Lock):
    """At most ``limit`` grants in any ``window`` (and at most ``max_concurrent`` held
    at once, if given): ``with RateLimit("deploys", limit=3, window="1m"): deploy()``.
    Made on first use only with ``limit`` and ``window``. :meth:`take` counts one
    slot and gives the grant back at once."""

    kind = "RateLimit"
    word = "ratelimit"
    resource = res.RateLimit
    busy = "no slot free: the window's grants are used (or max_concurrent held)"

    def __init__(
        self,
        name: str,
        *,
        limit: Optional[int] = None,
        window: Optional[str] = None,
        max_concurrent: Optional[int] = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.limit, self.window, self.max_concurrent = limit, window, max_concurrent

    def _spec_for_creation(self) -> Dict[str, Any]:
        if self.limit is None or self.window is None:
            raise NotFound(self.word, self.namespace, self.name, "not found; give limit= and window= to create it")
        spec: Dict[str, Any] = {"limit": self.limit, "window": self.window, "ttl": self.ttl or DEFAULT_TTL}
        if self.max_concurrent is not None:
            spec["maxConcurrent"] = self.max_concurrent
        return spec

    def take(self, timeout: Optional[float] = None, blocking: bool = True) -> int:
        """Counts one slot of the window (waiting for one unless ``blocking=False``:
        :class:`Busy` when the window is full) and returns its fencing token."""
        token = self.acquire(timeout=timeout, blocking=blocking)
        self.release()
        return token


class Held:
    """Several locks held at once (:func:`hold_all`); ``tokens`` maps each lock's
    ``(kind, namespace, name)`` to its fencing token."""

    def __init__(self, locks: List[_Lock]) -> None:
        self.locks = locks
        self.tokens: Dict[Tuple[str, str, str], int] = {}

    def acquire(self, timeout: Optional[float] = None) -> "Held":
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for lock in self.locks:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self.tokens[(lock.word, lock.namespace, lock.name)] = lock.acquire(timeout=left)
        except BaseException:
            self.release()
            raise
        return self

    @property
    def held(self) -> bool:
        """Whether every grant can be trusted now."""
        return all(lock.held for lock in self.locks)

    def check(self) -> None:
        """Raises :class:`GrantLost` naming the first lock no longer held."""
        for lock in self.locks:
            lock.check()

    def release(self) -> None:
        """Gives every lock back, last taken first."""
        for lock in reversed(self.locks):
            if lock._permit is not None:
                lock.release()

    def __enter__(self) -> "Held":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def hold_all(*locks: _Lock) -> Held:
    """Several locks around one piece of work, taken in one global order — by
    namespace, kind and name, as ``koncli run --hold`` takes them — so that two holders
    naming the same locks in any order never deadlock:
    ``with hold_all(Mutex("a"), Semaphore("b", permits=2)) as held: …``. The same lock
    twice is a :class:`UsageError`."""
    ordered = sorted(locks, key=lambda lock: (lock.namespace, lock.word, lock.name))
    for first, second in zip(ordered, ordered[1:]):
        if (first.namespace, first.word, first.name) == (second.namespace, second.word, second.name):
            raise UsageError(first.word, first.namespace, first.name, "named twice")
    return Held(ordered)
