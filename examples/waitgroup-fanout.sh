#!/usr/bin/env bash
# Fan-out / fan-in with a WaitGroup. A producer adds 20 members (one per input file)
# and seals the group; 20 workers each `koncli waitgroup run` their member, two of them
# failing, which `maxFailed: 2` allows; the consumer's `wait`, started before anything
# was added, returns when the last worker finishes. Then a stricter variant: a third
# failure ends the wait at once, with the failure's message, while a worker is still
# running. Plays against $KUBECONFIG, else a fresh `konductor server` (lib.sh). Exits
# non-zero if the consumer returns too early, too late, or with the wrong outcome.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
ns=${WAITGROUP_NAMESPACE:-waitgroup-example}
start_example "$ns"
log=$(mktemp)
files=$(seq -f "file-%02g" 1 20)

echo "# the consumer waits before anything is added"
koncli -n "$ns" waitgroup create ingest --max-failed 2
koncli -n "$ns" waitgroup wait ingest > "$log.consumer" 2>&1 &
consumer=$!

echo "# the producer adds 20 members and seals the group"
koncli -n "$ns" waitgroup add ingest $(printf -- '--member %s ' $files)
koncli -n "$ns" waitgroup seal ingest

echo "# 20 workers; file-07 and file-13 fail"
for file in $files; do
  case $file in
    file-07 | file-13) work="echo 'processing $file: corrupt input' >&2; exit 2" ;;
    *) work="sleep 0.2; echo $file >> $log" ;;
  esac
  koncli -n "$ns" waitgroup run ingest --member "$file" -- sh -c "$work" &
done
set +e
wait_workers() { for pid in $(jobs -p); do [ "$pid" = "$consumer" ] || wait "$pid"; done; }
wait_workers
wait "$consumer"
consumer_exit=$?
set -e
cat "$log.consumer"
koncli -n "$ns" waitgroup status ingest
processed=$(wc -l < "$log")
if [ "$consumer_exit" -ne 0 ] || [ "$processed" -ne 18 ]; then
  echo "FAILED: the consumer exited $consumer_exit after $processed of 18 files" >&2
  exit 1
fi
if ! grep -q "all 20 members finished: 18 done, 2 failed" "$log.consumer"; then
  echo "FAILED: the consumer did not report 18 done and 2 failed" >&2
  exit 1
fi

echo "# strict: a third failure ends the wait at once"
koncli -n "$ns" waitgroup add strict --max-failed 2 --member a,b,c,slow
koncli -n "$ns" waitgroup seal strict
koncli -n "$ns" waitgroup run strict --member slow -- sleep 600 &
slow=$!
koncli -n "$ns" waitgroup wait strict 2> "$log.strict" &
strict_waiter=$!
set +e
for member in a b c; do
  koncli -n "$ns" waitgroup run strict --member "$member" -- sh -c "exit 1"
done
wait "$strict_waiter"
strict_exit=$?
set -e
cat "$log.strict"
still_running=no
kill -0 "$slow" 2>/dev/null && still_running=yes
kill "$slow" 2>/dev/null || true
wait "$slow" 2>/dev/null || true
if [ "$strict_exit" -ne 4 ] || [ "$still_running" != yes ]; then
  echo "FAILED: the strict wait exited $strict_exit (want 4) with the slow worker running: $still_running" >&2
  exit 1
fi
if ! grep -q "3 members failed, more than maxFailed 2: a: sh exited with code 1" "$log.strict"; then
  echo "FAILED: the strict wait did not say which members failed" >&2
  exit 1
fi
rm -f "$log" "$log.consumer" "$log.strict"
echo "ok: the consumer returned when the last of 20 finished (2 failures allowed); a third failure ended the wait at once"
