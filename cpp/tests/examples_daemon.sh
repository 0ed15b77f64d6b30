#!/usr/bin/env bash
# Runs the daemon examples against a real ringfeedd in a temporary directory:
#   examples_daemon.sh RINGFEEDD FEED SUBSCRIBER QUERY
# subscriber (socket from $RINGFEED_SOCKET) watches crypto/1m while feed
# appends 5 minutes; query (--socket) reads them back; SIGTERM stops the
# daemon, which closes the topic, and the subscriber exits 0.
set -euo pipefail
daemon=$1 feed=$2 subscriber=$3 query=$4
work=$(mktemp -d)
export RINGFEED_SHM_DIR=$work/shm RINGFEED_SOCKET=$work/rf.sock
mkdir -p "$RINGFEED_SHM_DIR"
cat >"$work/ringfeed.toml" <<TOML
data_dir = "$work/data"
socket = "$work/rf.sock"
arena_prefix = "cppex$$"
[datasets.crypto]
base = "1m"
rollups = ["5m"]
TOML
dpid='' spid=''
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null || true
  [ -n "$dpid" ] && kill -9 "$dpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "$*" >&2; echo "--- subscriber:" >&2; cat "$work/sub.out" >&2 || true; exit 1; }

RUST_LOG=warn "$daemon" --config "$work/ringfeed.toml" &
dpid=$!
timeout 60 "$subscriber" crypto 1m >"$work/sub.out" &
spid=$!
for _ in $(seq 600); do grep -q '^subscribed' "$work/sub.out" && break; sleep 0.05; done
grep -q '^subscribed to crypto/1m' "$work/sub.out" || fail "subscriber did not subscribe"

timeout 60 "$feed" crypto 5 0
timeout 60 "$query" --socket "$work/rf.sock" crypto BTCUSDT 1m 2021-01-01 | tee "$work/query.out"
grep -q '^5 rows in 1 batch(es)' "$work/query.out" || fail "query: expected 5 rows"
grep -q '^first close 42001.50, last close 42005.50' "$work/query.out" || fail "query: unexpected closes"
grep -q 'inside the daemon.s shared-memory arena: yes' "$work/query.out" || fail "query: not in the arena"

kill -TERM "$dpid"
rc=0
wait "$dpid" || rc=$?
dpid=''
[ "$rc" -eq 0 ] || fail "ringfeedd exited $rc after SIGTERM"
rc=0
wait "$spid" || rc=$?
spid=''
cat "$work/sub.out"
[ "$rc" -eq 0 ] || fail "subscriber exited $rc"
[ "$(grep -c '^batch ' "$work/sub.out")" -eq 5 ] || fail "subscriber did not print 5 batches"
grep -q '^batch 5: 3 rows, last close 150.55 (SOLUSDT), latency [0-9]* us, zero-copy yes$' "$work/sub.out" ||
  fail "unexpected last batch"
echo "daemon examples ok"
