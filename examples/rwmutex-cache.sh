#!/usr/bin/env bash
# Readers and a writer of a cache, one RWMutex: readers share it, the writer holds it
# alone, and a writer that queues stops later readers from overtaking it. Plays against
# $KUBECONFIG, else a fresh `konductor server` (lib.sh). Exits non-zero if
# the writer ever shared the cache.
set -euo pipefail
cd "$(dirname "$0")"
. ./locks-lib.sh
ns=${LOCKS_NAMESPACE:-rwmutex-example}
setup_namespace "$ns"
log=$(mktemp)

read_cache() {
  koncli -n "$ns" rwmutex run cache --read --holder "reader-$1" -- sh -c "
    echo start read >> $log; sleep 0.3; echo end read >> $log"
}
rebuild_cache() {
  koncli -n "$ns" rwmutex run cache --write --holder writer -- sh -c "
    echo start write >> $log; echo WRITE >> $log; sleep 0.2; echo end write >> $log"
}

for r in 1 2 3; do read_cache "$r" & done
rebuild_cache &
for r in 4 5; do read_cache "$r" & done
wait

# While the writer held the cache, nobody else did: its section is alone in the log.
writer_alone=$(awk '/^start write/ {inside = 1; if (open > 0) bad = 1} /^start read/ {open++; if (inside) bad = 1} /^end read/ {open--} /^end write/ {inside = 0} END {print bad ? "no" : "yes"}' "$log")
readers_shared=$(max_overlap "$log")
rm -f "$log"
if [ "$writer_alone" != yes ]; then
  echo "FAILED: the writer shared the cache" >&2
  exit 1
fi
echo "ok: readers shared the cache (up to $readers_shared at once), the writer held it alone"
