#!/usr/bin/env bash
# Four migration Jobs, one Mutex: `koncli mutex run` lets them in one at a time, each
# with a fencing token that only rises (a migration tool can refuse an older token).
# Plays against $KUBECONFIG, else a fresh `konductor server` (lib.sh). Exits non-zero if two migrations overlapped.
set -euo pipefail
cd "$(dirname "$0")"
. ./locks-lib.sh
ns=${LOCKS_NAMESPACE:-locks-example}
setup_namespace "$ns"
log=$(mktemp)

for job in 1 2 3 4; do
  koncli -n "$ns" mutex run db-migrate --holder "migrate-$job" -- sh -c "
    echo start \$KONDUCTOR_FENCING_TOKEN >> $log
    echo \"migrate-$job: migrating with fencing token \$KONDUCTOR_FENCING_TOKEN\"
    sleep 0.2
    echo end \$KONDUCTOR_FENCING_TOKEN >> $log" &
done
wait

koncli -n "$ns" mutex status db-migrate
overlap=$(max_overlap "$log")
rm -f "$log"
if [ "$overlap" -ne 1 ]; then
  echo "FAILED: $overlap migrations ran at once" >&2
  exit 1
fi
echo "ok: the 4 migrations ran one at a time"
