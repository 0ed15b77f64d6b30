#!/usr/bin/env bash
# Builds examples/cpp/flight_client.cpp (a remote query with Arrow Flight C++, no ringfeed
# library) against the Arrow C++ inside the venv's pyarrow wheel: its headers and its
# libarrow / libarrow_flight. Prints the binary's path.
#
#   scripts/build_flight_cpp.sh [OUT_DIR]     # default build/flight_cpp
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${1:-build/flight_cpp}
mkdir -p "$out"
pa=$("$py" -c "import pyarrow as pa; print(pa.get_library_dirs()[0])")
inc=$("$py" -c "import pyarrow as pa; print(pa.get_include())")
# The wheel ships versioned sonames only; the linker wants the plain names.
so=$(cd "$pa" && ls libarrow.so.* | grep -E '^libarrow\.so\.[0-9]+$' | head -1)
fso=$(cd "$pa" && ls libarrow_flight.so.* | grep -E '^libarrow_flight\.so\.[0-9]+$' | head -1)
ln -sf "$pa/$so" "$out/libarrow.so"
ln -sf "$pa/$fso" "$out/libarrow_flight.so"
${CXX:-c++} -std=c++20 -O1 examples/cpp/flight_client.cpp -I"$inc" -L"$out" \
  -larrow_flight -larrow -Wl,-rpath,"$pa" -o "$out/flight_client"
echo "$out/flight_client"
