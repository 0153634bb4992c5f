# Shared by the example scripts (sourced): a Konductor to play against, and checks that
# fail the example when the outcome is wrong.
#
# With $KUBECONFIG set, an example uses it (a `konductor server` you started, or a
# cluster with the CRDs and the operator). Otherwise it starts its own fresh
# `konductor server` on a free loopback port with a temporary data dir and stops it —
# removing the dir — when it exits. Needs `konductor` (only then), `koncli` and `kubectl`
# on PATH. Each example works in a namespace of its own, deleted at the end.

# Points KUBECONFIG at a Konductor (starting one if needed) and creates namespace $1.
start_example() {
  example_namespace=$1
  if [ -z "${KUBECONFIG:-}" ]; then
    if ! command -v konductor >/dev/null; then
      echo "konductor is not on PATH (cargo install --locked --path crates/konductor), and KUBECONFIG is not set" >&2
      exit 1
    fi
    example_dir=$(mktemp -d)
    # Started from a subshell, so it is not a job of this shell: the examples' own
    # `wait` (for their background Jobs) does not wait for the server.
    (
      konductor server --data-dir "$example_dir/data" --listen 127.0.0.1:0 \
        >"$example_dir/server.out" 2>"$example_dir/server.log" &
      echo $! >"$example_dir/server.pid"
    )
    example_server=$(cat "$example_dir/server.pid")
    trap stop_example EXIT
    # The server prints the KUBECONFIG line once it serves.
    for _ in $(seq 1 600); do
      grep -q '^export KUBECONFIG=' "$example_dir/server.out" && break
      if ! kill -0 "$example_server" 2>/dev/null; then
        cat "$example_dir/server.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    export KUBECONFIG="$example_dir/data/kubeconfig"
    echo "# $(head -1 "$example_dir/server.out") (a fresh one for this example)"
  else
    trap stop_example EXIT
  fi
  kubectl create namespace "$example_namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  echo "# namespace $example_namespace"
}

# Deletes the example's namespace; stops the server it started.
stop_example() {
  local code=$?
  kubectl delete namespace "$example_namespace" --wait=false >/dev/null 2>&1 || true
  if [ -n "${example_server:-}" ]; then
    kill "$example_server" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$example_server" 2>/dev/null || break
      sleep 0.1
    done
    rm -rf "$example_dir"
  fi
  exit "$code"
}

# Runs koncli in the example's namespace.
k() { koncli -n "$example_namespace" "$@"; }

# Runs kubectl in the example's namespace.
kc() { kubectl -n "$example_namespace" "$@"; }

# A barrier's field by JSONPath: field BARRIER '.status.phase'.
field() { kc get barrier "$1" -o "jsonpath={$2}"; }

# Fails the example unless $1 equals $2; says what was checked ($3).
expect() {
  if [ "$1" != "$2" ]; then
    echo "FAILED: $3: expected '$2', got '$1'" >&2
    exit 1
  fi
  echo "ok: $3 ($1)"
}
