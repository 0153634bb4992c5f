"""Blocking calls awaited from asyncio, each on a thread of its own.

``asyncio.to_thread`` runs on the loop's default executor, which has ``min(32, cores +
4)`` threads: on a two-core machine the seventh concurrent wait would queue behind six
that may be waiting for it — an arrival stuck behind the waiters it would release. A
wait is idle nearly all the time, so each gets a daemon thread of its own, and the
event loop is told when it ends."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def start_in_thread(call: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
    """Runs ``call(*args)`` on a new daemon thread; the future (a plain one, not a task:
    an exception nobody awaits any more — a cancelled wait's — stays in it) settles with
    its result or its exception. Cancelling the future does not stop the call: callers
    that must undo it (a queued claim) do so themselves."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[T]" = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: Any) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = context.run(call, *args), None
        except BaseException as raised:  # handed to the awaiting side, as to_thread does
            result, error = None, raised
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody awaits it any more

    name = getattr(call, "__name__", "call")
    threading.Thread(target=run, daemon=True, name=f"konductor-async-{name}").start()
    return future


async def in_thread(call: Callable[..., T], *args: Any) -> T:
    """Awaits ``call(*args)`` run on a thread of its own (:func:`start_in_thread`)."""
    return await start_in_thread(call, *args)
