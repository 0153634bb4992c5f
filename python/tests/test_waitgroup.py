"""WaitGroups from Python: members added, done and failed from Python and koncli alike."""

from __future__ import annotations

import threading

import pytest

from konductor_sdk import Failed, WaitGroup, WaitTimeout


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
