# Shared by the lock examples (sourced): a namespace of their own, and a check of the
# log their jobs write ("start TOKEN" / "end TOKEN" lines).

. ./lib.sh

# A Konductor to play against (lib.sh: $KUBECONFIG, else a fresh server), namespace $1
# in it, and the lock manifests applied there.
setup_namespace() {
  start_example "$1"
  kubectl apply -n "$1" -f locks.yaml >/dev/null
}

# The most critical sections open at once in log $1.
max_overlap() {
  awk '/^start/ {open++; if (open > most) most = open} /^end/ {open--} END {print most + 0}' "$1"
}
