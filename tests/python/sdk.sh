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
dir=$(mktemp -d)
konductor server --data-dir "$dir/data" --listen 127.0.0.1:0 >"$dir/server.out" 2>"$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 600); do
  grep -q '^export KUBECONFIG=' "$dir/server.out" && break
  kill -0 $server 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.1
done
for example in "$root"/examples/python/*.py; do
  echo "=== examples/python/$(basename "$example")"
  KUBECONFIG="$dir/data/kubeconfig" "$venv/bin/python" "$example"
done
