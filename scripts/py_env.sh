#!/usr/bin/env bash
# Sourced by scripts/test_python.sh and scripts/demo.sh: creates .venv (installing
# python3-venv with apt-get if needed), installs python/requirements-dev.txt,
# and installs the ringfeed
# wheel (maturin, release, abi3). Sets PY and VENV. The workspace-hack crate
# (cargo hakari) gives shared dependencies one feature set, so the wheel reuses
# what an earlier `cargo build --release` compiled: only pyo3 and the extension
# are built here.
ROOT=${ROOT:-$PWD}
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


echo "== maturin build --release (abi3 wheel)"
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -i "$PY" -o "$WHEELS"
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/ringfeed-*.whl

