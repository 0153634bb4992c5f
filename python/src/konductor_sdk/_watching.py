"""Following one object by watch, bounded by a deadline.

lightkube's watch reconnects by itself and yields nothing while nothing changes, so a
deadline cannot be checked between events. Each follow gets a client of its own, read
by a daemon thread into a queue; the caller waits on the queue with its deadline, and
closing that client ends the thread's read."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator, Optional

from lightkube import Client

from ._connection import Connection


def follow(
    connection: Connection,
    resource: Any,
    name: str,
    namespace: str,
    resource_version: Optional[str],
    deadline: Optional[float],
) -> Iterator[Any]:
    """Every version of `resource` `name` after `resource_version` (the object as it
    stands, for a deletion too), until `deadline` (a `time.monotonic()` instant) — then
    the iteration ends."""
    events: "queue.Queue[Any]" = queue.Queue()
    client = Client(config=connection.config, namespace=namespace)

    def pump() -> None:
        try:
            for _, obj in client.watch(
                resource,
                namespace=namespace,
                fields={"metadata.name": name},
                resource_version=resource_version,
                server_timeout=30,
            ):
                events.put(obj)
        except Exception as error:  # ended by close(), or the server refused
            events.put(error)

    threading.Thread(target=pump, daemon=True, name=f"konductor-follow-{name}").start()
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                item = events.get(timeout=left)
            except queue.Empty:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        client.close()
