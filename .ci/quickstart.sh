#!/usr/bin/env bash
# Runs the README's quick start as written, from a fresh copy of the repository with the
# build cache shared: its first command must bring up a server that the README's next
# commands (kubectl, koncli) reach and that behaves as they say, and its second must be
# the test command .ci/run runs. Fails, saying where, if the README drifts.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

# The lines of the README's fenced block between <!-- TAG:begin --> and <!-- TAG:end -->.
block() {
  awk -v tag="$1" '
    $0 == "<!-- " tag ":begin -->" { on = 1; next }
    $0 == "<!-- " tag ":end -->" { on = 0 }
    on && !/^```/' "$repo/README.md"
}
commands=$(block quickstart)
[ "$(echo "$commands" | wc -l)" -eq 2 ] || {
  echo "quickstart: README's quick start should be two commands, found: $commands" >&2
  exit 1
}
start=$(echo "$commands" | sed -n 1p)
tests=$(echo "$commands" | sed -n 2p)
grep -qxF "cargo test --workspace --locked 2>&1 | tee \"\$log\"" "$repo/.ci/run" &&
  [ "$tests" = "cargo test --workspace --locked" ] || {
  echo "quickstart: README's second command '$tests' is not the test command .ci/run runs" >&2
  exit 1
}

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# A fresh copy: the tracked files (and new ones not ignored), as they are in the tree.
mkdir "$work/konductor"
(cd "$repo" && git ls-files -z -c -o --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$work/konductor"
cd "$work/konductor"
export CARGO_INSTALL_ROOT="$work/install" # not the user's ~/.cargo/bin
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
unset KUBECONFIG

echo "quickstart: running '$start' in a fresh copy"
bash -c "$start" >"$work/server.out" 2>"$work/server.err" &
server=$!
# Bounded: the first build of the release binaries takes minutes.
for _ in $(seq 1 3600); do
  grep -q '^export KUBECONFIG=' "$work/server.out" && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "quickstart: '$start' ended before the server was up:" >&2
    cat "$work/server.err" >&2
    exit 1
  fi
  sleep 1
done
grep -q '^export KUBECONFIG=' "$work/server.out" || {
  echo "quickstart: no server after an hour" >&2
  exit 1
}
echo "quickstart: $(head -1 "$work/server.out"); running the README's next commands"
block quickstart-try >"$work/try.sh"
bash -euo pipefail "$work/try.sh" >"$work/try.out" 2>&1 || {
  echo "quickstart: the README's commands after the quick start failed:" >&2
  cat "$work/try.out" >&2
  exit 1
}
grep -q "Phase:.*Open" "$work/try.out" || {
  echo "quickstart: extract-complete did not open:" >&2
  cat "$work/try.out" >&2
  exit 1
}
echo "quickstart: ok"
