#!/usr/bin/env bash
# Conditional barriers: wait at a different barrier depending on the environment.
set -euo pipefail
if [ "${ENVIRONMENT:-dev}" = "production" ]; then
  koncli barrier wait prod-validation-complete
else
  koncli barrier wait dev-validation-complete
fi
