# Shared by the lock examples (sourced): a namespace of their own, and a check of the
# log their jobs write ("start TOKEN" / "end TOKEN" lines).

# Creates (or reuses) namespace $1 and applies the lock manifests in it.
setup_namespace() {
  kubectl create namespace "$1" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -n "$1" -f locks.yaml >/dev/null
}

# The most critical sections open at once in log $1.
max_overlap() {
  awk '/^start/ {open++; if (open > most) most = open} /^end/ {open--} END {print most + 0}' "$1"
}
