"""Locks from Python against a real server: grants, queues, fencing tokens rising across
Python and koncli holders, loss told at once, a forked child that leaves the parent's
claim alone, a signal while waiting that withdraws the claim."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
from lightkube.core.exceptions import ApiError

from konductor_sdk import Busy, GrantLost, KonductorError, Mutex, RWMutex, Semaphore, Skipped, UsageError
from konductor_sdk import _resources as res

BOUND = 30.0  # the longest any awaited outcome may take before it is a hang


def grants(connection, resource, name):
    lock = connection.client.get(resource, name, namespace="default")
    return [g["holder"] for g in (dict(lock.status or {}).get("grants") or [])]


def permit_exists(connection, name) -> bool:
    try:
        connection.client.get(res.Permit, name, namespace="default")
        return True
    except ApiError as error:
        assert error.status.code == 404
        return False


def until(condition, what: str):
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def test_a_mutex_is_held_in_a_with_block_and_given_back(connection):
    with Mutex("py-db", ttl="30s", connection=connection) as lock:
        assert lock.held and lock.token >= 1
        assert lock.check() == lock.token
        assert grants(connection, res.Mutex, "py-db") == [lock.holder]
        permit = lock._permit
    assert not lock.held
    assert not permit_exists(connection, permit)


def test_a_waiter_is_granted_when_the_holder_releases_with_a_higher_token(connection):
    first = Mutex("py-queue", ttl="30s", connection=connection)
    token = first.acquire()
    got = {}

    def wait():
        with Mutex("py-queue", ttl="30s", connection=connection) as second:
            got["token"] = second.token

    waiter = threading.Thread(target=wait)
    waiter.start()
    until(lambda: len(list(connection.client.list(res.Permit, namespace="default", labels={"konductor.io/mutex": "py-queue"}))) == 2, "the waiter queued")
    assert "token" not in got
    first.release()
    waiter.join(BOUND)
    assert got["token"] > token


def test_not_waiting_on_a_busy_lock_raises_busy_and_withdraws(connection):
    with Mutex("py-busy", ttl="30s", connection=connection):
        other = Mutex("py-busy", ttl="30s", connection=connection)
        with pytest.raises(Busy) as raised:
            other.acquire(blocking=False)
        assert raised.value.exit_code == 6
        assert not permit_exists(connection, other._permit)


def test_python_and_koncli_holders_alternate_with_strictly_rising_tokens(connection, koncli):
    tokens = []
    for _ in range(3):
        with Mutex("py-shared", ttl="30s", connection=connection) as lock:
            tokens.append(lock.token)
        ran = koncli("mutex", "run", "py-shared", "--", "sh", "-c", "echo $KONDUCTOR_FENCING_TOKEN")
        assert ran.returncode == 0 and ran.stdout.strip(), (tokens, ran.stdout, ran.stderr)
        tokens.append(int(ran.stdout.strip().splitlines()[-1]))
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens


def test_a_semaphore_lets_permits_holders_in_and_an_rwmutex_many_readers(connection):
    with Semaphore("py-gpus", permits=2, ttl="30s", connection=connection) as a:
        with Semaphore("py-gpus", connection=connection) as b:
            assert a.held and b.held
            assert sorted(grants(connection, res.Semaphore, "py-gpus")) == sorted([a.holder, b.holder])
    cache = RWMutex("py-cache", ttl="30s", connection=connection)
    with cache.read() as r1, cache.read() as r2:
        assert r1.held and r2.held
        writer = cache.write()
        with pytest.raises(Busy):
            writer.acquire(blocking=False)


def test_a_lost_grant_is_told_at_once(connection):
    told = threading.Event()
    lock = Mutex("py-lost", ttl="3s", connection=connection, on_lost=lambda why: told.set())
    lock.acquire()
    # Someone deletes the Permit: the next renewal (every ttl/6) finds it gone.
    connection.client.delete(res.Permit, lock._permit, namespace="default")
    assert told.wait(BOUND), "on_lost was not called"
    assert not lock.held
    with pytest.raises(GrantLost) as raised:
        lock.check()
    assert raised.value.exit_code == 7
    lock.release()


def _child_leaves(lock, results):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lock.release()
    results.put(("warned", any("forked child" in str(w.message) for w in caught)))
    try:
        lock.check()
        results.put(("check", "passed"))
    except GrantLost as error:
        results.put(("check", error.message))


def test_a_forked_child_never_releases_the_parents_claim(connection):
    lock = Mutex("py-fork", ttl="30s", connection=connection)
    lock.acquire()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child_leaves, args=(lock, results))
    child.start()
    child.join(BOUND)
    assert child.exitcode == 0
    seen = dict([results.get(timeout=BOUND), results.get(timeout=BOUND)])
    assert seen["warned"] is True
    assert "parent process" in seen["check"]
    assert permit_exists(connection, lock._permit), "the child deleted the parent's Permit"
    assert lock.held
    lock.release()


def test_a_signal_while_waiting_withdraws_the_claim_and_is_no_failure(server, connection):
    holder = Mutex("py-signal", ttl="30s", connection=connection)
    holder.acquire()
    script = textwrap.dedent(
        f"""
        import sys
        from konductor_sdk import Connection, Interrupted, Mutex
        lock = Mutex("py-signal", connection=Connection(kubeconfig={str(server)!r}, namespace="default"))
        print("waiting", flush=True)
        try:
            lock.acquire()
        except Interrupted as error:
            print("interrupted", error.exit_code, lock._permit, flush=True)
            sys.exit(130)
        """
    )
    waiter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert waiter.stdout.readline().strip() == "waiting"
    until(lambda: len(list(connection.client.list(res.Permit, namespace="default", labels={"konductor.io/mutex": "py-signal"}))) == 2, "the waiter queued")
    waiter.send_signal(signal.SIGINT)
    out, _ = waiter.communicate(timeout=BOUND)
    assert waiter.returncode == 130, out
    words = out.split()
    assert words[0] == "interrupted" and words[1] == "130"
    assert not permit_exists(connection, words[2]), "the withdrawn claim is gone"
    assert holder.held
    holder.release()


def test_a_grant_outlives_its_ttl_while_renewed(connection):
    with Mutex("py-renewed", ttl="2s", connection=connection) as lock:
        # Three ttls pass: only renewals (six per ttl) keep it.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert lock.check() == lock.token
            time.sleep(0.1)
        assert grants(connection, res.Mutex, "py-renewed") == [lock.holder]


def test_hold_all_takes_locks_in_one_order_and_two_holders_never_deadlock(connection):
    from konductor_sdk import UsageError, hold_all

    active, peak, guard = [0], [0], threading.Lock()
    errors = []

    def worker(names):
        try:
            for _ in range(5):
                locks = [Mutex(n, ttl="30s", connection=connection) for n in names]
                with hold_all(*locks) as held:
                    assert held.held
                    with guard:
                        active[0] += 1
                        peak[0] = max(peak[0], active[0])
                    with guard:
                        active[0] -= 1
        except Exception as error:  # surfaced below
            errors.append(error)

    a = threading.Thread(target=worker, args=(["py-h1", "py-h2"],))
    b = threading.Thread(target=worker, args=(["py-h2", "py-h1"],))
    a.start(); b.start()
    a.join(BOUND); b.join(BOUND)
    assert not a.is_alive() and not b.is_alive(), "deadlocked"
    assert not errors, errors
    assert peak[0] == 1, "both held the locks at once"
    with pytest.raises(UsageError):
        hold_all(Mutex("py-h1", connection=connection), Mutex("py-h1", connection=connection))


def test_a_rate_limit_counts_slots_in_its_window(connection):
    from konductor_sdk import RateLimit

    limit = RateLimit("py-deploys", limit=2, window="1h", connection=connection)
    first = limit.take()
    second = RateLimit("py-deploys", connection=connection).take()
    assert second > first
    with pytest.raises(Busy):
        RateLimit("py-deploys", connection=connection).take(blocking=False)


def _child_arrives(connection, results):
    from konductor_sdk import Barrier

    results.put(Barrier("py-forked", connection=connection).arrive("child"))


def test_a_forked_child_gets_its_own_client(connection):
    from konductor_sdk import Barrier

    barrier = Barrier("py-forked", connection=connection)
    barrier.create(2)
    parent_client = connection.client
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child_arrives, args=(connection, results))
    child.start()
    assert results.get(timeout=BOUND) == "child"
    child.join(BOUND)
    assert child.exitcode == 0
    assert connection.client is parent_client, "the parent keeps its client"
    barrier.arrive("parent")
    assert barrier.wait(timeout=BOUND)["phase"] == "Open"


def test_if_busy_skip_skips_the_block_and_fail_raises_busy(connection):
    ran = []
    with Mutex("py-nightly", ttl="30s", connection=connection):
        with pytest.raises(Skipped) as skipped:
            with Mutex("py-nightly", ttl="30s", if_busy="skip", connection=connection):
                ran.append("skip")
        assert skipped.value.exit_code == 10
        with pytest.raises(Busy):
            with Mutex("py-nightly", ttl="30s", if_busy="fail", connection=connection):
                ran.append("fail")
        with pytest.raises(Skipped):
            Mutex("py-nightly", ttl="30s", if_busy="skip", connection=connection).run_exclusive(["true"])
    assert ran == []
    with Mutex("py-nightly", ttl="30s", if_busy="skip", connection=connection) as free:
        assert free.held, "a free lock is taken, not skipped"
    with pytest.raises(UsageError, match="if_busy"):
        Mutex("py-nightly", if_busy="later", connection=connection)


def test_a_waiter_follows_its_own_permit_and_is_told_when_the_lock_goes(connection):
    holder = Mutex("py-doomed", ttl="30s", connection=connection)
    holder.acquire()
    outcome = {}

    def wait():
        try:
            Mutex("py-doomed", ttl="30s", create=False, connection=connection).acquire(timeout=BOUND)
        except KonductorError as error:
            outcome["error"] = error

    waiter = threading.Thread(target=wait)
    waiter.start()
    until(lambda: len(list(connection.client.list(res.Permit, namespace="default", labels={"konductor.io/mutex": "py-doomed"}))) == 2, "the waiter queued")
    connection.client.delete(res.Mutex, "py-doomed", namespace="default")
    waiter.join(BOUND)
    assert not waiter.is_alive(), "a waiter whose lock is deleted stops waiting"
    error = outcome["error"]
    assert error.exit_code == 1 and "the lock was deleted" in str(error), error
