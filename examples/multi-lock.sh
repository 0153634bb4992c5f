#!/usr/bin/env bash
# Two jobs that each need the same two locks — a database Mutex and a GPU Semaphore —
# name them in opposite orders, 20 rounds each, all at once. Taken one by one in one
# global order (namespace, kind, name) whatever the flags say, they never deadlock and
# never overlap. The locks are made on first use. Then a nightly job that must not
# queue behind a busy lock skips instead (exit 10). Plays against $KUBECONFIG, else a
# fresh `konductor server` (lib.sh). Exits non-zero on a wrong outcome.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
ns=${MULTI_LOCK_NAMESPACE:-multi-lock-example}
start_example "$ns"
log=$(mktemp)
fail() { echo "FAILED: $*" >&2; exit 1; }

# The work both jobs do while holding both locks: record both tokens, pause, end.
# Each lock's token arrives as KONDUCTOR_FENCING_TOKEN_<KIND>_<NAMESPACE>_<NAME>.
upper_ns=$(echo "$ns" | tr 'a-z-' 'A-Z_')
work="echo \"start \$KONDUCTOR_FENCING_TOKEN_MUTEX_${upper_ns}_DB \$KONDUCTOR_FENCING_TOKEN_SEMAPHORE_${upper_ns}_GPUS\" >> $log; sleep 0.02; echo end >> $log"

echo "# job A names the mutex first, job B the semaphore first: 20 rounds each, at once"
pids=()
for round in $(seq 1 20); do
  koncli -n "$ns" run --hold mutex/db --hold semaphore/gpus=1 -- sh -c "$work" 2>/dev/null &
  pids+=($!)
  koncli -n "$ns" run --hold semaphores/gpus=1 --hold Mutex/db -- sh -c "$work" 2>/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || fail "a run exited non-zero"
done
runs=$(grep -c '^start' "$log")
[ "$runs" -eq 40 ] || fail "$runs of 40 runs ran"
open=0
while read -r line; do
  case $line in
    start*) open=$((open + 1)); [ "$open" -le 1 ] || fail "two runs held the locks at once" ;;
    end) open=$((open - 1)) ;;
  esac
done < "$log"
echo "# 40 runs, one at a time, none stuck; the last two records:"
grep '^start' "$log" | tail -2
koncli -n "$ns" mutex status db

echo "# a nightly job skips rather than queue behind a held lock"
export KONDUCTOR_HOLDER=backup-job
koncli -n "$ns" mutex lock db >/dev/null
set +e
koncli -n "$ns" run --hold mutex/db --hold semaphore/gpus=1 --if-busy skip -- echo "should not run"
skipped=$?
set -e
koncli -n "$ns" mutex unlock db >/dev/null
[ "$skipped" -eq 10 ] || fail "the skipped run exited $skipped (want 10)"
rm -f "$log"
echo "ok: 40 runs taking two locks in opposite flag orders never deadlocked or overlapped; a busy lock made the nightly run skip (exit 10)"
