#!/usr/bin/env bash
# The seed's multi-stage ETL pipeline, as local processes against `konductor server`
# (or any cluster with the CRDs and the operator): 5 extract jobs, 3 transform jobs
# that wait for the extracts, and a load step that waits for the transforms.
# Needs koncli and kubectl on PATH and KUBECONFIG pointing at the server.
set -euo pipefail
cd "$(dirname "$0")"

kubectl apply -f etl-pipeline.yaml

transform() {
  local id=$1
  koncli barrier wait extract-complete --timeout=1h --quiet
  echo "transform-$id: transforming"
  koncli barrier arrive transform-complete "transform-$id"
}

for i in 1 2 3; do transform "$i" & done

for i in 1 2 3 4 5; do
  echo "extract-$i: extracting"
  koncli barrier arrive extract-complete "extract-$i"
done

koncli barrier wait transform-complete --timeout=10m --quiet
wait
echo "load: all transforms done, loading"
koncli barrier status transform-complete
kubectl delete -f etl-pipeline.yaml
