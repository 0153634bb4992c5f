#!/usr/bin/env bash
# The seed's multi-stage ETL pipeline, as local processes against `konductor server`
# (or any cluster with the CRDs and the operator): 5 extract jobs, 3 transform jobs
# that wait for the extracts, and a load step that waits for the transforms.
# Needs koncli and kubectl on PATH and KUBECONFIG pointing at the server. Runs in its own
# namespace (ETL_NAMESPACE, default etl-example), so it never meets barriers of the
# same names elsewhere (the README's quick start also uses extract-complete).
set -euo pipefail
cd "$(dirname "$0")"
ns=${ETL_NAMESPACE:-etl-example}

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$ns" -f etl-pipeline.yaml

transform() {
  local id=$1
  koncli -n "$ns" barrier wait extract-complete --timeout=1h --quiet
  echo "transform-$id: transforming"
  koncli -n "$ns" barrier arrive transform-complete "transform-$id"
}

for i in 1 2 3; do transform "$i" & done

for i in 1 2 3 4 5; do
  echo "extract-$i: extracting"
  koncli -n "$ns" barrier arrive extract-complete "extract-$i"
done

koncli -n "$ns" barrier wait transform-complete --timeout=10m --quiet
wait
echo "load: all transforms done, loading"
koncli -n "$ns" barrier status transform-complete
kubectl delete namespace "$ns" >/dev/null
