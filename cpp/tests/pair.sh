#!/usr/bin/env bash
# One writer process and one reader process of the bar formula, in any two
# languages: pair.sh WRITER READER BATCHES ROWS [extra publish flags...]
# WRITER and READER are rf-xtest-compatible programs (rf-xtest, rf-xtest-cpp,
# the Python twin). The ring blocks when full (lossless), so the reader must
# see every batch, verified and zero-copy.
set -euo pipefail
writer=$1 reader=$2 batches=$3 rows=$4
shift 4
name="rf-pair-$$-$RANDOM"
out=$(mktemp)
cleanup() { rm -f "$out"; rm -f "${RINGFEED_SHM_DIR:-/dev/shm}/$name"; }
trap cleanup EXIT

timeout 60 "$reader" subscribe --name "$name" --expect "$batches" --start oldest --rows "$rows" --timeout-ms 20000 >"$out" &
rpid=$!
if ! timeout 60 "$writer" publish --name "$name" --batches "$batches" --rows "$rows" \
      --slots 4 --block-ms 10000 --wait-readers 1 "$@"; then
  echo "pair: writer $writer failed" >&2
  kill "$rpid" 2>/dev/null || true
  exit 1
fi
rc=0
wait "$rpid" || rc=$?
line=$(cat "$out")
echo "reader: $line"
[ "$rc" -eq 0 ] || { echo "pair: reader $reader exited $rc" >&2; exit 1; }
for want in "\"batches\":$batches" '"verified":true' '"zero_copy":true' '"missed":0' '"first_seq":1' "\"last_seq\":$batches"; do
  case "$line" in
    *"$want"*) ;;
    *) echo "pair: reader output lacks $want" >&2; exit 1 ;;
  esac
done
echo "pair ok: $(basename "$writer") -> $(basename "$reader"), $batches batches x $rows rows"
