#!/usr/bin/env bash
# A release Gate over three different things: a Job (`migrate`, its status set here as
# the Job controller would set it), a Barrier (`etl-done`, two extract workers) and a
# Once (`seed-data`). A deploy step waits on the Gate before any of them exists; the
# Gate opens when the last condition holds, and stays open when the finished Job is
# deleted. Then fail-fast: a Gate on a Job and a Barrier that never opens fails the
# moment the Job fails, and its waiter exits 4 at once. Plays against $KUBECONFIG, else a
# fresh `konductor server` (lib.sh). Exits non-zero on a wrong outcome.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
ns=${GATE_NAMESPACE:-gate-example}
start_example "$ns"
log=$(mktemp)

job() {
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["true"]}]
EOF
}
# What the Job controller writes when a Job finishes (Complete or Failed).
finish_job() {
  kubectl -n "$ns" patch job "$1" --subresource=status --type=merge \
    -p "{\"status\":{\"conditions\":[{\"type\":\"$2\",\"status\":\"True\"}]}}" >/dev/null
}
now_ms() { date +%s%3N; }

echo "# the Gate, and the deploy step waiting on it, before anything it names exists"
koncli -n "$ns" gate create release --for job/migrate --for barrier/etl-done --for once/seed-data
koncli -n "$ns" gate wait release > "$log.deploy" 2>&1 &
deploy=$!

echo "# the seed runs once; the extract workers arrive at the barrier"
koncli -n "$ns" once run seed-data --key v1 -- sh -c 'echo seeding'
koncli -n "$ns" barrier create etl-done --expected 2
koncli -n "$ns" barrier arrive etl-done extract-1
koncli -n "$ns" barrier arrive etl-done extract-2

echo "# the migration Job runs and completes: the last condition"
job migrate
koncli -n "$ns" gate status release
started=$(now_ms)
finish_job migrate Complete
written=$(now_ms)
wait "$deploy"
cat "$log.deploy"
opened=$(kubectl -n "$ns" get gate release -o jsonpath='{.status.openedAt}')
opened_ms=$(date -d "$opened" +%s%3N)
echo "# the Gate opened $((opened_ms - started)) ms after \`kubectl patch\` started (kubectl's start-up included; it returned after $((written - started)) ms)"

echo "# the finished Job is deleted (as its ttlSecondsAfterFinished would): the Gate stays Open"
kubectl -n "$ns" delete job migrate >/dev/null
koncli -n "$ns" gate status release | tee "$log.status"
if ! grep -q "Open · 3 of 3 met" "$log.status"; then
  echo "FAILED: the Gate did not stay Open" >&2
  exit 1
fi

echo "# fail-fast: a Gate on a Job and a Barrier that will never open"
job build
koncli -n "$ns" barrier create never --expected 99
koncli -n "$ns" gate create ship --for job/build --for barrier/never
set +e
koncli -n "$ns" gate wait ship 2> "$log.ship" &
ship=$!
finish_job build Failed
wait "$ship"
ship_exit=$?
set -e
cat "$log.ship"
if [ "$ship_exit" -ne 4 ] || ! grep -q "job/build failed: Failed=True" "$log.ship"; then
  echo "FAILED: the wait on ship exited $ship_exit (want 4, naming job/build)" >&2
  exit 1
fi
rm -f "$log" "$log.deploy" "$log.status" "$log.ship"
echo "ok: the Gate opened on its last condition and stayed open; a failed Job failed the other Gate at once"
