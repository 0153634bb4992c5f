"""WaitGroups from Python: members added, done and failed from Python and koncli alike."""

from __future__ import annotations

import threading
import time

import pytest

from konductor_sdk import AlreadyDone, Failed, FailedForGood, WaitGroup, WaitTimeout
from konductor_sdk import _resources as res
from konductor_sdk.waitgroup import member_name


def test_members_done_from_python_and_koncli_finish_the_group(connection, koncli):
    wg = WaitGroup("py-ingest", connection=connection)
    wg.create(expected=3)
    assert wg.add("f1", "f2", "f3") == 3
    assert wg.add("f1") == 0, "adding twice adds once"
    with pytest.raises(WaitTimeout):
        wg.wait(timeout=0.3)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(wg.wait(timeout=60)))
    waiter.start()
    with wg.member("f1"):
        pass
    wg.done("f2")
    marked = koncli("waitgroup", "done", "py-ingest", "--member", "f3")
    assert marked.returncode == 0, marked.stderr
    waiter.join(60)
    assert result.get("phase") == "Done" and result.get("done") == 3


def test_a_member_whose_block_raises_is_failed_with_why(connection):
    wg = WaitGroup("py-failing", connection=connection)
    wg.create(expected=2)
    with pytest.raises(ValueError):
        with wg.member("bad"):
            raise ValueError("row 7")
    wg.done("good")
    with pytest.raises(Failed) as raised:
        wg.wait(timeout=60)
    assert raised.value.exit_code == 4
    failures = wg.status().get("failures") or []
    assert failures and "row 7" in failures[0].get("message", "")


def member_spec(connection, group, member):
    obj = connection.client.get(res.WaitGroupMember, member_name(group, member), namespace="default")
    return dict(obj.spec or {}), dict(obj.status or {})


def test_a_retry_of_a_done_member_runs_nothing_and_a_failed_one_runs_again(connection):
    wg = WaitGroup("py-retry", connection=connection)
    wg.create(expected=2, member_attempts=2)
    runs = []
    with pytest.raises(RuntimeError):
        with wg.member("flaky"):
            runs.append("first")
            raise RuntimeError("disk full")
    with wg.member("flaky") as held:
        assert held.held
        runs.append("second")
    with pytest.raises(AlreadyDone) as done:
        with wg.member("flaky"):
            runs.append("third")
    assert done.value.exit_code == 0
    assert runs == ["first", "second"]
    spec, _ = member_spec(connection, "py-retry", "flaky")
    assert [a["result"] for a in spec["attempts"]] == ["Failed"], spec
    assert "disk full" in spec["attempts"][0].get("message", "")
    for _ in range(2):
        with pytest.raises(ValueError):
            with wg.member("broken"):
                raise ValueError("bad row")
    with pytest.raises(FailedForGood) as failed:
        with wg.member("broken"):
            runs.append("never")
    assert failed.value.exit_code == 8 and "bad row" in str(failed.value)
    assert runs == ["first", "second"]


def test_an_interrupted_member_is_given_back_not_failed(connection):
    wg = WaitGroup("py-interrupt", connection=connection)
    wg.create(expected=1)
    with pytest.raises(KeyboardInterrupt):
        with wg.member("f1"):
            raise KeyboardInterrupt
    spec, _ = member_spec(connection, "py-interrupt", "f1")
    assert "outcome" not in spec and "holder" not in spec, spec
    assert [a["result"] for a in spec["attempts"]] == ["Interrupted"], spec
    assert wg.status().get("failed", 0) == 0
    with wg.member("f1"):
        pass
    assert wg.wait(timeout=60).get("phase") == "Done"


def test_a_held_member_is_renewed_past_its_member_ttl(connection):
    wg = WaitGroup("py-renewed", connection=connection)
    wg.create(expected=1, member_ttl="2s")
    with wg.member("slow") as held:
        first = member_spec(connection, "py-renewed", "slow")[0]["renewTime"]
        deadline = time.monotonic() + 3.0  # longer than memberTTL: only renewals keep it
        while time.monotonic() < deadline:
            assert held.held
            held.check()
            time.sleep(0.1)
        spec, status = member_spec(connection, "py-renewed", "slow")
        assert spec["renewTime"] != first and not status.get("expired"), (spec, status)
    assert wg.wait(timeout=60).get("phase") == "Done"


def test_wait_waits_for_a_group_not_created_yet(connection):
    wg = WaitGroup("py-later", connection=connection)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(wg.wait(timeout=60)))
    waiter.start()
    wg.create(expected=1)  # made after the wait started, or while it starts: either way waited for
    wg.done("only")
    waiter.join(60)
    assert result.get("phase") == "Done", result
