#!/bin/bash
# The chaos suite's long form: tests/e2e_chaos.sh with many more faults (CI runs 20 per
# dialect). Builds and tests in build (sanitizers on: a sanitizer report in a daemon's log
# fails the run too); starts its own database servers.
# Usage: bench/chaos.sh [ROUNDS] [DIALECTS]
#        (defaults 200, "sqlite postgresql"); ML_CHAOS_SEED=N replays a run's faults.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${1:-200}
DIALECTS=${2:-sqlite postgresql}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug -DML_ASAN=ON -DML_UBSAN=ON >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
export ML_BIN=$ROOT/build ML_SOURCE=$ROOT ML_CHAOS_ROUNDS=$ROUNDS
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for dialect in $DIALECTS; do
    ML_DIALECT=$dialect bash tests/e2e_chaos.sh || status=1
done
exit $status
