"""Gates and wait_for from Python, released by koncli and kubectl-made objects."""

from __future__ import annotations

import threading

import pytest

from konductor_sdk import Barrier, Failed, Gate, UsageError, WaitTimeout, wait_for


def test_wait_for_all_and_any_on_barriers_released_by_koncli(connection, koncli):
    Barrier("py-a", connection=connection).create(1)
    Barrier("py-b", connection=connection).create(1)
    with pytest.raises(WaitTimeout):
        wait_for("barrier/py-a", "barrier/py-b", timeout=0.3, connection=connection)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(wait_for("barrier/py-a", "barrier/py-b", any=True, timeout=60, connection=connection)))
    waiter.start()
    assert koncli("barrier", "arrive", "py-b", "--holder", "x").returncode == 0
    waiter.join(60)
    assert result == {"barrier/py-b": "met"}


def test_a_target_not_created_yet_is_waited_for_and_a_failed_one_fails(connection, koncli):
    result = {}
    waiter = threading.Thread(target=lambda: result.update(wait_for("barrier/py-later", timeout=60, connection=connection)))
    waiter.start()
    assert koncli("barrier", "create", "py-later", "--expected", "1").returncode == 0
    assert koncli("barrier", "arrive", "py-later", "--holder", "x").returncode == 0
    waiter.join(60)
    assert result == {"barrier/py-later": "met"}
    Barrier("py-doomed", connection=connection).create(1)
    Barrier("py-doomed", connection=connection).arrive("x", failed=True)
    with pytest.raises(Failed) as raised:
        wait_for("barrier/py-doomed", timeout=60, connection=connection)
    assert raised.value.exit_code == 4


def test_a_gate_opens_when_its_target_does(connection, koncli):
    Barrier("py-gated", connection=connection).create(1)
    gate = Gate("py-gate", connection=connection)
    gate.create("barrier/py-gated")
    assert koncli("barrier", "arrive", "py-gated", "--holder", "x").returncode == 0
    assert gate.wait(timeout=60)["phase"] == "Open"
    with pytest.raises(UsageError):
        wait_for("configmap/x", connection=connection)
