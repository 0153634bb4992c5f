"""Faults from outside: a holder SIGKILLed (taken over after the ttl), the server
killed with -9 and restarted on the same data while a lock is held and while another
waits for it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from konductor_sdk import Connection, Mutex
from konductor_sdk import _resources as res

from .conftest import _binary

BOUND = 60.0


class Server:
    """A konductor server on a fixed port and data directory, killable and restartable."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="konductor-py-faults-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = None
        self.start()

    def start(self) -> None:
        out = self.directory / "server.out"
        out.write_text("")
        self.process = subprocess.Popen(
            [_binary("konductor"), "server", "--data-dir", str(self.directory / "data"), "--listen", f"127.0.0.1:{self.port}"],
            stdout=open(out, "w"),
            stderr=open(self.directory / "server.log", "a"),
        )
        deadline = time.monotonic() + BOUND
        while "export KUBECONFIG=" not in out.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "data" / "kubeconfig"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture()
def server():
    running = Server()
    yield running
    running.stop()


def test_a_sigkilled_holder_is_taken_over_after_its_ttl(server):
    script = "\n".join(
        [
            "import time",
            "from konductor_sdk import Connection, Mutex",
            f"connection = Connection(kubeconfig={str(server.kubeconfig)!r}, namespace='default')",
            "lock = Mutex('py-crash', ttl='2s', connection=connection)",
            "print(lock.acquire(), flush=True)",
            "time.sleep(600)",
        ]
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    first = int(holder.stdout.readline())
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    connection = Connection(kubeconfig=server.kubeconfig, namespace="default")
    with Mutex("py-crash", connection=connection) as lock:
        assert lock.token > first


def test_a_held_lock_and_a_waiter_ride_out_a_server_kill_9_and_restart(server):
    connection = Connection(kubeconfig=server.kubeconfig, namespace="default")
    holder = Mutex("py-restart", ttl="10s", connection=connection)
    token = holder.acquire()
    import threading

    got = {}
    waiter = threading.Thread(
        target=lambda: got.update(token=Mutex("py-restart", connection=Connection(kubeconfig=server.kubeconfig, namespace="default")).acquire(timeout=BOUND))
    )
    waiter.start()
    # The waiter's claim is made (its Permit is on disk before the kill).
    deadline = time.monotonic() + BOUND
    while len(list(connection.client.list(res.Permit, namespace="default", labels={"konductor.io/mutex": "py-restart"}))) < 2:
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.02)
    server.kill9()
    server.start()
    # Restarted within the trust (a ttl less a fifth): the grant was never in doubt.
    assert holder.held, holder._lost
    assert holder.check() == token
    holder.release()
    waiter.join(BOUND)
    assert got.get("token", 0) > token


class BlackholingProxy:
    """A TCP proxy on loopback that forwards until ``blackhole()``, then silently drops
    every byte both ways — connections stay open, nothing is reset, as in a partition."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.dropping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if not self.dropping.is_set():
                try:
                    sink.sendall(data)
                except OSError:
                    return

    def blackhole(self) -> None:
        self.dropping.set()


def test_a_holder_cut_off_by_a_partition_is_told_before_the_next_grant(server):
    import threading

    proxy = BlackholingProxy(server.port)
    proxied = server.directory / "proxied-kubeconfig"
    proxied.write_text(server.kubeconfig.read_text().replace(f"127.0.0.1:{server.port}", f"127.0.0.1:{proxy.port}"))
    told = {}
    holder = Mutex(
        "py-partition",
        ttl="3s",
        connection=Connection(kubeconfig=proxied, namespace="default"),
        on_lost=lambda why: told.setdefault("at", time.monotonic()),
    )
    token = holder.acquire()
    proxy.blackhole()
    direct = Connection(kubeconfig=server.kubeconfig, namespace="default")
    waiter = Mutex("py-partition", connection=direct)
    next_token = waiter.acquire(timeout=BOUND)
    granted_at = time.monotonic()
    assert next_token > token
    assert "at" in told, "the cut-off holder was never told"
    assert told["at"] < granted_at, "the next grant came before the holder was told"
    assert not holder.held
    waiter.release()
