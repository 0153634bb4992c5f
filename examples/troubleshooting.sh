#!/usr/bin/env bash
# The seed's troubleshooting commands, as written, on my-barrier.yaml (expected 2,
# timeout 30s): a barrier stuck waiting, then timed out, revived by raising its timeout,
# and reset by deleting and re-creating it.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example example-troubleshooting
# The seed's commands name no namespace: run them in the example's, through a copy of
# the kubeconfig (yours stays as it is).
original_kubeconfig=$KUBECONFIG
kubeconfig_copy=$(mktemp)
kubectl config view --raw >"$kubeconfig_copy"
export KUBECONFIG=$kubeconfig_copy
kubectl config set-context --current --namespace="$example_namespace" >/dev/null

kubectl apply -f my-barrier.yaml
koncli barrier arrive my-barrier job-1

echo "## Barrier stuck waiting"
# Check who has arrived
kubectl get barrier my-barrier -o jsonpath='{.status.arrivals}'; echo
expect "$(kubectl get barrier my-barrier -o jsonpath='{.status.arrivals}')" '["job-1"]' "who has arrived"
# Check expected vs arrived
kubectl describe barrier my-barrier | grep -E 'Expected|Arrived|Phase'

echo "## Timeout issues"
kubectl patch barrier my-barrier --type='merge' -p='{"spec":{"timeout":"1s"}}' # (to time out now)
kubectl wait --for=jsonpath='{.status.phase}'=Timeout barrier/my-barrier --timeout=60s
# Check barrier events
kubectl describe barrier my-barrier | grep -A5 '^Events'
reasons=$(kubectl get events --field-selector involvedObject.name=my-barrier -o jsonpath='{.items[*].reason}')
expect "$(echo "$reasons" | tr ' ' '\n' | grep -c TimedOut || true)" 1 "a TimedOut event"
# Increase timeout if needed
kubectl patch barrier my-barrier --type='merge' -p='{"spec":{"timeout":"1h"}}'
kubectl wait --for=jsonpath='{.status.phase}'=Waiting barrier/my-barrier --timeout=60s
koncli barrier arrive my-barrier job-2
kubectl wait --for=condition=Open barrier/my-barrier --timeout=60s
expect "$(field my-barrier .status.phase)" Open "revived and opened"

echo "## Reset barrier"
# Delete and recreate to reset
kubectl delete barrier my-barrier
kubectl apply -f my-barrier.yaml
kubectl wait --for=jsonpath='{.status.phase}'=Waiting barrier/my-barrier --timeout=60s
expect "$(field my-barrier .status.arrived)" 0 "arrivals after the reset"
export KUBECONFIG=$original_kubeconfig
rm -f "$kubeconfig_copy"
