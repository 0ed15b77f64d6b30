#!/usr/bin/env bash
# Issue 12: what the hardening costs on the hot paths, OLD_REV vs this checkout, in one run.
#   scripts/bench_hardening.sh [OLD_REV]        (default f8077ac)
# Builds OLD_REV in a worktree ($OLD_DIR, default /work/bench-old, own target dir) and this
# tree, waits until no other cargo/rustc/pytest/ctest runs (at most $WAIT_S s), then runs
# $ROUNDS rounds of old, new (A B A B ...), each with a fresh daemon, data dir and
# RINGFEED_SHM_DIR (all on /dev/shm), and prints a table. Per run (times in us):
#   append/ping  c.append of one 1m bar (base 1m, rollups 5m,1h, fsync never) / c.native.ping()
#                RTT: this tree's client against both daemons (socket protocol only)
#   query        c.bars(ds, "X", "1m", limit=10), cached: each tree's own client (arena layout
#                v1 -> v2: a client maps only its own); pub->sub: appends 1-2 ms apart, the
#                tree's subscriber on the 1m topic: append call / ring publish stamp -> read
#   ring         benches' rf-latency (ring_futex, arrow_futex): publish -> read, publish cost
# then criterion `publish_small` (ring 64 B, arrow 1-row bars) twice per tree, alternated.
# Env: FIRST (old; new: B A B A ...) ROUNDS (6) APPENDS (3000) QUERIES (3000) PUBS (600) WAIT_S (1800) CRIT (1) PY (.venv)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
old_rev=${1:-f8077ac}
old_dir=${OLD_DIR:-/work/bench-old}
py=${PY:-$root/.venv/bin/python}
[ -d "$old_dir" ] || git -C "$root" worktree add --detach "$old_dir" "$old_rev"
[ "$(git -C "$old_dir" rev-parse HEAD)" = "$(git -C "$root" rev-parse "$old_rev^{commit}")" ] ||
    { echo "$old_dir is not at $old_rev: remove it (git worktree remove --force $old_dir)" >&2; exit 2; }
for t in "$old_dir" "$root"; do
    echo "== building $t ($(git -C "$t" rev-parse --short HEAD))"
    (cd "$t" && CARGO_INCREMENTAL=0 cargo build -q --release -p ringfeed-cli -p ringfeed-daemon \
        -p ringfeed-benches -p ringfeed-python &&
     CARGO_INCREMENTAL=0 cargo bench -q -p ringfeed-benches --bench publish --no-run)
done
work=$(mktemp -d /dev/shm/rfhard.XXXXXX)
trap 'rm -rf "$work"' EXIT
for side in old new; do     # each tree's Python client: its python/ sources + its extension
    t=$old_dir; [ $side = new ] && t=$root; mkdir -p "$work/py-$side/ringfeed"
    cp "$t"/python/python/ringfeed/*.py "$t/target/release/lib_ringfeed.so" "$work/py-$side/ringfeed/"
    mv "$work/py-$side/ringfeed/lib_ringfeed.so" "$work/py-$side/ringfeed/_ringfeed.abi3.so"
done
deadline=$(( $(date +%s) + ${WAIT_S:-1800} ))
while others=$(pgrep -a -f '(^|/)(cargo|rustc|pytest|ctest)( |$)|-m pytest' | grep -v "^$$ " || true); [ -n "$others" ]; do
    [ "$(date +%s)" -gt "$deadline" ] && { echo "!! still busy, measuring anyway:"; echo "$others" | cut -c1-120; break; }
    echo "== $(date -u +%T) waiting for: $(echo "$others" | awk '{print $2}' | sort | uniq -c | tr '\n' ' ')"; sleep 20
done
echo "== $(date -u +%T) start; uptime:$(uptime)"
cat > "$work/h.py" <<'EOF'
import gc, json, os, signal, socket, subprocess, sys, tempfile, time
H, W = os.path.abspath(__file__), os.path.dirname(os.path.abspath(__file__))
T0, MIN = 1767225600 * 10**9, 60 * 10**9        # 2026-01-01T00:00Z
def pct(xs, q):
    s = sorted(xs); return s[min(len(s) - 1, int(round((len(s) - 1) * q / 100)))] if s else float("nan")
def batch(k):
    import pyarrow as pa
    px = 100.0 + k % 50
    return pa.RecordBatch.from_pydict({"ts": pa.array([T0 + k * MIN], pa.timestamp("ns", "UTC")), "symbol": ["X"],
        "open": [px], "high": [px + 1], "low": [px - 1], "close": [px + .5], "volume": [1.0]})
def timed(f, n, mark=lambda: None):     # 300 warm-up calls, mark(), n timed calls (us); results dropped untimed
    out = []; gc.disable()
    for i in range(n + 300):
        if i == 300: mark()
        t = time.perf_counter_ns(); r = f(i); out.append((time.perf_counter_ns() - t) / 1e3); del r
    return out[300:]
def client(role, sock, n, k0):
    import ringfeed as rf
    c, out, s0 = rf.connect(sock), [], []      # daemon side: its ingest/query seconds counters over the timed calls
    st = lambda k: float([l for l in c.stat().splitlines() if l.startswith(f"ringfeed_{k} ")][0].split()[1])
    if role == "append":                          # one-bar appends, then pings (the transport alone)
        bs = [batch(k0 + k) for k in range(n + 300)]
        rtt = timed(lambda i: c.append("ds", bs[i]), n, lambda: s0.append(st("ingest_seconds_total")))
        out = {"rtt": rtt, "daemon": (st("ingest_seconds_total") - s0[0]) * 1e6 / n, "ping": timed(lambda i: c.native.ping(), n)}
    elif role == "query":
        assert c.bars("ds", "X", "1m", limit=10).height == 10
        rtt = timed(lambda i: c.bars("ds", "X", "1m", limit=10), n, lambda: s0.append(st("query_seconds_sum")))
        out = {"rtt": rtt, "daemon": (st("query_seconds_sum") - s0[0]) * 1e6 / n}
    elif role == "sub":                           # 1m topic: call -> read, publish stamp -> read
        import pyarrow; r = c.subscribe("ds", "1m"); print("ready", flush=True); ts, tr, pub, lag = [], [], [], 0
        while len(ts) < n:
            try: b = r.read(timeout=10)
            except rf.LaggedError: lag += 1; continue
            if b is None: break
            tm, tw = time.monotonic_ns(), time.time_ns()
            ts.append(b.to_arrow().column("ts")[0].value); tr.append(tm); pub.append((tw - b.ts_ns) / 1e3)
        out = {"ts": ts[50:], "tr": tr[50:], "pub": pub[50:], "lagged": lag}
    elif role == "pub":
        bs = [batch(k0 + k) for k in range(n)]; sys.stdin.readline()
        for b in bs:
            out.append(time.monotonic_ns()); c.append("ds", b); time.sleep(0.001 + len(out) % 7 / 7000)
    print(json.dumps(out), flush=True)
def run(side, bin_dir, n_app, n_q, n_pub, rnd):
    tmp = tempfile.mkdtemp(prefix=f"rfh-{side}{rnd}-", dir=W)
    env = dict(os.environ, RINGFEED_SHM_DIR=f"{tmp}/shm", PYTHONPATH=f"{W}/py-new")
    os.mkdir(env["RINGFEED_SHM_DIR"]); sock = f"{tmp}/rf.sock"
    open(f"{tmp}/c.toml", "w").write('[datasets.ds]\nbase = "1m"\nrollups = ["5m", "1h"]\nfsync = "never"\n')
    d = subprocess.Popen([f"{bin_dir}/ringfeedd", "--config", f"{tmp}/c.toml", "--socket", sock, "--data-dir",
        f"{tmp}/data", "--arena-prefix", f"rfh{side}{rnd}", "--write-down-delay", "off"], env=env,
        stdout=open(f"{tmp}/d.log", "w"), stderr=subprocess.STDOUT)
    for _ in range(500):
        try: s = socket.socket(socket.AF_UNIX); s.connect(sock); s.close(); break
        except OSError: time.sleep(0.02)
    me = [sys.executable, H, "client"]
    cl = lambda role, n, k0, e=env: json.loads(subprocess.run(me + [role, sock, str(n), str(k0)], env=e,
        check=True, stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1])
    R = {"load": open("/proc/loadavg").read().split()[0]}
    try:
        a = cl("append", n_app, 0); q = cl("query", n_q, 0, dict(env, PYTHONPATH=f"{W}/py-{side}"))
        R.update({"append": a["rtt"], "ping": a["ping"], "query": q["rtt"], "append daemon-side mean": a["daemon"], "query daemon-side mean": q["daemon"]})
        sub = subprocess.Popen(me + ["sub", sock, str(n_pub), "0"], env=dict(env, PYTHONPATH=f"{W}/py-{side}"),
            stdout=subprocess.PIPE, text=True)
        assert sub.stdout.readline().strip() == "ready"
        p = subprocess.Popen(me + ["pub", sock, str(n_pub + 50), str(n_app + 1000)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        pc = json.loads(p.communicate("go\n")[0].splitlines()[-1]); s = json.loads(sub.communicate(timeout=120)[0].splitlines()[-1])
        call = {T0 + (n_app + 1000 + k) * MIN: t for k, t in enumerate(pc)}
        R["call->read"] = [(t - call[x]) / 1e3 for x, t in zip(s["ts"], s["tr"])]
        R["publish->read"], R["lagged"] = s["pub"], s["lagged"]
    finally:
        d.send_signal(signal.SIGTERM); R["daemon_rc"] = d.wait(timeout=30)
    lat = f"{tmp}/lat.json"
    subprocess.run([f"{bin_dir}/rf-latency", "--samples", "5000", "--warmup", "500", "--modes", "ring_futex,arrow_futex",
        "--json", lat], env=env, check=True, capture_output=True)
    L = json.load(open(lat))
    for m in ("ring_futex", "arrow_futex"):
        R[f"rf-latency {m}"] = L["latency"][m]; R[f"publish cost {m}"] = L["send_cost"][m]
    subprocess.run(["rm", "-rf", tmp])
    return R
def main():
    a = sys.argv[1:]
    if a[0] == "client": return client(a[1], a[2], int(a[3]), int(a[4]))
    old_bin, new_bin, rounds = a[1], a[2], int(a[3]); n = [int(x) for x in a[4:7]]
    res = {"old": [], "new": []}
    for rnd in range(rounds):
        for side, b in [("old", old_bin), ("new", new_bin)][::-1 if os.environ.get("FIRST") == "new" else 1]:
            r = run(side, b, *n, rnd); res[side].append(r)
            print(f"   round {rnd + 1} {side}: load {r['load']} append p50 {pct(r['append'], 50):.0f} us, query p50 "
                  f"{pct(r['query'], 50):.0f} us, call->read p50 {pct(r['call->read'], 50):.0f} us, lagged {r['lagged']}, rc {r['daemon_rc']}", flush=True)
    json.dump(res, open(a[7], "w"))
    print(f"\n{rounds} alternations (old, new); us; pooled samples; [per-round p50 min-max]")
    print(f"{'path':<28}{'old p50':>9}{'new p50':>9}{'ratio':>7}{'old p99':>9}{'new p99':>9}{'ratio':>7}   per-round p50 old | new")
    for k in ("append", "ping", "query", "call->read", "publish->read"):
        o = [x for r in res["old"] for x in r[k]]; w = [x for r in res["new"] for x in r[k]]
        rr = lambda s: "%.0f-%.0f" % (min(pct(r[k], 50) for r in res[s]), max(pct(r[k], 50) for r in res[s]))
        print(f"{k + ' RTT' if k in ('append', 'ping', 'query') else k:<28}{pct(o, 50):9.1f}{pct(w, 50):9.1f}{pct(w, 50) / pct(o, 50):7.2f}"
              f"{pct(o, 99):9.1f}{pct(w, 99):9.1f}{pct(w, 99) / pct(o, 99):7.2f}   {rr('old')} | {rr('new')}  (n={len(o)}/{len(w)})")
    for k in [k for k in res["old"][0] if k.startswith(("rf-latency", "publish cost"))]:
        med = lambda s, q: sorted(r[k][q] for r in res[s])[len(res[s]) // 2] / 1e3
        print(f"{k:<28}{med('old', 'p50_ns'):9.2f}{med('new', 'p50_ns'):9.2f}{med('new', 'p50_ns') / med('old', 'p50_ns'):7.2f}"
              f"{med('old', 'p99_ns'):9.2f}{med('new', 'p99_ns'):9.2f}{med('new', 'p99_ns') / med('old', 'p99_ns'):7.2f}   (median of rounds)")
    for k in ("append daemon-side mean", "query daemon-side mean"):
        o, w = (sorted(r[k] for r in res[s])[rounds // 2] for s in ("old", "new"))
        print(f"{k:<28}{o:9.1f}{w:9.1f}{w / o:7.2f}{'':25}  (median of rounds) " + " ".join("%.0f/%.0f" % (x[k], y[k]) for x, y in zip(res["old"], res["new"])))
if __name__ == "__main__":
    main()
EOF
"$py" "$work/h.py" main "$old_dir/target/release" "$root/target/release" "${ROUNDS:-6}" \
    "${APPENDS:-3000}" "${QUERIES:-3000}" "${PUBS:-600}" "${OUT:-$root/target/bench-hardening.json}"
if [ "${CRIT:-1}" = 1 ]; then
    echo; echo "criterion publish_small (time per publish), alternated:"
    for i in 1 2; do for side in old new; do
        t=$old_dir; [ $side = new ] && t=$root
        (cd "$t" && RINGFEED_SHM_DIR=$work cargo bench -q -p ringfeed-benches --bench publish -- publish_small \
            --warm-up-time 1 --measurement-time 5 --noplot 2>/dev/null) |
            awk -v s="$side $i" '/^publish_small/{n=$1} /time:/{print "  " s ": " n "  " substr($0, index($0, "["))}'
    done; done
fi
echo "== $(date -u +%T) end; uptime:$(uptime)"
echo "(the worktree stays; free its disk with: git -C $root worktree remove --force $old_dir)"
