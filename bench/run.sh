#!/bin/bash
# The benchmarks of docs/bench (issue targets in brackets), one command, one table:
#   - snapshot: raw ODBC fetch of the agent's page query, then the real agent streaming the
#     same rows over CURVE to a stand-in core that acknowledges on receipt [>= 0.6 x raw,
#     agent peak RSS <= 32 MB], then the same snapshot into the real core (end to end);
#   - postings: the contract's apply operation called directly, then postings written
#     through the real agent and acknowledged [>= 50,000/s on PostgreSQL].
# Usage: bench/run.sh [INVOICES] [POSTINGS] [DIALECTS]
#        (defaults 1000000, 20000, and every dialect whose contract is in sql/)
# Builds in build-bench (optimized, no sanitizers); starts its own database servers.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
INVOICES=${1:-1000000}
POSTINGS=${2:-20000}
sh scripts/deps.sh --servers
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j "$(nproc)" >/dev/null
BIN=$ROOT/build-bench
W=$(mktemp -d /tmp/matterlink_bench_XXXXXX)
chmod 755 "$W" # the database servers run as their service users and keep their data under $W
PIDS=""
cleanup() {
    for pid in $PIDS; do kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    sh tests/servers.sh stop "$W/servers" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

dialects=${3:-}
if [ -z "$dialects" ]; then
    dialects=sqlite
    for d in postgresql mariadb; do [ -f "sql/$d/contract.sql" ] && dialects="$dialects $d"; done
fi
case $dialects in *" "*) sh tests/servers.sh start "$W/servers" >/dev/null ;; esac

"$BIN/matterlink-core" keygen --out "$W/core.cert" >/dev/null
"$BIN/matterlink-agent" keygen --out "$W/agent.cert" >/dev/null
CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/core.cert")
mkdir -p "$W/agents"
cp "$W/agent.cert" "$W/agents/bench.cert"

agent_config() { # dialect connection port
    cat >"$W/agent.cfg" <<CFG
agent
    certificate = $W/agent.cert_secret
database
    dialect = $1
    connection = "$2"
    batch_rows = 1000
    poll_interval_ms = 200
core
    endpoint = tcp://127.0.0.1:$3
    public_key = "$CORE_KEY"
CFG
}

# Run the agent against a stand-in core; print the stand-in's figures and the agent's peak RSS.
stand_in() { # dialect connection mode [count window]
    port=$(free_port)
    agent_config "$1" "$2" "$port"
    "$BIN/ml_bench" core "tcp://127.0.0.1:$port" "$W/agents" "$W/core.cert_secret" "$3" \
        ${4:+"$4" "$5" "$1" "$2"} >"$W/stand_in.out" &
    bench_pid=$!
    "$BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level warning 2>>"$W/agent.log" &
    agent_pid=$!
    PIDS="$PIDS $bench_pid $agent_pid"
    wait "$bench_pid"
    peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$agent_pid/status")
    kill -TERM "$agent_pid"
    wait "$agent_pid" 2>/dev/null || true
    echo "$(cat "$W/stand_in.out") agent_peak_kb=$peak"
}

# The same snapshot into the real core, timed from the agent's start to a complete replica.
end_to_end() { # dialect connection
    port=$(free_port)
    agent_config "$1" "$2" "$port"
    rm -f "$W/core.db"
    cat >"$W/core.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$port
    certificate = $W/core.cert_secret
    agents = $W/agents
store
    connection = "Driver=SQLite3;Database=$W/core.db;StepAPI=1;FKSupport=1;Timeout=5000"
admin
    endpoint = ipc://$W/admin.sock
CFG
    rm -f "$W/agents/bench.cert"
    "$BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm bench --name Bench \
        --cert "$W/agent.cert" >/dev/null
    rm -f "$W/core.log"
    "$BIN/matterlink-core" run -c "$W/core.cfg" --log-level notice 2>>"$W/core.log" &
    core_pid=$!
    PIDS="$PIDS $core_pid"
    until "$BIN/matterlink" --admin "ipc://$W/admin.sock" status >/dev/null 2>&1; do sleep 0.1; done
    start=$(date +%s.%N)
    "$BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level warning 2>>"$W/agent.log" &
    agent_pid=$!
    PIDS="$PIDS $agent_pid"
    # Watch the core's log, not its status: asking the core for status while it ingests
    # would take its time from the ingestion being measured.
    until grep -q "replica complete" "$W/core.log" 2>/dev/null; do
        sleep 0.1
    done
    end=$(date +%s.%N)
    rows=$("$BIN/matterlink" --admin "ipc://$W/admin.sock" --json status | python3 -c "import json,sys; f=json.load(sys.stdin)['firms'][0]; print(f['invoice_count'] + f['trust_ledger_count'])")
    kill -TERM "$agent_pid" "$core_pid"
    wait "$agent_pid" "$core_pid" 2>/dev/null || true
    python3 -c "print('rows=%d seconds=%.2f rows_per_second=%.0f' % ($rows, $end - $start, $rows / ($end - $start)))"
    rm -f "$W/agents/bench.cert"
    cp "$W/agent.cert" "$W/agents/bench.cert"
}

printf '\n%-11s %-34s %14s %10s %12s\n' "dialect" "measurement" "rate (/s)" "seconds" "agent peak"
for dialect in $dialects; do
    case $dialect in
        sqlite)
            sh sql/sample.sh --dialect sqlite --db "$W/matter.db" --clients 20000 --invoices "$INVOICES" >/dev/null
            connection="Driver=SQLite3;Database=$W/matter.db;StepAPI=1;FKSupport=1;Timeout=5000"
            ;;
        *)
            . "$W/servers/servers.env"
            connection=$(sh tests/servers.sh createdb "$W/servers" "$dialect" bench)
            if [ "$dialect" = postgresql ]; then port=$ML_PG_PORT; else port=$ML_MARIADB_PORT; fi
            sh sql/sample.sh --dialect "$dialect" --port "$port" --database bench --clients 20000 \
                --invoices "$INVOICES" >/dev/null
            ;;
    esac
    raw=$("$BIN/ml_bench" fetch "$dialect" "$connection" 1000)
    printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "raw fetch (snapshot reader)" "$(field "$raw" rows_per_second)" "$(field "$raw" seconds)" "-"
    streamed=$(stand_in "$dialect" "$connection" snapshot)
    printf '%-11s %-34s %14s %10s %9s kB\n' "$dialect" "snapshot, agent -> link, acked" "$(field "$streamed" rows_per_second)" "$(field "$streamed" seconds)" "$(field "$streamed" agent_peak_kb)"
    python3 -c "print('%-11s %-34s %14s' % ('$dialect', '  = ratio to raw fetch', '%.2f x' % ($(field "$streamed" rows_per_second) / $(field "$raw" rows_per_second))))"
    whole=$(end_to_end "$dialect" "$connection")
    printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "snapshot into the real core" "$(field "$whole" rows_per_second)" "$(field "$whole" seconds)" "-"
    direct=$("$BIN/ml_bench" apply "$dialect" "$connection" "$POSTINGS" 256)
    printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "apply, direct (256 per txn)" "$(field "$direct" postings_per_second)" "$(field "$direct" seconds)" "-"
    through=$(stand_in "$dialect" "$connection" postings "$POSTINGS" 1024)
    printf '%-11s %-34s %14s %10s %9s kB\n' "$dialect" "postings via agent, acked" "$(field "$through" postings_per_second)" "$(field "$through" seconds)" "$(field "$through" agent_peak_kb)"
done
