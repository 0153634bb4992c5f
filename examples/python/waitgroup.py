"""WaitGroup: a producer lists four files and seals the group; workers process them,
one fails once and succeeds on its retry; a consumer waits until every file is done.
Run against a konductor server ($KUBECONFIG)."""

import threading

from konductor_sdk import AlreadyDone, WaitGroup

files = ["a.csv", "b.csv", "c.csv", "d.csv"]
wg = WaitGroup("py-example-ingest")
wg.create(member_ttl="30s", member_attempts=2)   # a worker that dies fails its file
wg.add(*files)
wg.seal()                                         # no more files: done when these are

attempts = {name: 0 for name in files}


def ingest(name: str) -> None:
    attempts[name] += 1
    if name == "c.csv" and attempts[name] == 1:
        raise IOError("connection reset while reading c.csv")


def worker(name: str) -> None:
    for _ in range(2):                            # a Job's retry, in miniature
        try:
            with wg.member(name):
                ingest(name)
            return
        except IOError as error:
            print(f"{name}: attempt failed ({error}); retrying")
        except AlreadyDone:
            return


workers = [threading.Thread(target=worker, args=(name,)) for name in files]
for w in workers:
    w.start()
status = wg.wait(timeout=60)                      # the consumer
for w in workers:
    w.join()
assert status["phase"] == "Done" and status["done"] == 4, status
assert attempts["c.csv"] == 2
try:
    with wg.member("a.csv"):                      # a retry of finished work runs nothing
        raise AssertionError("ran a finished member again")
except AlreadyDone:
    pass
print("all", status["done"], "files done;", "c.csv took", attempts["c.csv"], "attempts")
