#!/usr/bin/env bash
# Ten Jobs, a Semaphore of 3: `koncli semaphore run` keeps at most 3 of them on the
# database at once; the rest queue in order. Plays against $KUBECONFIG, else
# a fresh `konductor server` (lib.sh). Exits non-zero if more than 3 ran at once.
set -euo pipefail
cd "$(dirname "$0")"
. ./locks-lib.sh
ns=${LOCKS_NAMESPACE:-semaphore-example}
setup_namespace "$ns"
log=$(mktemp)

for job in $(seq 1 10); do
  koncli -n "$ns" semaphore run db-connections --holder "job-$job" -- sh -c "
    echo start \$KONDUCTOR_FENCING_TOKEN >> $log
    sleep 0.3
    echo end \$KONDUCTOR_FENCING_TOKEN >> $log" &
done
wait

overlap=$(max_overlap "$log")
rm -f "$log"
if [ "$overlap" -gt 3 ]; then
  echo "FAILED: $overlap jobs held the semaphore at once" >&2
  exit 1
fi
echo "ok: 10 jobs ran, at most $overlap at once (limit 3)"
