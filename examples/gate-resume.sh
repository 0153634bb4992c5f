#!/usr/bin/env bash
# Start ordering with no pod waiting: three Jobs in a chain A → B → C. B and C are
# created suspended (spec.suspend: true, so they create no pods at all) and opted in to
# be resumed by a Gate; each Gate opens on the previous Job's Complete and sets the next
# Job's spec.suspend to false. The Job statuses are set here as the Job controller would
# set them. Checks that B is not resumed before A completes, that C follows B, and that
# in a second chain a failed A leaves B and C suspended. Plays against $KUBECONFIG,
# else a fresh `konductor server` (lib.sh). Exits non-zero on a wrong outcome.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
ns=${GATE_RESUME_NAMESPACE:-gate-resume-example}
start_example "$ns"

# What the Job controller writes when a Job finishes (Complete or Failed).
finish_job() {
  kubectl -n "$ns" patch job "$1" --subresource=status --type=merge \
    -p "{\"status\":{\"conditions\":[{\"type\":\"$2\",\"status\":\"True\"}]}}" >/dev/null
}
suspended() { kubectl -n "$ns" get job "$1" -o jsonpath='{.spec.suspend}'; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# A chain: Job $1 runs now; $2 waits for it, $3 for $2 — each in one file with its Gate.
chain() {
  local a=$1 b=$2 c=$3
  kubectl -n "$ns" apply -f - <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $a}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["true"]}]
EOF
  for pair in "$a $b" "$b $c"; do
    set -- $pair
    kubectl -n "$ns" apply -f - <<EOF
# The Job that must not start before $1 completes: created suspended, and opting in
# to be resumed by the Gate $2-may-start.
apiVersion: batch/v1
kind: Job
metadata:
  name: $2
  annotations: {konductor.io/resume-by: $2-may-start}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["true"]}]
---
apiVersion: konductor.io/v1
kind: Gate
metadata: {name: $2-may-start}
spec:
  conditions:
  - ref: {apiVersion: batch/v1, kind: Job, name: $1}
  resume:
  - {apiVersion: batch/v1, kind: Job, name: $2}
EOF
  done
}

echo "# the chain a → b → c: b and c created suspended, each resumed by a Gate"
chain a b c
kubectl -n "$ns" wait --for=jsonpath='{.status.resume[0].message}=waiting for the Gate to open' \
  gate/b-may-start gate/c-may-start --timeout=60s >/dev/null
koncli -n "$ns" gate status b-may-start
[ "$(suspended b)" = true ] || fail "b was resumed before a completed"
[ "$(suspended c)" = true ] || fail "c was resumed before b completed"

echo "# a completes: its Gate opens and resumes b (c still waits for b)"
before_a=$(date +%s%3N)
finish_job a Complete
kubectl -n "$ns" wait --for=jsonpath='{.status.resume[0].state}=Resumed' gate/b-may-start --timeout=60s >/dev/null
[ "$(suspended b)" = false ] || fail "b is still suspended after its Gate resumed it"
mark=$(kubectl -n "$ns" get job b -o jsonpath='{.metadata.annotations.konductor\.io/resumed-by}')
echo "# job/b: konductor.io/resumed-by: $mark"
resumed_ms=$(date -d "${mark#b-may-start at }" +%s%3N)
[ "$resumed_ms" -ge "$before_a" ] || fail "b was resumed ($mark) before a completed"
[ "$(suspended c)" = true ] || fail "c was resumed before b completed"
koncli -n "$ns" gate status b-may-start

echo "# b runs and completes: c is resumed"
finish_job b Complete
kubectl -n "$ns" wait --for=jsonpath='{.status.resume[0].state}=Resumed' gate/c-may-start --timeout=60s >/dev/null
[ "$(suspended c)" = false ] || fail "c is still suspended after b completed"

echo "# a second chain whose first Job fails: nothing after it starts"
chain a2 b2 c2
finish_job a2 Failed
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}=Failed' gate/b2-may-start --timeout=60s >/dev/null
kubectl -n "$ns" wait --for=jsonpath='{.status.resume[0].message}=the Gate failed: not resumed' \
  gate/b2-may-start --timeout=60s >/dev/null
koncli -n "$ns" gate status b2-may-start || true
[ "$(suspended b2)" = true ] || fail "b2 was resumed although a2 failed"
[ "$(suspended c2)" = true ] || fail "c2 was resumed although a2 failed"
echo "ok: b and c started only after the Job before them completed (no pod waited meanwhile); a failed a2 left b2 and c2 suspended"
