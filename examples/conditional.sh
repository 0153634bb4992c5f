#!/usr/bin/env bash
# The seed's conditional barriers: a job waits at prod-validation-complete when
# $ENVIRONMENT is production, else at dev-validation-complete. Played for both.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
start_example example-conditional

k barrier create prod-validation-complete --expected 2 >/dev/null
k barrier create dev-validation-complete --expected 1 >/dev/null

# The job script, as in the seed.
job() {
  if [ "$ENVIRONMENT" = "production" ]; then
    k barrier wait prod-validation-complete --timeout=5m --quiet
  else
    k barrier wait dev-validation-complete --timeout=5m --quiet
  fi
}

ENVIRONMENT=staging job &
staging=$!
ENVIRONMENT=production job &
production=$!
k barrier arrive dev-validation-complete dev-checks
wait "$staging"
expect "$(kill -0 "$production" 2>/dev/null && echo waiting)" waiting "production still waits for its own validation"
k barrier arrive prod-validation-complete security-scan
k barrier arrive prod-validation-complete load-test
wait "$production"
expect "$(field prod-validation-complete .status.phase)" Open "production validation"
