"""Following one object by watch, bounded by a deadline.

lightkube's watch reconnects by itself and yields nothing while nothing changes, so a
deadline cannot be checked between events. Each stretch of the follow is a watch whose
read timeout is the time left (at most a minute): a quiet watch ends with a read
timeout, the deadline is checked, and the watch resumes from the last version seen.
One thread, and no socket is ever closed under a read (a closed descriptor can be
reused by the next one opened — a pipe, another connection — and read from by a stale
reader): each thread watches through a client of its own, kept for its next follow so
that one does not pay for a new client (its TLS context) again. (HTTP/1.1: a follow
ended early closes its connection, so the next one pays a TLS handshake; HTTP/2 would
keep it, but measured a steady ~24 ms more from an event to a waiter returning.)"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Optional, Tuple, TypeVar

from lightkube import Client
from lightkube.core import generic_client as _generic
from lightkube.core.exceptions import ApiError

from ._connection import Connection

httpx = _generic.httpx

T = TypeVar("T")

#: The longest one watch request is left quiet before the deadline is checked again
#: (the server sends a bookmark or ends the watch every 30 s).
QUIET = 60.0


_threads = threading.local()


def _watch_client(connection: Connection) -> Client:
    """This thread's client for watches through `connection` (made on first use; a
    forked child makes its own)."""
    clients: Optional["weakref.WeakKeyDictionary[Connection, Tuple[int, Client]]"] = getattr(
        _threads, "clients", None
    )
    if clients is None:
        clients = _threads.clients = weakref.WeakKeyDictionary()
    kept = clients.get(connection)
    if kept is not None and kept[0] == os.getpid():
        return kept[1]
    client = Client(config=connection.config)
    clients[connection] = (os.getpid(), client)
    return client


def _forget_watch_client(connection: Connection) -> None:
    """Drops this thread's watch client for `connection` (its connection failed)."""
    kept = getattr(_threads, "clients", {}).pop(connection, None)
    if kept is not None and kept[0] == os.getpid():
        kept[1].close()


def follow(
    connection: Connection,
    resource: Any,
    name: str,
    namespace: str,
    resource_version: Optional[str],
    deadline: Optional[float],
) -> Iterator[Tuple[str, Any]]:
    """Every change of `resource` `name` after `resource_version` — the watch event's
    type (``ADDED``, ``MODIFIED``, ``DELETED``) and the object as it stands, for a
    deletion too — until `deadline` (a `time.monotonic()` instant); then the iteration
    ends."""
    version = resource_version
    pause = 0.1
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        quiet = QUIET if left is None else max(0.05, min(QUIET, left))
        client = _watch_client(connection)
        # lightkube gives watches no read timeout of their own (`_watch_timeout`, its
        # one setting for them): this follow's is the time left. Only this thread
        # uses this client.
        client._client._watch_timeout = httpx.Timeout(10.0, read=quiet)
        try:
            for event, obj in client.watch(
                resource,
                namespace=namespace,
                fields={"metadata.name": name},
                resource_version=version,
                server_timeout=30,
            ):
                version = obj.metadata.resourceVersion
                pause = 0.1
                yield event, obj
                if deadline is not None and time.monotonic() >= deadline:
                    return
        except httpx.TimeoutException:
            continue  # quiet for `quiet` seconds: check the deadline, resume
        except httpx.TransportError:
            # The server went away (restarting, a network fault): ride it out, backing
            # off from 100 ms to 2 s, until the deadline, on a fresh client.
            _forget_watch_client(connection)
            left = None if deadline is None else deadline - time.monotonic()
            time.sleep(pause if left is None else max(0.0, min(pause, left)))
            pause = min(pause * 2, 2.0)
        except ApiError as error:
            if error.status.code != 410:
                raise
            version = None  # too old a version: from now on


def wait_until(
    connection: Connection,
    resource: Any,
    name: str,
    namespace: str,
    deadline: Optional[float],
    decide: Callable[[Any], Optional[T]],
) -> Optional[T]:
    """The one wait every kind's ``wait`` is: the first answer ``decide`` gives (not
    None; it may raise) on the object as it stands, then on each version of it, until
    `deadline` — then None. An object not created yet, or deleted meanwhile, is waited
    for (created again), as koncli's wait verbs do."""
    version = None
    try:
        current = connection.client.get(resource, name, namespace=namespace)
        answer = decide(current)
        if answer is not None:
            return answer
        version = current.metadata.resourceVersion
    except ApiError as error:
        if error.status.code != 404:
            raise
    for event, latest in follow(connection, resource, name, namespace, version, deadline):
        if event == "DELETED":
            continue
        answer = decide(latest)
        if answer is not None:
            return answer
    return None
