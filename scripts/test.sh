#!/bin/sh
# The whole test suite: installs what it needs, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every CTest test (selftests, codec cases, the SQL
# contract, end-to-end tests with real processes, the format check).
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh --servers
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DML_ASAN=ON -DML_UBSAN=ON >/dev/null
cmake --build build-test -j "$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
cd build-test
ctest --output-on-failure -j 2 --timeout 600
