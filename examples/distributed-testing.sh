#!/usr/bin/env bash
# The seed's distributed testing: the test runner waits until all 4 services are up
# (distributed-testing.yaml: expected 4, timeout 10m), then runs the tests.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example example-testing

kc apply -f distributed-testing.yaml
log=$(mktemp)
(
  k barrier wait services-ready --timeout=10m --quiet
  echo "tests" >>"$log"
) &
runner=$!
for service in api database cache queue; do
  echo "$service up" >>"$log"
  k barrier arrive services-ready "$service"
done
wait "$runner"
expect "$(tail -1 "$log")" tests "the tests ran after every service was up"
expect "$(grep -c ' up$' "$log")" 4 "services up before the tests"
expect "$(field services-ready .status.phase)" Open "phase"
rm -f "$log"
