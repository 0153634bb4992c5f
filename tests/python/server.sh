# Sourced by the Python test scripts: starts a fresh `konductor server` (the one on
# PATH) on a free loopback port in a temporary directory, sets $KUBECONFIG_FOR_TESTS to
# its kubeconfig, and stops it (and removes the directory) when the script exits.
server_dir=$(mktemp -d)
konductor server --data-dir "$server_dir/data" --listen 127.0.0.1:0 >"$server_dir/server.out" 2>"$server_dir/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; rm -rf "$server_dir"' EXIT
for _ in $(seq 1 600); do
  grep -q '^export KUBECONFIG=' "$server_dir/server.out" && break
  kill -0 $server_pid 2>/dev/null || { cat "$server_dir/server.log" >&2; exit 1; }
  sleep 0.1
done
KUBECONFIG_FOR_TESTS="$server_dir/data/kubeconfig"
