#!/bin/bash
# Staff search at a million invoices, per dialect, with its baseline from the same run:
#   - "index": this tree's core and agent (contract version 4: SQLite's and MariaDB's search
#     index, docs/contract.md 5.8), the database installed with this tree's scripts;
#   - "before": the core and agent of BASE (default f400436, the last commit before the index),
#     on the same database with contract_version set back to 3 for that agent, which searches
#     the item views as it always did (the version 4 objects are there but it never reads them).
# Each is `ml_bench search` through the real core's admin API, over CURVE to the real agent, the
# agent's SQL in the matter database and back (bench/RESULTS.md, "Search round trip"), after the
# snapshot into a fresh core is complete. The mix and values are ml_bench's.
# Usage: bench/search.sh [INVOICES] [DIALECTS] [BASE]
#        (defaults 1000000, "sqlite mariadb postgresql", f400436). SEARCHES=N timed searches with
#        the index (default 2000), BEFORE_SEARCHES=N without (default 200; 0 skips the baseline).
# Builds in build-bench and build-bench-base (optimized, no sanitizers); starts its own servers.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
INVOICES=${1:-1000000}
DIALECTS=${2:-sqlite mariadb postgresql}
BASE=${3:-f400436}
CLIENTS=${CLIENTS:-20000}
SEARCHES=${SEARCHES:-2000}
BEFORE_SEARCHES=${BEFORE_SEARCHES:-200}
sh scripts/deps.sh --servers >/dev/null
W=$(mktemp -d /tmp/matterlink_search_XXXXXX)
chmod 755 "$W" # the database servers run as their service users and keep their data under $W
PIDS=""
cleanup() {
    for pid in $PIDS; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    sh tests/servers.sh stop "$W/servers" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT

build() { # source binary-dir
    cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
        cmake --build "$2" -j "$(nproc)" >"$W/build.log" 2>&1 || { tail -40 "$W/build.log"; exit 1; }
}
build . build-bench
NEW=$ROOT/build-bench
OLD=
if [ "$BEFORE_SEARCHES" -gt 0 ]; then
    # The baseline's sources from git, built beside this tree's (ccache makes it quick).
    # A fixed path: the build directory's cache names its source directory.
    rm -rf "$ROOT/build-bench-base/src"
    mkdir -p "$ROOT/build-bench-base/src"
    git archive "$BASE" | tar -x -C "$ROOT/build-bench-base/src"
    build "$ROOT/build-bench-base/src" "$ROOT/build-bench-base/bin"
    OLD=$ROOT/build-bench-base/bin
fi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

case " $DIALECTS " in
    *" postgresql "* | *" mariadb "*)
        # Each server's cache holds what searches read at a million invoices, as a server for
        # such a database is set up (docs/contract.md 5.8, "Sizing").
        ML_PG_SETTINGS="-c shared_buffers=1GB" ML_MARIADB_SETTINGS="--innodb-buffer-pool-size=1G" \
            sh tests/servers.sh start "$W/servers" >/dev/null
        . "$W/servers/servers.env"
        ;;
esac

"$NEW/matterlink-core" keygen --out "$W/core.cert" >/dev/null
"$NEW/matterlink-agent" keygen --out "$W/agent.cert" >/dev/null
CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/core.cert")
mkdir -p "$W/agents"

# One measurement: a fresh core and the agent of build BIN, the snapshot into the core, then
# COUNT searches; their figures into $W/search.out and each kind's into $W/search.kinds.
measure() { # bin dialect connection count
    local bin=$1 port core_pid agent_pid
    port=$(free_port)
    cat >"$W/agent.cfg" <<CFG
agent
    certificate = $W/agent.cert_secret
database
    dialect = $2
    connection = "$3"
    batch_rows = 1000
    poll_interval_ms = 200
core
    endpoint = tcp://127.0.0.1:$port
    public_key = "$CORE_KEY"
CFG
    rm -f "$W/core.db" "$W/core.log" "$W/agents/bench.cert"
    cat >"$W/core.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$port
    certificate = $W/core.cert_secret
    agents = $W/agents
store
    connection = "sqlite:$W/core.db"
admin
    endpoint = ipc://$W/admin.sock
CFG
    "$bin/matterlink-core" register-agent -c "$W/core.cfg" --firm bench --name Bench \
        --cert "$W/agent.cert" >/dev/null
    "$bin/matterlink-core" run -c "$W/core.cfg" --log-level notice 2>>"$W/core.log" &
    core_pid=$!
    PIDS="$PIDS $core_pid"
    until "$bin/matterlink" --admin "ipc://$W/admin.sock" status >/dev/null 2>&1; do sleep 0.1; done
    "$bin/matterlink-agent" run -c "$W/agent.cfg" --log-level warning 2>>"$W/agent.log" &
    agent_pid=$!
    PIDS="$PIDS $agent_pid"
    until grep -q "replica complete" "$W/core.log" 2>/dev/null; do
        kill -0 "$agent_pid" 2>/dev/null || { tail -5 "$W/agent.log" >&2; exit 1; }
        sleep 0.2
    done
    if ! "$NEW/ml_bench" search "ipc://$W/admin.sock" bench "$4" "$CLIENTS" "$INVOICES" \
        >"$W/search.out" 2>"$W/search.kinds"; then
        cat "$W/search.kinds" >&2
        exit 1
    fi
    kill -TERM "$agent_pid" "$core_pid"
    wait "$agent_pid" "$core_pid" 2>/dev/null || true
}

# Sets contract_version in the matter database.
set_version() { # dialect connection-args version
    case $1 in
        sqlite) sqlite3 "$W/matter.db" "UPDATE ml_contract SET contract_version = $2" ;;
        postgresql) psql -X -q -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d bench \
            -c "UPDATE ml_contract SET contract_version = $2" >/dev/null ;;
        mariadb) mariadb -h 127.0.0.1 -P "$ML_MARIADB_PORT" -u root bench \
            -e "UPDATE ml_contract SET contract_version = $2" ;;
    esac
}

rows=
kinds=
for dialect in $DIALECTS; do
    case $dialect in
        sqlite)
            rm -f "$W/matter.db"
            sh sql/sample.sh --dialect sqlite --db "$W/matter.db" --clients "$CLIENTS" \
                --invoices "$INVOICES" >/dev/null
            connection="Driver=SQLite3;Database=$W/matter.db;StepAPI=1;FKSupport=1;Timeout=5000"
            ;;
        *)
            connection=$(sh tests/servers.sh createdb "$W/servers" "$dialect" bench)
            if [ "$dialect" = postgresql ]; then port=$ML_PG_PORT; else port=$ML_MARIADB_PORT; fi
            sh sql/sample.sh --dialect "$dialect" --port "$port" --database bench \
                --clients "$CLIENTS" --invoices "$INVOICES" >/dev/null
            if [ "$dialect" = postgresql ]; then
                psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d bench -c "VACUUM ANALYZE" >/dev/null
            else
                # As VACUUM on PostgreSQL: the bulk load's undo purged (innodb_max_purge_lag_wait
                # = 0 waits for it) and statistics taken, before anything is timed.
                mariadb -h 127.0.0.1 -P "$port" -u root bench -e "SET GLOBAL innodb_max_purge_lag_wait = 0;
                    ANALYZE TABLE client, matter, invoice, ml_search_client, ml_search_matter, ml_search_invoice" >/dev/null
            fi
            ;;
    esac
    runs="index:$NEW:$SEARCHES"
    [ -n "$OLD" ] && runs="$runs before:$OLD:$BEFORE_SEARCHES"
    for run in $runs; do
        name=${run%%:*}
        rest=${run#*:}
        bin=${rest%:*}
        count=${rest##*:}
        [ "$name" = before ] && set_version "$dialect" 3
        measure "$bin" "$dialect" "$connection" "$count"
        [ "$name" = before ] && set_version "$dialect" 4
        found=$(cat "$W/search.out")
        rows="$rows$(printf '%-11s %-7s %8s %9s %9s %9s %9s %7s' "$dialect" "$name" \
            "$(field "$found" count)" "$(field "$found" p50_ms)" "$(field "$found" p90_ms)" \
            "$(field "$found" p99_ms)" "$(field "$found" max_ms)" "$(field "$found" rows_per_search)")
"
        kinds="$kinds$(awk -v dialect="$dialect" -v run="$name" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "%-11s %-7s %-22s %6s %9s %9s %9s %7s\n", dialect, run, v["kind"], v["count"],
                v["p50_ms"], v["p99_ms"], v["max_ms"], v["rows_per_search"] }' "$W/search.kinds")
"
        printf '%s\n' "$(echo "$rows" | tail -2 | head -1)" >&2 # progress
    done
    if [ "$dialect" != sqlite ]; then
        if [ "$dialect" = postgresql ]; then
            psql -X -q -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -c "DROP DATABASE bench" >/dev/null
        else
            mariadb -h 127.0.0.1 -P "$ML_MARIADB_PORT" -u root -e "DROP DATABASE bench"
        fi
    fi
done

echo
echo "search round trip at $INVOICES invoices (admin request -> core -> CURVE -> agent -> database -> back; ms)"
printf '%-11s %-7s %8s %9s %9s %9s %9s %7s\n' "dialect" "run" "searches" "p50" "p90" "p99" "max" "rows"
printf '%s' "$rows"
echo
printf '%-11s %-7s %-22s %6s %9s %9s %9s %7s\n' "dialect" "run" "kind" "count" "p50" "p99" "max" "rows"
printf '%s' "$kinds"
cleanup
trap - EXIT
