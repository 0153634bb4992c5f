"""A barrier and a mutex from Python: three workers arrive, then take turns on a lock,
each writing its fencing token. Run against a konductor server ($KUBECONFIG)."""

import threading

from konductor_sdk import Barrier, Mutex

barrier = Barrier("py-example-start")
barrier.create(expected=3)
tokens = []


def worker(n: int) -> None:
    Barrier("py-example-start").arrive(f"worker-{n}")
    Barrier("py-example-start").wait(timeout=60)
    with Mutex("py-example-db", ttl="30s") as lock:
        tokens.append(lock.token)


threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len(set(tokens)) == 3, tokens  # three holders, three distinct fencing tokens
print("tokens", sorted(tokens))
