"""The Python SDK's side of `konductor-bench --only python`: one process doing one
part of a measurement, driven by the bench, which times what crosses processes.

    python bench.py acquire NAME SAMPLES   # a free Mutex taken and given back SAMPLES
                                           # times; prints {"acquire_ms": [...]}
    python bench.py holder NAME            # one holder of a Mutex handed over between
                                           # processes, driven line by line on stdin
    python bench.py wait NAME              # waits at Barrier NAME; prints "open", then
                                           # exits when stdin closes
    python bench.py relay NAME             # takes Mutex NAME, prints "held", gives it
                                           # back, again and again until killed

The server is the one ``KUBECONFIG`` names (the bench's own, fresh). ``holder`` reads
commands from stdin — ``acquire HOLDER`` (claim as HOLDER and wait; prints ``held
HOLDER TOKEN`` once granted), ``release`` (prints ``released``), ``exit`` — so the
bench can start the clock when it asks one process to release and stop it when the
other says it holds the lock. Every line is flushed at once."""

from __future__ import annotations

import json
import sys
import time
from typing import List, Optional

from konductor_sdk import Barrier, Mutex


def say(line: str) -> None:
    """One line to the bench, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def acquire(name: str, samples: int) -> None:
    """Milliseconds from asking for the free Mutex `name` to holding it (the Mutex is
    made by a first acquire, which also opens the connection, before the clock runs)."""
    with Mutex(name):
        pass
    times: List[float] = []
    for _ in range(samples):
        lock = Mutex(name)
        started = time.perf_counter()
        lock.acquire()
        times.append((time.perf_counter() - started) * 1000.0)
        lock.release()
    say(json.dumps({"acquire_ms": times}))


def holder(name: str) -> None:
    """A holder of Mutex `name` driven by the bench through stdin."""
    lock: Optional[Mutex] = None
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "acquire":
            lock = Mutex(name, holder=argument)
            token = lock.acquire()
            say(f"held {argument} {token}")
        elif command == "release" and lock is not None:
            lock.release()
            lock = None
            say("released")
        elif command == "exit":
            break
        else:
            raise SystemExit(f"bench.py holder: unknown command {line.strip()!r}")
    if lock is not None:
        lock.release()


def wait(name: str) -> None:
    """Waits at Barrier `name` until it opens (within two minutes), says so, and exits
    when the bench closes stdin (so exiting interpreters do not slow the waiters still
    being released)."""
    Barrier(name).wait(timeout=120)
    say("open")
    sys.stdin.read()


def relay(name: str) -> None:
    """Takes Mutex `name` and gives it back, over and over (a new claim each time, as a
    worker taking turns would), saying "held" at each grant."""
    while True:
        with Mutex(name):
            say("held")


def main(argv: List[str]) -> None:
    if len(argv) == 3 and argv[0] == "acquire":
        acquire(argv[1], int(argv[2]))
    elif len(argv) == 2 and argv[0] == "holder":
        holder(argv[1])
    elif len(argv) == 2 and argv[0] == "wait":
        wait(argv[1])
    elif len(argv) == 2 and argv[0] == "relay":
        relay(argv[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
