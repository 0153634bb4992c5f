#!/usr/bin/env bash
# The seed's multi-stage ETL pipeline (etl-pipeline.yaml): 5 extract jobs, 3 transform
# jobs that wait for the extracts, and a load step that waits for the transforms — as
# local koncli processes. Plays against $KUBECONFIG, else a fresh `konductor server`
# (lib.sh), in namespace $ETL_NAMESPACE (default etl-example).
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example "${ETL_NAMESPACE:-etl-example}"

kc apply -f etl-pipeline.yaml
log=$(mktemp)
transform() {
  k barrier wait extract-complete --timeout=1h --quiet
  echo "transform-$1: transforming" | tee -a "$log"
  k barrier arrive transform-complete "transform-$1"
}

for i in 1 2 3; do transform "$i" & done

for i in 1 2 3 4 5; do
  echo "extract-$i: extracting" | tee -a "$log"
  k barrier arrive extract-complete "extract-$i"
done

k barrier wait transform-complete --timeout=10m --quiet
wait
echo "load: all transforms done, loading" | tee -a "$log"
k barrier status transform-complete
expect "$(grep -n transforming "$log" | head -1 | cut -d: -f1)" 6 "no transform before the fifth extract"
expect "$(tail -1 "$log")" "load: all transforms done, loading" "load last"
rm -f "$log"
