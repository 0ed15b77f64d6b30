#!/usr/bin/env bash
# The lake suite (issue 16): `ringfeed lake sync|verify` and the daemon's lake thread
# against a moto S3 server (started by the tests, behind a proxy that cuts the line) and
# a file:// lake; polars, DuckDB and Spark (local mode) read what was uploaded and must
# get the same daily bars as `ringfeed query`. Needs python3, cargo and Java 17 (installed
# with apt-get when missing). Called by scripts/test.sh; runs in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/common.sh
need_rust
need_base
need_java
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

VENV=${LAKE_VENV:-$ROOT/.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { apt_install python3-venv && python3 -m venv "$VENV"; }
fi
echo "== pip install (tests/lake/requirements.txt)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/lake/requirements.txt

echo "== cargo build -p ringfeed-cli -p ringfeed-daemon (the binaries the tests run)"
cargo build -q -p ringfeed-cli -p ringfeed-daemon

echo "== pytest tests/lake"
(cd tests/lake && "$VENV/bin/python" -m pytest -p no:cacheprovider -q --timeout=300 .)
echo "== lake: ok"
