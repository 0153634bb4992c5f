"""Barriers from Python against a real server: arrive and wait, a wait that outlasts
its timeout, a failed barrier, a wait for a barrier not created yet; and a Python
waiter released by a koncli arrival (the claim names agree with the Rust side's)."""

from __future__ import annotations

import threading

import pytest

from konductor_sdk import Barrier, Failed, NotFound, WaitTimeout
from konductor_sdk._names import arrival_name, permit_name


def test_two_arrivals_open_the_barrier_and_arriving_twice_counts_once(connection) -> None:
    barrier = Barrier("etl", connection=connection)
    barrier.create(expected=2)
    barrier.arrive("extract-1")
    barrier.arrive("extract-1")
    with pytest.raises(WaitTimeout):
        barrier.wait(timeout=1)
    barrier.arrive("extract-2")
    status = barrier.wait(timeout=60)
    assert status["phase"] == "Open"
    assert status["arrived"] == 2


def test_a_failed_holder_fails_the_barrier_and_a_missing_one_is_named(connection) -> None:
    barrier = Barrier("doomed", connection=connection)
    barrier.create(expected=2)
    barrier.arrive("w1", failed=True, message="disk full")
    with pytest.raises(Failed) as failed:
        barrier.wait(timeout=60)
    assert (failed.value.kind, failed.value.name) == ("barrier", "doomed")
    with pytest.raises(NotFound):
        Barrier("nosuch", connection=connection).arrive("w1")


def test_a_python_waiter_is_released_by_a_koncli_arrival_and_the_reverse(connection, koncli) -> None:
    barrier = Barrier("interop", connection=connection)
    # Waited for before it exists.
    released = {}
    waiter = threading.Thread(target=lambda: released.update(barrier.wait(timeout=60)))
    waiter.start()
    assert koncli("barrier", "create", "interop", "--expected", "2").returncode == 0
    barrier.arrive("python-holder")
    done = koncli("barrier", "arrive", "interop", "rust-holder")
    assert done.returncode == 0, done.stderr
    waiter.join(timeout=60)
    assert released.get("phase") == "Open"
    # koncli's wait sees the Python arrival as the same holder (same Arrival name).
    assert koncli("barrier", "wait", "interop", "--timeout", "10s").returncode == 0
    again = koncli("barrier", "arrive", "interop", "python-holder")
    assert again.returncode == 0, again.stderr


def test_claim_names_are_the_rust_sides(connection, koncli) -> None:
    assert koncli("mutex", "lock", "names", "--holder", "Pod.A_7").returncode == 0
    permits = connection.client.list(
        __import__("konductor_sdk._resources", fromlist=["Permit"]).Permit, namespace="default"
    )
    names = {p.metadata.name for p in permits}
    assert permit_name("mutex", "names", "Pod.A_7") in names, names
    assert arrival_name("extract", "worker-1").startswith("extract-worker-1-")
