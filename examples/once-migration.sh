#!/usr/bin/env bash
# Five replicas start at once, each with `koncli once run db-migrate --key KEY -- migrate`:
# exactly one migrates per key, the others wait for its outcome and start after it. A
# new key runs again (once); an executor killed mid-run is taken over after the ttl,
# with a higher fencing token. Plays against $KUBECONFIG, else a fresh `konductor
# server` (lib.sh). Exits non-zero if a key ran twice, or not at all.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
ns=${ONCE_NAMESPACE:-once-example}
start_example "$ns"
log=$(mktemp)

replicas() {
  local key=$1
  for replica in 1 2 3 4 5; do
    koncli -n "$ns" once run db-migrate --key "$key" --holder "web-$replica-$key" -- sh -c "
      echo \"$key migrated by web-$replica with token \$KONDUCTOR_FENCING_TOKEN\" >> $log
      sleep 0.3" &
  done
  wait
}

echo "# five replicas, key v1"
replicas v1
echo "# five replicas, key v2 (a new version of the migration)"
replicas v2
echo "# a straggler still on v1: nothing to run"
koncli -n "$ns" once run db-migrate --key v1 -- sh -c "echo 'v1 AGAIN' >> $log"
cat "$log"
koncli -n "$ns" once status db-migrate

for key in v1 v2; do
  runs=$(grep -c "^$key migrated" "$log" || true)
  if [ "$runs" -ne 1 ]; then
    echo "FAILED: key $key ran $runs times" >&2
    exit 1
  fi
done
if grep -q AGAIN "$log"; then
  echo "FAILED: a finished key ran again" >&2
  exit 1
fi

echo "# an executor killed mid-run (ttl 2s) is taken over"
koncli -n "$ns" once run seed-data --key v1 --ttl 2s --holder doomed -- sh -c "echo started >> $log.seed; sleep 600" &
doomed=$!
# (`once run` makes the Once on first use: wait for it to exist, then for the executor)
kubectl -n "$ns" wait --for=create once/seed-data --timeout=60s >/dev/null
kubectl -n "$ns" wait --for=jsonpath='{.status.executor}'=doomed once/seed-data --timeout=60s >/dev/null
kill -9 "$doomed"
koncli -n "$ns" once run seed-data --key v1 --holder survivor -- sh -c "echo \"taken over with token \$KONDUCTOR_FENCING_TOKEN\" >> $log.seed"
cat "$log.seed"
kubectl -n "$ns" wait --for=condition=Done once/seed-data --timeout=60s
koncli -n "$ns" once status seed-data
if ! grep -q "taken over with token 2" "$log.seed"; then
  echo "FAILED: the killed executor was not taken over with token 2" >&2
  exit 1
fi
rm -f "$log" "$log.seed"
echo "ok: each key ran exactly once; the killed executor was taken over"
