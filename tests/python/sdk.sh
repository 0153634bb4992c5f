#!/usr/bin/env bash
# The Python SDK (python/): installs it with its test dependencies into a virtualenv of
# its own ($KONDUCTOR_SDK_VENV, default /tmp/konductor-sdk-venv), runs its pytest suite
# (each test module starts its own `konductor server` from the `konductor` on PATH) and
# plays examples/python/*.py and the README's Python example against a fresh server.
# `.ci/run` runs it.
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
# The package as published: an sdist and a wheel built with `python -m build`, the wheel
# installed into a fresh virtualenv, where the README's Python example (the first
# python block after "From Python") runs as written.
echo "=== python -m build; the wheel in a fresh virtualenv; README.md, From Python"
dist="$server_dir/dist"   # removed with the server's directory (tests/python/server.sh)
fresh="$server_dir/fresh"
mkdir -p "$dist" "$fresh"
"$venv/bin/pip" install --quiet --disable-pip-version-check build
"$venv/bin/python" -m build --outdir "$dist" "$root/python" > "$dist/build.log" 2>&1 || { cat "$dist/build.log"; exit 1; }
ls "$dist"/konductor_sdk-*.tar.gz "$dist"/konductor_sdk-*-py3-none-any.whl
python3 -m venv "$fresh/venv"
"$fresh/venv/bin/pip" install --quiet --disable-pip-version-check "$dist"/konductor_sdk-*.whl
awk '/^\*\*From Python\*\*/ {found=1} found && /^```python$/ {inside=1; next} inside && /^```$/ {exit} inside {print}' \
  "$root/README.md" > "$fresh/readme_example.py"
grep -q 'from konductor_sdk' "$fresh/readme_example.py"
(cd "$fresh" && KUBECONFIG="$KUBECONFIG_FOR_TESTS" "$fresh/venv/bin/python" readme_example.py)
