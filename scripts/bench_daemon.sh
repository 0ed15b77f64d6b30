#!/usr/bin/env bash
# Daemon benchmark (issue 6): builds the release binaries if they are missing and runs
# scripts/bench_daemon.py with the repo's Python environment.
#
#   scripts/bench_daemon.sh            # full run (~5-10 min on 2 vCPUs)
#   scripts/bench_daemon.sh --quick    # smoke run (< 1 min)
#
# Binaries: $RINGFEED_BIN_DIR, else $CARGO_TARGET_DIR/release, else target/release.
# Python: $PY, else .venv/bin/python (create it with `ROOT=$PWD . scripts/py_env.sh`).
# Other arguments go to the script (see `scripts/bench_daemon.py --help`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin_dir=${RINGFEED_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
if [ ! -x "$bin_dir/ringfeed" ]; then
    echo "== building ringfeed (release) into $bin_dir"
    cargo build --release -p ringfeed-cli -p ringfeed-daemon
fi
py=${PY:-$root/.venv/bin/python}
if ! "$py" -c "import ringfeed, polars, pyarrow, duckdb" 2>/dev/null; then
    echo "$py lacks ringfeed/polars/pyarrow/duckdb: run \`ROOT=\$PWD . scripts/py_env.sh\` first" >&2
    exit 2
fi
exec "$py" scripts/bench_daemon.py --bin-dir "$bin_dir" "$@"
