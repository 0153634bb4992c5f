#!/usr/bin/env bash
# "At most 3 deploys per 2 seconds" (think: 10 an hour), across any number of CI jobs:
# nine deploy jobs start at once; a RateLimit (made on first use) lets three run in
# each window and queues the rest in order, each with its own fencing token. Then a
# script that calls a partner API takes single slots with `take`, and a cron job skips
# (exit 10) instead of queueing when the window is full. Plays against $KUBECONFIG,
# else a fresh `konductor server` (lib.sh). Exits non-zero on a wrong outcome.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
ns=${RATELIMIT_NAMESPACE:-ratelimit-example}
start_example "$ns"
log=$(mktemp)
fail() { echo "FAILED: $*" >&2; exit 1; }

echo "# nine deploy jobs at once, at most 3 per 2s"
pids=()
for job in $(seq 1 9); do
  koncli -n "$ns" ratelimit run deploys --limit 3 --window 2s -- \
    sh -c "echo \"\$(date +%s%3N) deploy-$job token \$KONDUCTOR_FENCING_TOKEN\" >> $log" 2>/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || fail "a deploy job exited non-zero"
done
sort -n "$log"
[ "$(wc -l < "$log")" -eq 9 ] || fail "not every deploy ran"
# The controller's record: the grant times of the last window, and the token counter.
kubectl -n "$ns" get ratelimit deploys
# Ran at least two windows apart: the first and the last started 4s or more apart.
first=$(sort -n "$log" | head -1 | cut -d' ' -f1)
last=$(sort -n "$log" | tail -1 | cut -d' ' -f1)
[ $((last - first)) -ge 3900 ] || fail "nine deploys ran within $((last - first)) ms: the limit did not hold"
echo "# the first and the last deploy started $((last - first)) ms apart (three windows)"

echo "# a script takes single slots of a partner API's budget (2 per hour)"
koncli -n "$ns" ratelimit create partner-api --limit 2 --window 1h
koncli -n "$ns" ratelimit take partner-api
koncli -n "$ns" ratelimit take partner-api
set +e
koncli -n "$ns" ratelimit take partner-api
busy=$?
koncli -n "$ns" ratelimit run partner-api --if-busy skip -- echo "should not run"
skipped=$?
set -e
[ "$busy" -eq 6 ] || fail "a take on a full window exited $busy (want 6)"
[ "$skipped" -eq 10 ] || fail "a skipped run exited $skipped (want 10)"
koncli -n "$ns" ratelimit status partner-api
rm -f "$log"
echo "ok: nine deploys ran three per window, in order; a full window made take busy (6) and the cron run skip (10)"
