#!/usr/bin/env bash
# Runs both example programs against each other: examples.sh PUBLISHER SUBSCRIBER
set -euo pipefail
publisher=$1 subscriber=$2
name="rf-example-$$-$RANDOM"
out=$(mktemp)
trap 'rm -f "$out"; rm -f "${RINGFEED_SHM_DIR:-/dev/shm}/$name"' EXIT
timeout 60 "$subscriber" --ring "$name" >"$out" &
spid=$!
timeout 60 "$publisher" "$name" 5
rc=0
wait "$spid" || rc=$?
cat "$out"
[ "$rc" -eq 0 ] || { echo "subscriber exited $rc" >&2; exit 1; }
[ "$(grep -c '^batch ' "$out")" -eq 5 ] || { echo "subscriber did not print 5 batches" >&2; exit 1; }
grep -q '^batch 5: 3 rows, last close 305.25 (SOLUSDT)' "$out" || { echo 'unexpected last close' >&2; exit 1; }
echo "examples ok"
