"""Gate and wait_for: a load step waits for two upstream stages, each a barrier here
(a Job, a Deployment or any object with conditions works the same); a Gate records the
wait as an object anyone can `kubectl get`. Run against a konductor server
($KUBECONFIG)."""

import threading

from konductor_sdk import Barrier, Gate, wait_for

for stage in ("py-example-extract", "py-example-transform"):
    Barrier(stage).create(expected=1)
Gate("py-example-load").create("barrier/py-example-extract", "barrier/py-example-transform")

seen = {}
waiter = threading.Thread(
    target=lambda: seen.update(wait_for("barrier/py-example-extract", "barrier/py-example-transform", timeout=60))
)
waiter.start()
Barrier("py-example-extract").arrive("extractor")
assert Gate("py-example-load").status().get("phase") != "Open"   # one of two
Barrier("py-example-transform").arrive("transformer")
status = Gate("py-example-load").wait(timeout=60)
waiter.join(60)
assert status["phase"] == "Open", status
assert seen == {"barrier/py-example-extract": "met", "barrier/py-example-transform": "met"}, seen
print("gate open; wait_for saw", seen)
