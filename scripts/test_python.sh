#!/usr/bin/env bash
# Builds the ringfeed wheel (maturin, release, abi3) into .venv and runs the
# Python tests (pytest on python/tests) and the stub check (mypy.stubtest).
# Needs only python3 and cargo; installs python3-venv with apt-get if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv

source scripts/py_env.sh

echo "== cargo build -p ringfeed-xtest -p ringfeed-daemon -p ringfeed-cli (binaries the tests spawn)"
cargo build -q -p ringfeed-xtest -p ringfeed-daemon -p ringfeed-cli

echo "== pytest python/tests"
# From the tests' directory, so `import ringfeed` finds the installed wheel, not the source tree.
(cd python/tests && "$PY" -m pytest -p no:cacheprovider -q --timeout=120 .)

echo "== mypy.stubtest ringfeed"
# In a scratch directory, so mypy's cache stays out of the tree.
(cd "$WHEELS" && "$PY" -m mypy.stubtest ringfeed --allowlist "$ROOT/python/stubtest-allowlist.txt")
echo "== mypy --strict (the pure-Python part of the package, against the stubs)"
(cd "$WHEELS" && "$PY" -m mypy --strict --cache-dir=/dev/null "$ROOT/python/python/ringfeed")
echo "== python: ok"
