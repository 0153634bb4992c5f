"""The asyncio shapes: async with, await, a cancelled wait that withdraws its claim."""

from __future__ import annotations

import asyncio
import os

from lightkube.core.exceptions import ApiError

from konductor_sdk import Barrier, Mutex, Once, wait_for_async
from konductor_sdk import _resources as res


def test_async_with_a_mutex_and_await_a_barrier(connection, koncli):
    async def main():
        async with Mutex("py-async", ttl="30s", connection=connection) as lock:
            assert lock.held
        barrier = Barrier("py-async-b", connection=connection)
        barrier.create(1)
        waiting = asyncio.ensure_future(barrier.wait_async(timeout=60))
        await barrier.arrive_async("x")
        status = await waiting
        assert status["phase"] == "Open"
        assert await wait_for_async("barrier/py-async-b", connection=connection) == {"barrier/py-async-b": "met"}

        async def work():
            await asyncio.sleep(0)
            return "done"

        ran = await Once("py-async-once", connection=connection).run_async(work, key="k")
        assert ran.executed and ran.value == "done"

    asyncio.run(main())


def test_a_cancelled_wait_withdraws_its_claim(connection):
    async def main():
        holder = Mutex("py-cancel", ttl="30s", connection=connection)
        await holder.acquire_async()
        waiter = Mutex("py-cancel", ttl="30s", connection=connection)
        task = asyncio.ensure_future(waiter.acquire_async())
        while waiter._uid is None:
            await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        try:
            connection.client.get(res.Permit, waiter._permit, namespace="default")
            raise AssertionError("the cancelled claim is still there")
        except ApiError as error:
            assert error.status.code == 404
        assert holder.held
        await holder.release_async()

    asyncio.run(main())


def test_many_concurrent_async_waits_do_not_starve_the_arrival_that_opens_them(connection):
    # More waits than the default executor's threads (cores + 4): an arrival queued
    # behind the waits it would release would never run.
    waiters = (os.cpu_count() or 1) + 12

    async def main():
        barrier = Barrier("py-async-many", connection=connection)
        barrier.create(1)
        waits = [asyncio.ensure_future(barrier.wait_async(timeout=60)) for _ in range(waiters)]
        await asyncio.sleep(0)
        await asyncio.wait_for(barrier.arrive_async("opener"), 30)
        statuses = await asyncio.wait_for(asyncio.gather(*waits), 60)
        assert [s["phase"] for s in statuses] == ["Open"] * waiters

    asyncio.run(main())
