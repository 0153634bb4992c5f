"""Once: three replicas start together and each asks to run the migration for one
schema version; it runs exactly once, the others see it done. A later deploy of the
same version runs nothing; the next version runs again. Run against a konductor
server ($KUBECONFIG)."""

import threading

from konductor_sdk import Once

ran_by = []


def migrate(replica: int) -> str:
    ran_by.append(replica)
    return f"migrated by replica {replica}"


def replica(n: int) -> None:
    ran = Once("py-example-migrate").run(migrate, n, key="schema-v1")
    print(f"replica {n}:", ran.value if ran.executed else f"already done (token {ran.token})")


replicas = [threading.Thread(target=replica, args=(n,)) for n in range(3)]
for r in replicas:
    r.start()
for r in replicas:
    r.join()
assert len(ran_by) == 1, ran_by  # one executor across the three

assert not Once("py-example-migrate").run(migrate, 9, key="schema-v1").executed
assert Once("py-example-migrate").check(key="schema-v1")["phase"] == "Succeeded"
assert Once("py-example-migrate").run(migrate, 9, key="schema-v2").executed
print("ran", len(ran_by), "times for two schema versions")
