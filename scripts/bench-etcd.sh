#!/usr/bin/env bash
# Konductor's Mutex side by side with etcd's lock: installs etcd and etcdctl from
# Debian's packages when they are missing, builds the release binaries and runs
# `konductor-bench --only etcd` (N = 10, 30, 100 concurrent runs, five alternating
# rounds each; about two minutes). Extra arguments go to konductor-bench (--quick).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq etcd-server etcd-client >/dev/null
    # Debian's package starts a system etcd on the default ports; the bench starts its own.
    "${as_root[@]}" systemctl stop etcd 2>/dev/null || true
fi
exec cargo run --release --locked -p konductor-bench -- --only etcd "$@"
