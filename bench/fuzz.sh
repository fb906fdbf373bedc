#!/bin/bash
# The fuzz suites' long form: e2e_api_fuzz, e2e_web_fuzz, e2e_cli_fuzz, e2e_database_fuzz,
# e2e_config_fuzz and e2e_agent_fuzz on every dialect they name, for many seeds and many more
# requests than CI sends (CI: one seed a run, 1,500 API requests a client, 1,500 HTTP
# requests, 250 command lines, 150 configuration files, 3 x 400 hostile agent messages).
# Builds and tests in build (sanitizers on: a sanitizer report in a daemon's log fails the run too);
# starts its own database servers. Prints a line per suite, seed and dialect; exits 1 when
# any failed (its logs are kept: ML_E2E_KEEP).
# Usage: bench/fuzz.sh [FIRST_SEED] [SEEDS]   (defaults 1, 10)
#        ML_API_FUZZ_COUNT, ML_API_FUZZ_PARALLEL, ML_WEB_FUZZ_COUNT, ML_CLI_FUZZ_COUNT and
#        ML_CONFIG_FUZZ_COUNT, ML_AGENT_FUZZ_COUNT override the long form's sizes (5,000 a
#        client and 4 clients; 5,000; 800; 600; 3 x 3,000).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FIRST=${1:-1}
SEEDS=${2:-10}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug -DML_ASAN=ON -DML_UBSAN=ON >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
SERVERS=$(mktemp -d /tmp/matterlink_fuzz_servers_XXXXXX)
sh tests/servers.sh start "$SERVERS" >/dev/null
trap 'sh tests/servers.sh stop "$SERVERS" >/dev/null 2>&1; rm -rf "$SERVERS"' EXIT
export ML_BIN=$ROOT/build ML_SOURCE=$ROOT ML_SERVERS_DIR=$SERVERS ML_E2E_KEEP=1
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ML_API_FUZZ_COUNT=${ML_API_FUZZ_COUNT:-5000} ML_API_FUZZ_PARALLEL=${ML_API_FUZZ_PARALLEL:-4}
export ML_WEB_FUZZ_COUNT=${ML_WEB_FUZZ_COUNT:-5000} ML_CLI_FUZZ_COUNT=${ML_CLI_FUZZ_COUNT:-800}
export ML_CONFIG_FUZZ_COUNT=${ML_CONFIG_FUZZ_COUNT:-600} ML_AGENT_FUZZ_COUNT=${ML_AGENT_FUZZ_COUNT:-3000}
status=0
for seed in $(seq "$FIRST" $((FIRST + SEEDS - 1))); do
    export ML_API_FUZZ_SEED=$seed ML_WEB_FUZZ_SEED=$seed ML_CLI_FUZZ_SEED=$seed ML_DATABASE_FUZZ_SEED=$seed \
        ML_CONFIG_FUZZ_SEED=$seed ML_AGENT_FUZZ_SEED=$seed
    for suite in api web cli database config agent; do
        script=tests/e2e_${suite}_fuzz.sh
        for dialect in $(sed -n 's/^# dialects: //p' "$script"); do
            started=$(date +%s)
            if out=$(ML_DIALECT=$dialect bash "$script" 2>&1); then
                echo "fuzz: $suite seed $seed $dialect: pass ($(($(date +%s) - started)) s)"
            else
                status=1
                echo "fuzz: $suite seed $seed $dialect: FAIL"
                echo "$out" | grep -E "FAIL|kept" | head -n 10
            fi
        done
    done
done
exit $status
