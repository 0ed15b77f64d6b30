#!/usr/bin/env bash
# Runs the cargo-fuzz targets (slot decoding, value buffers under full
# validation, header validation, append payloads) for a while.
# A longer append_payload run (what the daemon decodes from clients): scripts/fuzz.sh 3600
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain use them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in slot_decode value_buffers header append_payload; do
  echo "== fuzzing $t for ${secs}s"
  cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=4096
done
