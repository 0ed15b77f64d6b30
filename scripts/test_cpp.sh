#!/usr/bin/env bash
# Builds the C++ binding (cpp/: the cxx bridge as a Rust static library, the
# header, tests, examples and bench) with CMake and runs its ctest suite,
# including the API and lifetime tests under valgrind (leaks fail them).
# Installs cmake and valgrind with apt-get when they are missing. Exits
# non-zero on any failure; ctest's last line is the summary
# "N% tests passed, N tests failed out of N".
#
#   scripts/test_cpp.sh            # build dir build/cpp (RINGFEED_CPP_BUILD overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
need_rust
need_base
command -v c++ >/dev/null 2>&1 || apt_install g++
command -v cmake >/dev/null 2>&1 || apt_install cmake
command -v valgrind >/dev/null 2>&1 || apt_install valgrind

build=${RINGFEED_CPP_BUILD:-build/cpp}
say "C++: configure ($build)"
cmake -S cpp -B "$build" -DCMAKE_BUILD_TYPE=Debug >/dev/null
say "C++: build (cargo -p ringfeed-cpp -p ringfeed-xtest, then the C++ programs)"
cmake --build "$build" -j "$(nproc)"
# The C++ library links the client, never the store: no parquet or store code inside it.
lib=$(find target -path "*/debug/libringfeed_cpp.a" -o -path "*/release/libringfeed_cpp.a" | head -1)
if [ -n "$lib" ] && command -v nm >/dev/null 2>&1; then
  leaked=$(nm -C "$lib" 2>/dev/null | grep -c -E "parquet::|ringfeed_store::" || true)
  if [ "$leaked" != "0" ]; then
    echo "$lib contains $leaked store/parquet symbols: the C++ binding must link ringfeed-client only" >&2
    exit 1
  fi
  echo "$lib: $(du -h "$lib" | cut -f1), no store or parquet code"
fi
listed=$(ctest --test-dir "$build" -N)
if ! grep -q valgrind_api <<<"$listed"; then
  echo "valgrind_api is not registered: is valgrind installed?" >&2
  exit 1
fi
say "C++: ctest"
ctest --test-dir "$build" --output-on-failure
