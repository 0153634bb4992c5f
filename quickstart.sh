#!/usr/bin/env bash
# Konductor's quick start: builds `konductor` and `koncli` (release), installs both into
# ${CARGO_INSTALL_ROOT:-~/.cargo}/bin (on your PATH if Rust came from rustup), and runs
# the embedded control plane in this terminal — it says what to do next; Ctrl-C stops
# it. Data (database, token, certificates, kubeconfig) in ./.konductor. Arguments go to
# `konductor server` (e.g. --listen 127.0.0.1:7443).
set -euo pipefail
cd "$(dirname "$0")"
target=${CARGO_TARGET_DIR:-$PWD/target}
echo "building konductor and koncli (release; the first build takes a few minutes)..." >&2
cargo build --release --locked --quiet --bin konductor --bin koncli
bin=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin
mkdir -p "$bin"
install -m 0755 "$target/release/konductor" "$target/release/koncli" "$bin/"
echo "installed konductor and koncli in $bin" >&2
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on your PATH; add it: export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
exec "$bin/konductor" server --data-dir .konductor "$@"
