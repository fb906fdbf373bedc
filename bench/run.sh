#!/bin/bash
# The benchmarks of docs/bench (issue targets in brackets), one command, one table:
#   - snapshot: raw ODBC fetch of the agent's page query, then the real agent streaming the
#     same rows over CURVE to a stand-in core that acknowledges on receipt [>= 0.6 x raw,
#     agent peak RSS <= 32 MB], then the same snapshot into the real core (end to end);
#   - postings: the contract's apply operation called directly, then postings written
#     through the real agent and acknowledged [>= 50,000/s on PostgreSQL];
#   - search: staff searches one after another through the real core's admin API, over
#     CURVE to the real agent, run in the matter database and back, on the same core and
#     agent once the snapshot into the real core is complete [p99 <= 20 ms on PostgreSQL,
#     <= 100 ms on SQLite and MariaDB].
# Usage: bench/run.sh [INVOICES] [POSTINGS] [DIALECTS] [PARTS]
#        (defaults 1000000, 20000, every dialect whose contract is in sql/, and every part:
#        "snapshot core postings search"; search runs the snapshot into the real core first)
#        The part "bound" (not in the default set; with "snapshot" for its baseline) measures
#        the least the core's store engine (STORE) needs for the same number of rows: an
#        unindexed table loaded in one transaction, then the replica's key and indexes built
#        in bulk, with no core and no network; the index builds come after the last row
#        whatever the design, so link / (max (link, load) + indexes) is the best ratio to the
#        link any core reaches on this machine (issue 14 point 2, bench/RESULTS.md).
#        The part "ops" (not in the default set) times status and one client's open-items
#        through the admin API, idle and while the core stores the snapshot (then also a
#        payment of 0.01 for each client found with open items). The part "reops" does
#        the same while a second snapshot replaces the complete replica of a first (the
#        matter database is given a new epoch), so there is a full replica to read and pay from.
#        SEARCHES=N sets the number of timed searches per dialect (default 2000; every
#        dialect has a search index since contract version 4). bench/search.sh runs the
#        searches alone, beside the build before SQLite's and MariaDB's index.
#        STORE=postgresql puts the real core's store on PostgreSQL (a database of its own on
#        the benchmark's PostgreSQL server, made afresh for each run of the core); the default
#        is a new SQLite file. The stand-in and the real core run in the same invocation, so
#        each table compares the two backends' core against its own run's link.
# Builds in build-bench (optimized, no sanitizers); starts its own database servers.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
INVOICES=${1:-1000000}
POSTINGS=${2:-20000}
CLIENTS=20000
sh scripts/deps.sh --servers
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j "$(nproc)" >/dev/null
BIN=$ROOT/build-bench
W=$(mktemp -d /tmp/matterlink_bench_XXXXXX)
chmod 755 "$W" # the database servers run as their service users and keep their data under $W
PIDS=""
cleanup() {
    # Stop everything whatever fails: under set -e a kill of a process that is gone already
    # ended the trap there, and the database servers were left running.
    set +e
    for pid in $PIDS; do kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    sh tests/servers.sh stop "$W/servers" >/dev/null 2>&1
    # BENCH_KEEP=1 keeps the work directory (logs, the core's store) to look at afterwards.
    if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

dialects=${3:-}
if [ -z "$dialects" ]; then
    dialects=sqlite
    for d in postgresql mariadb; do [ -f "sql/$d/contract.sql" ] && dialects="$dialects $d"; done
fi
# PostgreSQL as a server for a million invoices is set up: its own cache holds the indexes that
# searches read (the default 128 MB does not, and this VM's page cache comes and goes).
STORE=${STORE:-sqlite}
case "$STORE" in sqlite | postgresql) ;; *) echo "run.sh: STORE is sqlite or postgresql" >&2; exit 2 ;; esac
case " $dialects $STORE " in
    *" postgresql "* | *" mariadb "*)
        ML_PG_SETTINGS="-c shared_buffers=1GB" sh tests/servers.sh start "$W/servers" >/dev/null
        ;;
esac
parts=" ${4:-snapshot core postings search} "
part() { case $parts in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

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

# The same snapshot into the real core, timed from the agent's start to a complete replica;
# then, with a search count, that many searches through the same core and agent (their
# figures into $W/search.out, each kind's into $W/search.kinds).
# With a fifth argument ("again"), the timed snapshot (and the ops beside it) is a second one,
# over the complete replica of a first: the matter database gets a new epoch and the agent is
# started again, so the core is answered with a resync while a full replica is readable.
new_epoch() { # dialect connection
    case $1 in
        sqlite) sqlite3 "$W/matter.db" "UPDATE ml_contract SET db_epoch = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))" ;;
        postgresql) psql -X -q -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d bench -c "UPDATE ml_contract SET db_epoch = gen_random_uuid ()::text" ;;
        *) echo "run.sh: a second snapshot is for sqlite and postgresql" >&2; exit 2 ;;
    esac
}

end_to_end() { # dialect connection [searches] [ops] [again]
    port=$(free_port)
    agent_config "$1" "$2" "$port"
    rm -f "$W/core.db"
    store="sqlite:$W/core.db"
    if [ "$STORE" = postgresql ]; then
        store=$(sh tests/servers.sh storedb "$W/servers" matterlink_core)
    fi
    cat >"$W/core.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$port
    certificate = $W/core.cert_secret
    agents = $W/agents
store
    connection = "$store"
admin
    endpoint = ipc://$W/admin.sock
CFG
    rm -f "$W/agents/bench.cert"
    "$BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm bench --name Bench \
        --cert "$W/agent.cert" >/dev/null
    rm -f "$W/core.log"
    "$BIN/matterlink-core" run -c "$W/core.cfg" --log-level "${CORE_LOG_LEVEL:-notice}" 2>>"$W/core.log" &
    core_pid=$!
    PIDS="$PIDS $core_pid"
    until "$BIN/matterlink" --admin "ipc://$W/admin.sock" status >/dev/null 2>&1; do sleep 0.1; done
    loads=1
    if [ -n "${5:-}" ]; then
        "$BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level warning 2>>"$W/agent.log" &
        agent_pid=$!
        PIDS="$PIDS $agent_pid"
        until grep -q "replica complete" "$W/core.log" 2>/dev/null; do sleep 0.1; done
        kill -TERM "$agent_pid"
        wait "$agent_pid" 2>/dev/null || true
        new_epoch "$1" "$2"
        loads=2
    fi
    start=$(date +%s.%N)
    "$BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level warning 2>>"$W/agent.log" &
    agent_pid=$!
    PIDS="$PIDS $agent_pid"
    # Watch the core's log, not its status: asking the core for status while it ingests
    # would take its time from the ingestion being measured.
    : >"$W/ops_loaded.out"
    until [ "$(grep -c "replica complete" "$W/core.log" 2>/dev/null)" -ge "$loads" ]; do
        if [ -n "${4:-}" ]; then
            # status, open-items and a payment (of clients whose items are stored already)
            # while the snapshot is stored, 200 at a time
            "$BIN/ml_bench" ops "ipc://$W/admin.sock" bench 200 "$CLIENTS" pay >>"$W/ops_loaded.out" || true
        else
            sleep 0.1
        fi
    done
    end=$(date +%s.%N)
    # The core's CPU time (all its threads) for the snapshot: on a shared machine the elapsed
    # time says as much about the other processes as about the core.
    cpu=$(awk '{ printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$core_pid/stat")
    if [ -n "${4:-}" ]; then
        "$BIN/ml_bench" ops "ipc://$W/admin.sock" bench 2000 "$CLIENTS" >"$W/ops_idle.out"
    fi
    rows=$("$BIN/matterlink" --admin "ipc://$W/admin.sock" --json status | python3 -c "import json,sys; f=json.load(sys.stdin)['firms'][0]; print(f['invoice_count'] + f['trust_ledger_count'])")
    if [ -n "${3:-}" ] && ! "$BIN/ml_bench" search "ipc://$W/admin.sock" bench "$3" "$CLIENTS" "$INVOICES" \
        >"$W/search.out" 2>"$W/search.kinds"; then
        cat "$W/search.kinds" >&2
        kill -TERM "$agent_pid" "$core_pid"
        exit 1
    fi
    kill -TERM "$agent_pid" "$core_pid"
    wait "$agent_pid" "$core_pid" 2>/dev/null || true
    python3 -c "print('rows=%d seconds=%.2f rows_per_second=%.0f core_cpu_seconds=%s rows_per_core_cpu_second=%.0f' % ($rows, $end - $start, $rows / ($end - $start), '$cpu', $rows / max ($cpu, 0.01)))"
    rm -f "$W/agents/bench.cert"
    cp "$W/agent.cert" "$W/agents/bench.cert"
}

# The store engine's least work for ROWS replica rows (the part "bound"): prints
# load_seconds= index_seconds=. The rows are shaped like the sample's (20,000 clients).
store_bound() { # rows
    local columns="firm_id TEXT NOT NULL, kind TEXT NOT NULL, source_id BIGINT NOT NULL,
        invoice_number TEXT, invoice_date TEXT, due_date TEXT, client_number TEXT,
        client_name TEXT, matter_number TEXT, matter_description TEXT, currency TEXT NOT NULL,
        total_minor BIGINT, balance_minor BIGINT NOT NULL, status TEXT, generation BIGINT NOT NULL,
        change_id BIGINT NOT NULL DEFAULT 0"
    local values="'bench', 'I', i, 'INV-' || i, '2026-03-01', '2026-04-01',
        'C-' || ((i * 7919) % 20000 + 1), 'Client ' || ((i * 7919) % 20000 + 1) || ' LLC',
        'M-' || (((i * 7919) % 20000) * 3 + i % 3 + 1), 'General corporate matters', 'USD',
        i % 2500000, i % 2500000 + 1, 'open', 1, 0"
    local indexes="CREATE UNIQUE INDEX bound_key ON bound (firm_id, kind, source_id);
        CREATE INDEX bound_client ON bound (firm_id, client_number, kind, invoice_number,
        invoice_date, due_date, client_name, matter_number, matter_description, currency,
        total_minor, balance_minor, source_id);
        CREATE INDEX bound_matter ON bound (firm_id, matter_number);
        CREATE INDEX bound_invoice ON bound (firm_id, invoice_number);"
    local started loaded indexed
    if [ "$STORE" = postgresql ]; then
        . "$W/servers/servers.env"
        sh tests/servers.sh storedb "$W/servers" bound >/dev/null
        pg() { psql -X -q -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d bound -v ON_ERROR_STOP=1 -c "$1" >/dev/null || exit 1; }
        pg "CREATE TABLE bound ($columns)"
        started=$(date +%s.%N)
        pg "INSERT INTO bound SELECT $values FROM generate_series (1::BIGINT, $1) AS i"
        loaded=$(date +%s.%N)
        pg "$indexes"
        indexed=$(date +%s.%N)
    else
        rm -f "$W/bound.db"
        sqlite3 "$W/bound.db" "PRAGMA journal_mode = WAL; CREATE TABLE bound ($columns)" >/dev/null
        started=$(date +%s.%N)
        sqlite3 "$W/bound.db" "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;
            WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
            INSERT INTO bound SELECT $values FROM n" || exit 1
        loaded=$(date +%s.%N)
        sqlite3 "$W/bound.db" "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; $indexes" || exit 1
        indexed=$(date +%s.%N)
    fi
    python3 -c "print('load_seconds=%.2f index_seconds=%.2f' % ($loaded - $started, $indexed - $loaded))"
}

search_rows=
search_kinds=
echo "the real core's store: $STORE"
printf '\n%-11s %-34s %14s %10s %12s\n' "dialect" "measurement" "rate (/s)" "seconds" "agent peak"
for dialect in $dialects; do
    case $dialect in
        sqlite)
            sh sql/sample.sh --dialect sqlite --db "$W/matter.db" --clients "$CLIENTS" --invoices "$INVOICES" >/dev/null
            connection="Driver=SQLite3;Database=$W/matter.db;StepAPI=1;FKSupport=1;Timeout=5000"
            ;;
        *)
            . "$W/servers/servers.env"
            connection=$(sh tests/servers.sh createdb "$W/servers" "$dialect" bench)
            if [ "$dialect" = postgresql ]; then port=$ML_PG_PORT; else port=$ML_MARIADB_PORT; fi
            sh sql/sample.sh --dialect "$dialect" --port "$port" --database bench --clients "$CLIENTS" \
                --invoices "$INVOICES" >/dev/null
            # A firm's database was vacuumed and analyzed long ago; right after a bulk load,
            # autovacuum would do it in the middle of the measurements.
            if [ "$dialect" = postgresql ]; then
                psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d bench -c "VACUUM ANALYZE" >/dev/null
            fi
            ;;
    esac
    if part snapshot; then
        raw=$("$BIN/ml_bench" fetch "$dialect" "$connection" 1000)
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "raw fetch (snapshot reader)" "$(field "$raw" rows_per_second)" "$(field "$raw" seconds)" "-"
        streamed=$(stand_in "$dialect" "$connection" snapshot)
        printf '%-11s %-34s %14s %10s %9s kB\n' "$dialect" "snapshot, agent -> link, acked" "$(field "$streamed" rows_per_second)" "$(field "$streamed" seconds)" "$(field "$streamed" agent_peak_kb)"
        python3 -c "print('%-11s %-34s %14s' % ('$dialect', '  = ratio to raw fetch', '%.2f x' % ($(field "$streamed" rows_per_second) / $(field "$raw" rows_per_second))))"
    fi
    if part bound; then
        bound=$(store_bound "$INVOICES") || { echo "run.sh: the store's bound could not be measured" >&2; exit 1; }
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "$STORE store: unindexed load" "-" "$(field "$bound" load_seconds)" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "$STORE store: key and indexes built" "-" "$(field "$bound" index_seconds)" "-"
        if part snapshot; then
            python3 -c "
link = $INVOICES / $(field "$streamed" rows_per_second)
best = link / (max (link, $(field "$bound" load_seconds)) + $(field "$bound" index_seconds))
print('%-11s %-34s %14s' % ('$dialect', '  = best ratio to the link', '%.2f x' % best))"
        fi
    fi
    if part core || part search; then
        searches=
        if part search; then
            searches=${SEARCHES:-2000}
        fi
        whole=$(end_to_end "$dialect" "$connection" "$searches")
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "snapshot into the real core" "$(field "$whole" rows_per_second)" "$(field "$whole" seconds)" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "  per second of the core's CPU" "$(field "$whole" rows_per_core_cpu_second)" "$(field "$whole" core_cpu_seconds)" "-"
        if part snapshot; then # issue 14 point 2: >= 0.8 x the same run's link
            python3 -c "print('%-11s %-34s %14s' % ('$dialect', '  = ratio to the link (stand-in)', '%.2f x' % ($(field "$whole" rows_per_second) / $(field "$streamed" rows_per_second))))"
        fi
        if [ -n "$searches" ]; then
            # The search table comes after the main one; keep this dialect's figures for it.
            found=$(cat "$W/search.out")
            search_rows="$search_rows$(printf '%-11s %8s %9s %9s %9s %9s %9s' "$dialect" "$(field "$found" count)" "$(field "$found" p50_ms)" "$(field "$found" p90_ms)" "$(field "$found" p99_ms)" "$(field "$found" max_ms)" "$(field "$found" rows_per_search)")
"
            search_kinds="$search_kinds$(awk -v dialect="$dialect" '{
                for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                printf "%-11s %-22s %6s %9s %9s %9s %9s\n", dialect, v["kind"], v["count"],
                    v["p50_ms"], v["p99_ms"], v["max_ms"], v["rows_per_search"] }' "$W/search.kinds")
"
        fi
    fi
    if part reops; then
        # The same while a second snapshot replaces a complete replica (issue 14 point 3 with
        # a full replica to read and to pay from).
        again=$(end_to_end "$dialect" "$connection" "" ops again)
        loaded=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            n += v["requests"]; p += v["payments"]; if (v["status_p99_ms"] > s) s = v["status_p99_ms"];
            if (v["open_items_p99_ms"] > o) o = v["open_items_p99_ms"]
            if (v["pay_p99_ms"] > q) q = v["pay_p99_ms"] }
            END { printf "requests=%d payments=%d status_p99_ms=%.2f open_items_p99_ms=%.2f pay_p99_ms=%.2f", n, p, s, o, q }' "$W/ops_loaded.out")
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "second snapshot into the core" "$(field "$again" rows_per_second)" "$(field "$again" seconds)" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "status p99 ms, storing it" "$(field "$loaded" status_p99_ms)" "-" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "open-items p99 ms, storing it" "$(field "$loaded" open_items_p99_ms)" "-" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "payment p99 ms, storing it" "$(field "$loaded" pay_p99_ms)" "-" "-"
        echo "            ($(field "$loaded" requests) requests of each and $(field "$loaded" payments) payments while storing the second snapshot)"
    fi
    if part ops; then
        # The core's answers, idle and while it stores the snapshot (issue 14 point 3).
        end_to_end "$dialect" "$connection" "" ops >/dev/null
        loaded=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            n += v["requests"]; p += v["payments"]; if (v["status_p99_ms"] > s) s = v["status_p99_ms"];
            if (v["open_items_p99_ms"] > o) o = v["open_items_p99_ms"]
            if (v["pay_p99_ms"] > q) q = v["pay_p99_ms"] }
            END { printf "requests=%d payments=%d status_p99_ms=%.2f open_items_p99_ms=%.2f pay_p99_ms=%.2f", n, p, s, o, q }' "$W/ops_loaded.out")
        idle=$(cat "$W/ops_idle.out")
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "status p99 ms, idle" "$(field "$idle" status_p99_ms)" "-" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "open-items p99 ms, idle" "$(field "$idle" open_items_p99_ms)" "-" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "status p99 ms, storing snapshot" "$(field "$loaded" status_p99_ms)" "-" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "open-items p99 ms, storing snapshot" "$(field "$loaded" open_items_p99_ms)" "-" "-"
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "payment p99 ms, storing snapshot" "$(field "$loaded" pay_p99_ms)" "-" "-"
        echo "            ($(field "$loaded" requests) requests of each and $(field "$loaded" payments) payments while storing: the worst p99 of runs of 200)"
    fi
    if part postings; then
        direct=$("$BIN/ml_bench" apply "$dialect" "$connection" "$POSTINGS" 256)
        printf '%-11s %-34s %14s %10s %12s\n' "$dialect" "apply, direct (256 per txn)" "$(field "$direct" postings_per_second)" "$(field "$direct" seconds)" "-"
        through=$(stand_in "$dialect" "$connection" postings "$POSTINGS" 1024)
        printf '%-11s %-34s %14s %10s %9s kB\n' "$dialect" "postings via agent, acked" "$(field "$through" postings_per_second)" "$(field "$through" seconds)" "$(field "$through" agent_peak_kb)"
    fi
done

if [ -n "$search_rows" ]; then
    echo
    echo "search round trip (admin request -> core -> CURVE -> agent -> database -> back; ms)"
    printf '%-11s %8s %9s %9s %9s %9s %9s\n' "dialect" "searches" "p50" "p90" "p99" "max" "rows"
    printf '%s' "$search_rows"
    echo
    printf '%-11s %-22s %6s %9s %9s %9s %9s\n' "dialect" "kind" "count" "p50" "p99" "max" "rows"
    printf '%s' "$search_kinds"
fi
