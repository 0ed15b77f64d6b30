#!/usr/bin/env bash
# Installs what is needed, builds everything, and runs the main job on an
# embedded default:
#   1. generates two days of 1-minute bars for 3 symbols (Binance kline CSV)
#      and ingests them into a fresh store;
#   2. starts the ringfeedd daemon on it (topics 1m, with 5m and 1h rollups);
#   3. attaches a Python (polars), a C++ and a Rust subscriber to the live topics
#      (the Rust one replays the last stored hour first, then continues live);
#   4. feeds 15 live minutes through the daemon and shows every subscriber
#      receiving them in place, with latency and a zero-copy check;
#   5. queries history from Python (cold, then warm from the shared cache);
#   6. stops the daemon with SIGTERM, which closes every ring.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/common.sh
need_rust
need_base
command -v cmake >/dev/null 2>&1 || apt_install cmake
command -v g++ >/dev/null 2>&1 || apt_install g++
# The web page's chart library, embedded into ringfeedd by its build.rs.
bash scripts/build_web.sh

# One compile of the dependency tree: the workspace-hack crate (cargo hakari) gives
# every shared dependency the same features whichever crates a build selects, so the
# wheel (maturin) and the C++ library (CMake) below reuse these release artifacts.
say "building Rust (release): ringfeed, ringfeedd, the C++ bridge, examples"
cargo build --release -q -p ringfeed-cli -p ringfeed-daemon -p ringfeed-arrow -p ringfeed-cpp -p ringfeed-xtest --bins --examples --lib
say "building the Python package into .venv"
source scripts/py_env.sh >/dev/null
say "building the C++ subscriber (CMake)"
cmake -S cpp -B build/cpp-demo -DCMAKE_BUILD_TYPE=Release -DRINGFEED_WARNINGS_AS_ERRORS=OFF >/dev/null
cmake --build build/cpp-demo --target subscriber -j2 >/dev/null

bin=$ROOT/target/release
work=$(mktemp -d)
prefix="demo$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work" "${WHEELS:-}"
}
trap cleanup EXIT

say "1. generating 2 days x 3 symbols of 1m bars and ingesting them"
t0=1609459200000 # 2021-01-01T00:00:00Z, ms
for s in BTCUSDT:42000 ETHUSDT:3000 SOLUSDT:150; do
  sym=${s%%:*}; px=${s##*:}
  awk -v t0=$t0 -v px=$px 'BEGIN { srand(7); p = px;
    for (i = 0; i < 2880; i++) { o = p; p = p * (1 + (rand() - 0.5) / 500);
      h = (o > p ? o : p) * 1.0005; l = (o < p ? o : p) * 0.9995; v = 1 + rand() * 10; t = t0 + i * 60000;
      printf "%.0f,%.2f,%.2f,%.2f,%.2f,%.4f,%.0f,%.2f,%d,%.4f,%.2f,0\n", t, o, h, l, p, v, t + 59999, v * p, 10 + i % 50, v / 2, v * p / 2 } }' \
    > "$work/$sym-1m.csv"
  "$bin/ringfeed" ingest --data-dir "$work/data" --dataset crypto --timeframe 1m --symbol "$sym" \
    --format binance-kline --rollups 5m,1h "$work/$sym-1m.csv" 2>&1 | tail -1
done

say "2. starting ringfeedd"
# The HTTP face (the web page) on a free loopback port.
http_port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/ringfeed.toml" <<EOF
data_dir = "$work/data"
socket = "$work/rf.sock"
arena_prefix = "$prefix"
[http]
listen = "127.0.0.1:$http_port"
EOF
"$bin/ringfeed" serve --config "$work/ringfeed.toml" &
pids+=($!)
for _ in $(seq 300); do [ -S "$work/rf.sock" ] && break; sleep 0.05; done

echo "the web page (chart and operations view): http://127.0.0.1:$http_port/?dataset=crypto&symbol=BTCUSDT&timeframe=1m"

say "3. subscribers: Python (polars), C++, Rust"
"$PY" examples/python/daemon_demo.py subscribe "$work/rf.sock" &
pids+=($!)
sleep 0.5
build/cpp-demo/subscriber --socket "$work/rf.sock" crypto 1m | sed -u 's/^/c++    /' &
pids+=($!)
# Rust: replay the last stored hour of 5m bars, then follow the topic live.
"$bin/examples/replay" "$work/rf.sock" crypto 5m 2021-01-02T23:00:00Z &
pids+=($!)
sleep 0.5

say "4. feeding 15 live minutes through the daemon"
"$PY" examples/python/daemon_demo.py feed "$work/rf.sock" 15
sleep 0.5

say "5. querying history from Python"
"$PY" examples/python/daemon_demo.py query "$work/rf.sock"
say "ringfeed stat (excerpt)"
"$bin/ringfeed" stat --prometheus --socket "$work/rf.sock" | grep -E '^ringfeed_(queries_total|cache_hits_total|ingest_rows_total|topic_readers|topic_write_seq)' || true

say "the web page's operations snapshot (GET /api/ops, excerpt)"
"$PY" - "$http_port" <<'PYEOF' || true
import json, sys, urllib.request
ops = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/ops", timeout=10))
for t in ops["topics"]:
    print(f"  topic {t['dataset']}/{t['timeframe']}: write_seq {t['write_seq']}, {len(t['readers'])} readers, writer {'alive' if t['writer_alive'] else 'gone'}")
c = ops["cache"]
print(f"  cache: {c['entries']} results, {c['bytes']} bytes, {c['hits']} hits; ingest: {ops['ingest']['rows']} rows")
PYEOF

say "6. stopping ringfeedd (SIGTERM closes every ring; subscribers finish)"
kill -TERM "${pids[0]}"
wait "${pids[0]}" || true
for p in "${pids[@]:1}"; do timeout 10 tail --pid="$p" -f /dev/null || kill "$p" 2>/dev/null || true; done
pids=()
say "done"
