#!/usr/bin/env bash
# The seed's MapReduce coordination: 20 map tasks, quorum 18 (mapreduce.yaml). Two map
# tasks fail and say so; the reduce step starts once the other 18 are done.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example example-mapreduce

kc apply -f mapreduce.yaml
k barrier wait map-complete --timeout=10m --quiet &
reduce=$!
k barrier arrive map-complete map-7 --failed --message "out of memory"
k barrier arrive map-complete map-13 --failed --message "input split corrupt"
for i in $(seq 1 20); do
  case $i in 7 | 13) continue ;; esac
  k barrier arrive map-complete "map-$i" >/dev/null
done
wait "$reduce"
echo "reduce: running over 18 map outputs"
expect "$(field map-complete .status.phase)" Open "phase with 18 of 20"
expect "$(field map-complete .status.arrived)" 18 "arrived"
expect "$(field map-complete .status.failed)" 2 "failed"
k barrier status map-complete
