#!/usr/bin/env bash
# The Python side of the end-to-end tests: the official Kubernetes Python client and an
# OpenAPI validator against a fresh `konductor server` (test_server.py says what is
# checked). Installs its pinned requirements into a virtualenv of its own
# ($KONDUCTOR_VENV, default /tmp/konductor-python-venv; reused when present), starts the
# server from the `konductor` on PATH, and stops it at the end. `.ci/run` runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${KONDUCTOR_VENV:-/tmp/konductor-python-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qxF -f <(grep -v '^#' "$here/requirements.txt"); then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
. "$here/server.sh"
cd "$here"
KUBECONFIG="$KUBECONFIG_FOR_TESTS" "$venv/bin/python" -m unittest -v test_server
