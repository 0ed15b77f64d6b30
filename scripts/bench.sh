#!/usr/bin/env bash
# Runs every ringfeed benchmark and prints a summary table with the baselines
# and the DESIGN §6 targets marked met / missed. Only cargo is needed.
#
#   scripts/bench.sh                  # full run (~5 min on 2 vCPUs, plus the build)
#   BENCH_QUICK=1 scripts/bench.sh    # smoke run: short measurements, no 10M rows
#
# Extra arguments go to criterion, e.g. `scripts/bench.sh decode/ringfeed`
# (then only matching criterion benchmarks run; rf-latency always runs).
# Set RF_LATENCY_ARGS to pass options to rf-latency (see `rf-latency --help`),
# BENCH_RT=1 to run the measurements under SCHED_FIFO (see below).
# The summary is also written to <target>/bench-summary.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# The target directory, wherever CARGO_TARGET_DIR or config puts it.
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
    target_dir="$root/target"
fi
export CRITERION_HOME="${CRITERION_HOME:-$target_dir/criterion}"

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
load_before=$(loadavg)
echo "== load average before: $load_before (2 vCPUs: above ~1 means other work competes)"
if [ "${BENCH_QUICK:-0}" != "0" ]; then
    echo "== BENCH_QUICK: short measurements; numbers are a smoke test, not results"
fi

echo "== building (release)"
cargo build --release -p ringfeed-benches --bins
cargo bench -p ringfeed-benches --no-run --bench decode --bench publish

# BENCH_RT=1 runs the measurements (criterion and both rf-latency processes)
# under SCHED_FIFO, so that builds running beside them do not preempt them.
# It needs root or CAP_SYS_NICE; criterion then holds one vCPU for the whole
# run and rf-latency's spin modes hold both for a few seconds.
rt=()
if [ "${BENCH_RT:-0}" != "0" ]; then
    rt=(chrt -f 10)
    echo "== BENCH_RT: measurements run under SCHED_FIFO priority 10"
fi

# Results older than this stamp are left-overs of earlier runs: not summarised.
stamp="$target_dir/bench-run.stamp"
touch "$stamp"

echo "== criterion: decode"
${rt[@]+"${rt[@]}"} cargo bench -p ringfeed-benches --bench decode -- "$@"
echo "== criterion: publish"
${rt[@]+"${rt[@]}"} cargo bench -p ringfeed-benches --bench publish -- "$@"

echo "== rf-latency (cross-process)"
# shellcheck disable=SC2086 # RF_LATENCY_ARGS is a list of words on purpose
${rt[@]+"${rt[@]}"} "$target_dir/release/rf-latency" --json "$target_dir/rf-latency.json" ${RF_LATENCY_ARGS:-}

load_after=$(loadavg)
echo
echo "== summary (medians; load average before $load_before, after $load_after)"
"$target_dir/release/rf-bench-summary" --criterion "$CRITERION_HOME" --latency "$target_dir/rf-latency.json" --since "$stamp" |
    tee "$target_dir/bench-summary.md"
echo
echo "load average before: $load_before, after: $load_after" | tee -a "$target_dir/bench-summary.md"
