#!/usr/bin/env bash
# Builds and runs every test suite: Rust (unit, property, multi-process, CLI),
# Python, C++ and cross-language. Works on a fresh Debian machine: it installs
# what it needs. Prints a per-suite summary and a final "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
need_rust
need_base
# The web page's chart library, before the daemon is built (its build.rs embeds it),
# and the Chromium that python/tests/test_web.py drives.
bash scripts/build_web.sh
need_chromium

# One-shot builds gain nothing from incremental state (it was 5+ GB here).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
disk() { df -h --output=avail,size . | tail -1 | awk '{print $1 " free of " $2}'; }
say "disk at start: $(disk)"

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
total_pass=0; total_fail=0; total_skip=0; status=0
add() { total_pass=$((total_pass + $1)); total_fail=$((total_fail + $2)); total_skip=$((total_skip + $3)); }

say "Rust: cargo test --workspace"
if cargo test --workspace 2>&1 | tee "$logdir/rust.log"; then :; else status=1; fi
read -r p f i < <(awk '/^test result:/ {for (k=1;k<=NF;k++) { if ($(k+1) ~ /^passed/) p+=$k; if ($(k+1) ~ /^failed/) f+=$k; if ($(k+1) ~ /^ignored/) i+=$k } } END {print p+0, f+0, i+0}' "$logdir/rust.log")
echo "rust: $p passed, $f failed, $i skipped"
add "$p" "$f" "$i"

if [ -f scripts/test_python.sh ]; then
  say "Python: scripts/test_python.sh"
  if bash scripts/test_python.sh 2>&1 | tee "$logdir/py.log"; then :; else status=1; fi
  read -r p f s < <(grep -E '(passed|failed).* in [0-9.]+s' "$logdir/py.log" | tail -1 | tr -d '=,' |
    awk '{for (k=1;k<=NF;k++) { if ($(k+1) ~ /^passed/) p+=$k; if ($(k+1) ~ /^failed/) f+=$k; if ($(k+1) ~ /^error/) f+=$k; if ($(k+1) ~ /^skipped/) s+=$k } } END {print p+0, f+0, s+0}')
  echo "python: $p passed, $f failed, $s skipped"
  add "$p" "$f" "$s"
fi

if [ -f scripts/test_lake.sh ]; then
  say "Lake: scripts/test_lake.sh (moto S3, file://, polars, DuckDB, Spark)"
  if bash scripts/test_lake.sh 2>&1 | tee "$logdir/lake.log"; then :; else status=1; fi
  read -r p f s < <(grep -E '(passed|failed).* in [0-9.]+s' "$logdir/lake.log" | tail -1 | tr -d '=,' |
    awk '{for (k=1;k<=NF;k++) { if ($(k+1) ~ /^passed/) p+=$k; if ($(k+1) ~ /^failed/) f+=$k; if ($(k+1) ~ /^error/) f+=$k; if ($(k+1) ~ /^skipped/) s+=$k } } END {print p+0, f+0, s+0}')
  echo "lake: $p passed, $f failed, $s skipped"
  add "$p" "$f" "$s"
fi

if [ -f scripts/test_cpp.sh ]; then
  say "C++: scripts/test_cpp.sh"
  if bash scripts/test_cpp.sh 2>&1 | tee "$logdir/cpp.log"; then :; else status=1; fi
  read -r p f < <(grep -E 'tests passed, [0-9]+ tests failed out of' "$logdir/cpp.log" | tail -1 |
    awk '{ for (k=1;k<=NF;k++) if ($k=="failed" && $(k+1)=="out") { f=$(k-2); t=$(k+3) } } END {print t-f, f+0}')
  echo "c++: $p passed, $f failed"
  add "$p" "$f" 0
fi

if [ -x .venv/bin/python ]; then
  say "Cross-language matrix: tests/xlang/matrix.py"
  cargo build -p ringfeed-xtest 2>&1 | tail -1
  if .venv/bin/python tests/xlang/matrix.py 2>&1 | tee "$logdir/xlang.log"; then :; else status=1; fi
  read -r p f s < <(grep -E '^xlang: ' "$logdir/xlang.log" | tail -1 | awk '{print $2, $4, $6}')
  add "${p:-0}" "${f:-1}" "${s:-0}"
  say "Cross-language memory: tests/xlang/pss.py (8 readers, one arena, PSS)"
  cargo build -p ringfeed-xtest -p ringfeed-daemon -p ringfeed-cli 2>&1 | tail -1
  if .venv/bin/python tests/xlang/pss.py 2>&1 | tee "$logdir/pss.log"; then :; else status=1; fi
  read -r p f s < <(grep -E '^pss: ' "$logdir/pss.log" | tail -1 | awk '{print $2, $4, $6}')
  add "${p:-0}" "${f:-1}" "${s:-0}"
fi

say "summary"
echo "disk at end: $(disk); target/ $(du -sh target 2>/dev/null | cut -f1), build/ $(du -sh build 2>/dev/null | cut -f1)"
[ "$total_fail" -gt 0 ] && status=1
echo "all suites: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
