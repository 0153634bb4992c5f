#!/usr/bin/env bash
# The seed's basic barrier (basic.yaml: expected 10, timeout 1h): ten workers arrive,
# a waiter is released when the tenth does — and not before.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example example-basic

kc apply -f basic.yaml
k barrier wait extract-complete --timeout=5m --quiet &
waiter=$!
for i in $(seq 1 9); do k barrier arrive extract-complete "extract-$i" >/dev/null; done
expect "$(field extract-complete .status.arrived)" 9 "arrived after nine"
expect "$(kill -0 "$waiter" 2>/dev/null && echo waiting)" waiting "the waiter is still waiting"
k barrier arrive extract-complete extract-10
wait "$waiter"
expect "$(field extract-complete .status.phase)" Open "phase after the tenth"
k barrier status extract-complete
