#!/bin/sh
# Run the whole test suite N times in a row (default 5) while a busy loop holds one core, to
# find tests that depend on timing. Prints one line per run; exits 1 if any run failed.
#   scripts/suite_under_load.sh [N]
set -u
cd "$(dirname "$0")/.."
runs=${1:-5}
( while :; do :; done ) &
busy=$!
trap 'kill $busy 2>/dev/null' EXIT INT TERM
failed=0
i=1
while [ "$i" -le "$runs" ]; do
    start=$(date +%s)
    log=$(mktemp)
    if .venv/bin/python -m pytest -q -p no:cacheprovider >"$log" 2>&1; then rc=0; else rc=1; failed=1; fi
    echo "run $i: exit $rc, $(( $(date +%s) - start )) s, $(tail -n 1 "$log")"
    [ "$rc" = 0 ] && rm -f "$log" || echo "  log: $log"
    i=$((i + 1))
done
exit "$failed"
