#!/usr/bin/env bash
# Plays every example script, each against its own fresh `konductor server` (unless
# $KUBECONFIG is set), and fails if any outcome is wrong. Needs konductor, koncli and
# kubectl on PATH. `.ci/run` runs it.
set -uo pipefail
cd "$(dirname "$0")"
failed=()
for script in basic.sh etl-pipeline.sh distributed-testing.sh mapreduce.sh cascading.sh \
  conditional.sh troubleshooting.sh db-migration-mutex.sh semaphore-jobs.sh rwmutex-cache.sh \
  once-migration.sh waitgroup-fanout.sh gate-pipeline.sh gate-resume.sh multi-lock.sh ratelimit.sh; do
  echo "=== $script"
  if ! bash "$script"; then
    failed+=("$script")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "examples that failed: ${failed[*]}" >&2
  exit 1
fi
echo "all examples played as expected"
