"""Semaphore and RateLimit: six training jobs share two GPUs (never more than two at
once), and deploys are limited to three per window; a nightly job skips when
yesterday's still holds its lock. Run against a konductor server ($KUBECONFIG)."""

import threading
import time

from konductor_sdk import Busy, Mutex, RateLimit, Semaphore, Skipped

running, most = [], [0]
guard = threading.Lock()


def train(n: int) -> None:
    with Semaphore("py-example-gpus", permits=2, ttl="30s") as gpu:
        with guard:
            running.append(n)
            most[0] = max(most[0], len(running))
        time.sleep(0.05)                          # the work
        with guard:
            running.remove(n)
        assert gpu.held


jobs = [threading.Thread(target=train, args=(n,)) for n in range(6)]
for j in jobs:
    j.start()
for j in jobs:
    j.join()
assert most[0] <= 2, most
print("six jobs trained, at most", most[0], "at once")

deploys = RateLimit("py-example-deploys", limit=3, window="1h")
tokens = [deploys.take() for _ in range(3)]
try:
    RateLimit("py-example-deploys").take(blocking=False)
    raise AssertionError("a fourth deploy in the window")
except Busy as error:                             # the window is full
    print("fourth deploy refused:", error)
print("three deploys this hour, tokens", tokens)

with Mutex("py-example-nightly", ttl="30s"):      # yesterday's run, still going
    try:
        with Mutex("py-example-nightly", ttl="30s", if_busy="skip"):
            raise AssertionError("ran while yesterday's run holds the lock")
    except Skipped as skipped:
        print(f"nightly skipped (exit code {skipped.exit_code})")
