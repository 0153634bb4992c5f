"""Once from Python: one executor per key across callers, Python and koncli alike."""

from __future__ import annotations

import threading

import pytest

from konductor_sdk import FailedForGood, NotDone, NotFound, Once, WaitTimeout


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


def test_check_says_not_done_until_the_work_is_done_and_wait_returns_then(connection, koncli):
    made = koncli("once", "create", "py-check", "--key", "k")
    assert made.returncode == 0, made.stderr
    once = Once("py-check", connection=connection)
    with pytest.raises(NotDone) as raised:
        once.check()
    assert raised.value.exit_code == 9
    with pytest.raises(WaitTimeout):
        once.wait(timeout=0.3)
    seen = {}
    waiter = threading.Thread(target=lambda: seen.update(once.wait(timeout=60)))
    waiter.start()
    ran = koncli("once", "run", "py-check", "--", "true")
    assert ran.returncode == 0, ran.stderr
    waiter.join(60)
    assert seen.get("phase") == "Succeeded" and seen.get("key") == "k", seen
    assert once.check()["key"] == "k"
    with pytest.raises(NotFound):
        Once("py-no-such-once", connection=connection).check()


def test_interrupted_work_is_not_failed_and_runs_again(connection, koncli):
    made = koncli("once", "create", "py-interrupted", "--max-attempts", "1")
    assert made.returncode == 0, made.stderr

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Once("py-interrupted", connection=connection).run(interrupted, key="k")
    again = Once("py-interrupted", connection=connection).run(lambda: "done", key="k")
    assert again.executed and again.value == "done", "an interruption is no failed attempt"
    history = Once("py-interrupted", connection=connection).status().get("history") or []
    assert [a.get("outcome") for a in history] == ["Interrupted", "Succeeded"], history
