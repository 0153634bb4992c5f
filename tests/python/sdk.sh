#!/usr/bin/env bash
# The Python SDK (python/): installs it with its test dependencies into a virtualenv of
# its own ($KONDUCTOR_SDK_VENV, default /tmp/konductor-sdk-venv), runs its pytest suite
# (each test module starts its own `konductor server` from the `konductor` on PATH) and
# plays examples/python/*.py against a fresh server. `.ci/run` runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KONDUCTOR_SDK_VENV:-/tmp/konductor-sdk-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$root/python[test]"
cd "$root/python"
"$venv/bin/python" -m pytest -q tests
. "$root/tests/python/server.sh"
for example in "$root"/examples/python/*.py; do
  echo "=== examples/python/$(basename "$example")"
  KUBECONFIG="$KUBECONFIG_FOR_TESTS" "$venv/bin/python" "$example"
done
