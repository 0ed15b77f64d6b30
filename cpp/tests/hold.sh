#!/usr/bin/env bash
# A reader that keeps its first batch leased while the writer laps an
# overwriting ring ten times, in any two languages: hold.sh WRITER READER.
# The reader re-verifies the held batch at the end (--hold-first), so a slot
# reused under a lease fails the test.
set -euo pipefail
writer=$1 reader=$2
name="rf-hold-$$-$RANDOM"
out=$(mktemp)
trap 'rm -f "$out"; rm -f "${RINGFEED_SHM_DIR:-/dev/shm}/$name"' EXIT
timeout 60 "$reader" subscribe --name "$name" --expect 41 --start oldest --hold-first --allow-lag --timeout-ms 20000 >"$out" &
rpid=$!
timeout 60 "$writer" publish --name "$name" --batches 41 --rows 64 --slots 4 --wait-readers 1 --interval-us 300 >/dev/null
rc=0
wait "$rpid" || rc=$?
line=$(cat "$out")
echo "reader: $line"
[ "$rc" -eq 0 ] || { echo "hold: reader exited $rc" >&2; exit 1; }
case "$line" in *'"verified":true'*'"error":null'*) ;; *) echo "hold: not verified" >&2; exit 1 ;; esac
# The held batch must have stayed leased while the writer lapped the 4-slot
# ring many times. On a busy machine the writer (which waits only for the
# reader to attach, not to read) may overwrite a few batches before the first
# read: a first seq up to 11 still leaves 30 batches, 7 laps, after it.
first=$(sed -n 's/.*"first_seq":\([0-9]*\),.*/\1/p' <<<"$line")
[ -n "$first" ] && [ "$first" -le 11 ] || { echo "hold: first batch was seq ${first:-none}, not <= 11" >&2; exit 1; }
echo "hold ok: $(basename "$writer") -> $(basename "$reader")"
