#!/usr/bin/env bash
# The Python SDK beside the Rust SDK and koncli: installs python/ into a virtualenv
# ($KONDUCTOR_SDK_VENV, default /tmp/konductor-sdk-venv — the one tests/python/sdk.sh
# uses), builds the release binaries and runs `konductor-bench --only python` (a free
# Mutex acquired, a Mutex handed over between two processes, 100 waiters released by one
# arrival; five alternating rounds, about three minutes). Extra arguments go to
# konductor-bench (--quick).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${KONDUCTOR_SDK_VENV:-/tmp/konductor-sdk-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check ./python
exec cargo run --release --locked -p konductor-bench -- --only python --python "$venv/bin/python" "$@"
