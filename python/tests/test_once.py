"""Once from Python: one executor per key across callers, Python and koncli alike."""

from __future__ import annotations

import threading

import pytest

from konductor_sdk import FailedForGood, Once


def test_the_work_runs_once_per_key_and_a_second_caller_sees_it_done(connection):
    ran = []
    first = Once("py-migrate", connection=connection).run(lambda: ran.append(1) or "migrated", key="v1")
    assert first.executed and first.value == "migrated" and first.token >= 1
    second = Once("py-migrate", connection=connection).run(lambda: ran.append(2), key="v1")
    assert not second.executed and second.token == first.token
    assert ran == [1]
    third = Once("py-migrate", connection=connection).run(lambda: ran.append(3), key="v2")
    assert third.executed and third.token > first.token


def test_concurrent_callers_run_the_work_once(connection):
    ran = []
    results = []

    def call():
        results.append(Once("py-race", connection=connection).run(lambda: ran.append(1), key="k"))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ran) == 1
    assert sum(r.executed for r in results) == 1 and len(results) == 5


def test_the_decorator_and_koncli_agree_on_done(connection, koncli):
    calls = []

    @Once("py-deco", key="k1", connection=connection)
    def warm():
        calls.append(1)

    assert warm().executed
    ran = koncli("once", "run", "py-deco", "--key", "k1", "--", "false")
    assert ran.returncode == 0, ran.stderr  # already done: nothing ran
    assert not warm().executed
    assert calls == [1]


def test_work_that_fails_every_attempt_fails_for_good_never_success(connection, koncli):
    made = koncli("once", "create", "py-fail", "--max-attempts", "1")
    assert made.returncode == 0, made.stderr
    with pytest.raises(RuntimeError):
        Once("py-fail", connection=connection).run(lambda: (_ for _ in ()).throw(RuntimeError("boom")), key="k")
    with pytest.raises(FailedForGood) as raised:
        Once("py-fail", connection=connection).run(lambda: None, key="k")
    assert raised.value.exit_code == 8
