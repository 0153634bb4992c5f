"""A fresh `konductor server` per test module, started from the workspace's binary
($KONDUCTOR_BIN, else `konductor` on PATH) on a free loopback port, stopped after."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from konductor_sdk import Connection


def _binary(name: str) -> str:
    found = os.environ.get(f"{name.upper()}_BIN") or shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not on PATH (or ${name.upper()}_BIN): the tests need a real server")
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    """The kubeconfig of a fresh server."""
    directory = Path(tempfile.mkdtemp(prefix="konductor-py-"))
    out = open(directory / "server.out", "w")
    log = open(directory / "server.log", "w")
    process = subprocess.Popen(
        [_binary("konductor"), "server", "--data-dir", str(directory / "data"), "--listen", "127.0.0.1:0"],
        stdout=out,
        stderr=log,
    )
    kubeconfig = directory / "data" / "kubeconfig"
    deadline = time.monotonic() + 60
    while "export KUBECONFIG=" not in (directory / "server.out").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("konductor server did not start:\n" + (directory / "server.log").read_text())
        time.sleep(0.05)
    yield kubeconfig
    process.kill()
    process.wait()
    if not os.environ.get("KONDUCTOR_KEEP_TEST_DIRS"):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture()
def connection(server: Path) -> Connection:
    """A connection to the module's server, namespace `default`."""
    return Connection(kubeconfig=server, namespace="default")


@pytest.fixture()
def koncli(server: Path):
    """Runs the workspace's koncli against the module's server."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_binary("koncli"), "--kubeconfig", str(server), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
