#!/usr/bin/env bash
# Builds the ringfeed wheel (maturin, release, abi3) into .venv and runs the
# Python tests (pytest on python/tests) and the stub check (mypy.stubtest).
# Needs only python3 and cargo; installs python3-venv with apt-get if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv

if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            echo "== python3 -m venv failed: installing python3-venv"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            python3 -m venv "$VENV"
        else
            echo "python3 -m venv failed; install python3-venv (Debian/Ubuntu) and retry" >&2
            exit 1
        fi
    fi
fi
PY=$VENV/bin/python

echo "== pip install (python/requirements-dev.txt)"
"$PY" -m pip install -q --disable-pip-version-check -r python/requirements-dev.txt

echo "== cargo build -p ringfeed-xtest -p ringfeed-daemon -p ringfeed-cli (binaries the tests spawn)"
cargo build -q -p ringfeed-xtest -p ringfeed-daemon -p ringfeed-cli

echo "== maturin build --release (abi3 wheel)"
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -i "$PY" -o "$WHEELS"
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/ringfeed-*.whl

echo "== pytest python/tests"
# From the tests' directory, so `import ringfeed` finds the installed wheel, not the source tree.
(cd python/tests && "$PY" -m pytest -p no:cacheprovider -q --timeout=120 .)

echo "== mypy.stubtest ringfeed"
# In a scratch directory, so mypy's cache stays out of the tree.
(cd "$WHEELS" && "$PY" -m mypy.stubtest ringfeed --allowlist "$ROOT/python/stubtest-allowlist.txt")
echo "== python: ok"
