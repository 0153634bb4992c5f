#!/usr/bin/env bash
# The seed's cascading barriers: stage 1 (5 jobs) → stage 2 (3 jobs) → stage 3 (1 job),
# each stage's jobs waiting for the barrier of the stage before (cascading.yaml).
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example example-cascading

kc apply -f cascading.yaml
log=$(mktemp)
stage() { # stage N JOB: waits for stage N-1, works, arrives at stage N
  if [ "$1" -gt 1 ]; then k barrier wait "stage-$(($1 - 1))-complete" --timeout=10m --quiet; fi
  echo "stage $1 $2" >>"$log"
  if [ "$1" -lt 3 ]; then k barrier arrive "stage-$1-complete" "$2" >/dev/null; fi
}
stage 3 report &
for j in a b c; do stage 2 "transform-$j" & done
for j in 1 2 3 4 5; do stage 1 "extract-$j"; done
wait
cat "$log"
expect "$(cut -d' ' -f2 "$log" | tr -d '\n')" 111112223 "stages ran in order"
expect "$(field stage-2-complete .status.phase)" Open "stage 2 barrier"
rm -f "$log"
