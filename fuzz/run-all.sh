#!/usr/bin/env bash
# Runs the fuzz targets named as arguments (default: all) for SECONDS_EACH seconds
# each (default 600), one after another, starting from the committed seeds; prints one
# summary line per target. A crash stops that target early (libFuzzer's rule).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${SECONDS_EACH:-600}"
for target in ${*:-create_request patch_request selectors duration protobuf}; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  if cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    outcome=ok
  else
    outcome="FAILED (a crash is saved under fuzz/artifacts/$target; the log's end is in corpus/$target.last-log)"
  fi
  runs=$( (grep -o 'stat::number_of_executed_units: [0-9]*' "$log" || true) | tail -1 | awk '{print $2}')
  echo "$target: $outcome, ${runs:-?} executions (budget ${seconds}s), corpus $(ls "corpus/$target" | wc -l) inputs"
  tail -n 40 "$log" > "corpus/$target.last-log"
done
