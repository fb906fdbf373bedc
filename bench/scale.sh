#!/bin/bash
# The scale benchmark of issue 14, point 5: many firms against one or more core nodes, over
# loopback.
#   - firms: ml_simagent plays FIRMS firms (each its own CURVE key pair, registered with
#     `matterlink-core register-agent` as a real firm is, each its own DEALER), sends HELLO and
#     a snapshot of ITEMS invoices per firm, then stays connected (heartbeats), applies the
#     postings it receives exactly once by posting UUID in memory and sends their changes;
#   - load: ml_scaleload makes card payments (admin op `payment`, the operator's) across the
#     firms at RATE per second, WINDOW requests in flight, through the core's built-in test
#     processor (`processor` / `kind = test`: in memory, one call at a time on its worker
#     thread, at most 100,000 keys per core run: one per payment with a saved card);
#   - figures: time until every replica is complete, the core's RSS idle, with the firms
#     connected and after the payments (per connected firm) [<= 200 KB per idle firm],
#     payments per second [>= 1,000/s per node] and payment to posted p99 [<= 100 ms], beside
#     the same run's baselines: an idle core's RSS, and the simulated agent against a stand-in
#     core (ml_simagent standin: no store) for its own snapshot time and posting rate.
# Usage: bench/scale.sh [FIRMS] [SECONDS]   (defaults 1000 firms, 20 s of payments)
#   env: NODES (core nodes sharing the store and the firms, 1; more need a core with leases,
#        core/node in docs/config.md: firm i greets node i mod NODES, its payments go there),
#        STORE (the core store's connection, default a new SQLite file; "postgresql": a
#        PostgreSQL server of its own, tests/servers.sh),
#        ITEMS (invoices per firm, 200), RATE (payments/s offered, 1000 x NODES),
#        WINDOW (payments in flight, 64), SIM_SNAPSHOTS (at most this many firms greet or
#        snapshot at once; default 1: main's core refuses a SNAPSHOT-END that arrives while
#        another firm's snapshot rows are kept, ERROR 500, and the agent greets again only
#        after 30 s, so firms starting all at once take minutes; 0 = no limit, as
#        independent agents, once the ingest thread of branch h-ingest is in: bench/RESULTS.md), RESULTS (file to add the table to, bench/RESULTS.md; "-" for none),
#        PG_STATEMENTS (with STORE=postgresql: where the store's server time went during the
#        payments, pg_stat_statements with nested statements, the top 25 by total time
#        written to this file).
# Builds in build-bench (optimized, no sanitizers), as bench/run.sh does.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FIRMS=${1:-1000}
SECONDS_PAY=${2:-20}
NODES=${NODES:-1}
ITEMS=${ITEMS:-200}
RATE=${RATE:-$((1000 * NODES))}
WINDOW=${WINDOW:-64}
export SIM_SNAPSHOTS=${SIM_SNAPSHOTS:-1}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
# Several nodes (issue 14 point 4, docs/multinode.md) share one store and the firms: firm i
# greets node i mod NODES, which takes its lease, and its payments go to that node's admin
# socket. They need a core that knows core/node (the leases).
if [ "$NODES" -lt 1 ] || { [ "$NODES" -gt 1 ] && ! grep -q 'lease_seconds' docs/config.md; }; then
    echo "scale.sh: NODES=$NODES needs several core nodes sharing a store (core/node, docs/multinode.md), not in this tree; run NODES=1" >&2
    exit 2
fi
# The store all nodes share: SQLite by default (one file; SQLite serialises the writers), or
# STORE, a core store connection (docs/config.md); STORE=postgresql starts a PostgreSQL server
# of its own (tests/servers.sh) and makes the store's database there.
STORE=${STORE:-}
STORE_LABEL="store ${STORE:-SQLite}"
[ "$STORE" != postgresql ] || STORE_LABEL="store on PostgreSQL (a server of its own)"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j 2 --target matterlink-core matterlink-cli ml_simagent ml_scaleload >/dev/null
BIN=$ROOT/build-bench
W=$(mktemp -d /tmp/matterlink_scale_XXXXXX)
PIDS=""
STORE_SERVER=0
cleanup() {
    for pid in $PIDS; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "$STORE_SERVER" = 0 ] || sh tests/servers.sh stop "$W/servers" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
if [ "$STORE" = postgresql ]; then
    grep -q storedb tests/servers.sh || { echo "scale.sh: this tree has no PostgreSQL store" >&2; exit 2; }
    chmod 755 "$W" # the server runs as its service user and keeps its data under $W
    STORE_SERVER=1
    if [ -n "${PG_STATEMENTS:-}" ]; then
        export ML_PG_SETTINGS="${ML_PG_SETTINGS:-} -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    fi
    sh tests/servers.sh start "$W/servers" >/dev/null
    STORE=$(sh tests/servers.sh storedb "$W/servers" matterlink_scale)
    pg_store() { (. "$W/servers/servers.env" && psql -X -q -A -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d matterlink_scale -c "$1"); }
fi
free_port() { python3 "$ROOT/tests/free_port.py"; }
field() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | tail -1; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
# wait_line SECONDS FILE PATTERN: until FILE holds PATTERN, or fail after SECONDS
wait_line() {
    end=$(($(date +%s) + $1))
    until grep -q "$3" "$2" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || { echo "scale.sh: no '$3' in $2 after $1 s" >&2; return 1; }
        sleep 0.2
    done
}

"$BIN/matterlink-core" keygen --out "$W/core.cert" >/dev/null
CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/core.cert")
"$BIN/ml_simagent" keygen "$W/firms" "$FIRMS"
# One DEALER (and its connection) per firm on each side.
ulimit -n 20000 2>/dev/null || true

# Baselines: the simulated agent against a stand-in core that stores nothing, twice: postings
# as fast as they are answered (the simulated agent's ceiling), then at RATE.
stand_in() { # seconds rate output
    port=$(free_port)
    "$BIN/ml_simagent" standin "tcp://127.0.0.1:$port" "$W/core.cert_secret" "$FIRMS" "$1" \
        "$WINDOW" "$2" >"$3" 2>>"$W/standin.err" &
    standin_pid=$!
    PIDS="$PIDS $standin_pid"
    "$BIN/ml_simagent" run "tcp://127.0.0.1:$port" "$CORE_KEY" "$W/firms" "$FIRMS" "$ITEMS" \
        >>"$W/sim_standin.out" 2>>"$W/sim_standin.err" &
    sim_pid=$!
    PIDS="$PIDS $sim_pid"
    wait "$standin_pid" || true
    kill -TERM "$sim_pid"
    wait "$sim_pid" || true
}
stand_in 5 0 "$W/standin_max.out"
stand_in 10 "$RATE" "$W/standin.out"

# The real core nodes: the store, the test processor, default heartbeat (5 s) and window (8);
# with NODES > 1 each has its own id, port and admin socket, and one key pair for them all.
mkdir -p "$W/agents"
endpoints=""
admins=""
for node in $(seq 1 "$NODES"); do
    port=$(free_port)
    endpoints="$endpoints${endpoints:+,}tcp://127.0.0.1:$port"
    admins="$admins${admins:+,}ipc://$W/admin$node.sock"
    {
        cat <<CFG
core
    endpoint = tcp://127.0.0.1:$port
    certificate = $W/core.cert_secret
    agents = $W/agents
CFG
        if [ "$NODES" -gt 1 ]; then
            printf '    node = n%s\n    advertise = tcp://127.0.0.1:%s\n' "$node" "$port"
        fi
        cat <<CFG
store
    connection = "${STORE:-sqlite:$W/core.db}"
admin
    endpoint = ipc://$W/admin$node.sock
processor
    kind = test
CFG
    } >"$W/core$node.cfg"
done
start=$(date +%s.%N)
for index in $(seq -f %04g 1 "$FIRMS"); do
    "$BIN/matterlink-core" register-agent -c "$W/core1.cfg" --firm "f$index" --name "Firm $index" \
        --cert "$W/firms/f$index.cert" >/dev/null
done
register_seconds=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $start))")
core_pids=""
for node in $(seq 1 "$NODES"); do
    "$BIN/matterlink-core" run -c "$W/core$node.cfg" --log-level notice 2>"$W/core$node.log" &
    core_pids="$core_pids $!"
    PIDS="$PIDS $!"
done
for node in $(seq 1 "$NODES"); do
    until "$BIN/matterlink" --admin "ipc://$W/admin$node.sock" status >/dev/null 2>&1; do sleep 0.1; done
done
# Summed over the nodes: RSS, peak RSS (VmHWM), CPU ticks (user + system).
sum() { total=0; for pid in $core_pids; do total=$((total + $($1 "$pid"))); done; echo "$total"; }
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
rss_idle=$(sum rss)
"$BIN/ml_simagent" run "$endpoints" "$CORE_KEY" "$W/firms" "$FIRMS" "$ITEMS" \
    >"$W/sim.out" 2>"$W/sim.err" &
sim_pid=$!
PIDS="$PIDS $sim_pid"
wait_line 1800 "$W/sim.out" replicas_complete
# The cores' CPU with every firm connected and idle (heartbeats, the 1 s tick), over 5 s.
ticks=$(sum cpu_ticks)
sleep 5
idle_cpu=$(python3 -c "print('%.1f' % (($(sum cpu_ticks) - $ticks) * 100 / $(getconf CLK_TCK) / 5))")
rss_connected=$(sum rss)
"$BIN/ml_scaleload" setup "ipc://$W/admin1.sock" "$FIRMS" "$W/payers.txt"
if [ -n "${PG_STATEMENTS:-}" ]; then
    pg_store "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset ()" >/dev/null
fi
"$BIN/ml_scaleload" pay "$admins" "$W/payers.txt" "$ITEMS" "$RATE" "$SECONDS_PAY" \
    "$WINDOW" >"$W/pay.out" 2>"$W/pay.err" || { cat "$W/pay.err" >&2; }
if [ -n "${PG_STATEMENTS:-}" ]; then
    pg_store "SELECT round (total_exec_time::numeric, 1) AS total_ms, calls,
        round ((total_exec_time / calls)::numeric, 4) AS ms_each, toplevel,
        left (regexp_replace (query, '\s+', ' ', 'g'), 160) AS query
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" >"$PG_STATEMENTS"
fi
rss_after=$(sum rss)
rss_peak=$(sum hwm)
# The store's word: every firm complete (status on node 1 lists every firm).
"$BIN/matterlink" --admin "ipc://$W/admin1.sock" --json status >"$W/status.json"
complete=$(python3 -c "import json; print(sum(1 for f in json.load(open('$W/status.json'))['firms'] if f['complete']))")
# With several nodes, the firms each serves (status's served_by).
served=$(python3 -c "import collections, json; c = collections.Counter(f.get('served_by') or '-' for f in json.load(open('$W/status.json'))['firms']); print(', '.join('%s %d' % kv for kv in sorted(c.items())))")
failed_ends=$(cat "$W"/core*.log | grep -c "failed while finishing a snapshot" || true)
kill -TERM "$sim_pid"
wait "$sim_pid" || true
for pid in $core_pids; do
    kill -TERM "$pid"
    wait "$pid" || true
done
[ -s "$W/pay.out" ] || { echo "scale.sh: the load client printed nothing" >&2; exit 1; }

grep '^standin_complete' "$W/standin.out" >"$W/standin_complete.out" || true
grep '^standin postings' "$W/standin.out" >"$W/standin_postings.out" || true
grep '^standin postings' "$W/standin_max.out" >"$W/standin_ceiling.out" || true
C=$W/standin_complete.out
S=$W/standin_postings.out
M=$W/standin_ceiling.out
P=$W/pay.out
per_firm=$(((rss_connected - rss_idle) / FIRMS))
table=$(
    cat <<TABLE
### bench/scale.sh: $FIRMS firms, $NODES core node(s) ($(date -u +%Y-%m-%d), $(nproc) cores)

$FIRMS simulated firms (ml_simagent, one process, one CURVE DEALER per firm, $ITEMS invoices
each; firms greeting or snapshotting at once: ${SIM_SNAPSHOTS/#0/any number}), $STORE_LABEL, built-in
test processor; $(field "$P" sent) card payments offered at $RATE/s for ${SECONDS_PAY} s with $WINDOW
in flight (ml_scaleload, admin op \`payment\`). Registration of the firms (register-agent, one
process each): $register_seconds s. Firms served by each node (status, \`served_by\`): $served.
Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).

| Figure | Target | Core | Baseline (same run) |
|---|---|---|---|
| Every replica complete (from the agents' start) | | $(field "$W/sim.out" seconds) s ($complete of $FIRMS complete; $failed_ends SNAPSHOT-END refused with 500) | $(field "$C" seconds) s against the stand-in |
| Core RSS (all nodes) idle / firms connected / after payments (peak) | | $rss_idle / $rss_connected / $rss_after ($rss_peak) KB | idle core: $rss_idle KB |
| Core memory per connected idle firm | <= 200 KB | $per_firm KB | |
| Core CPU (all nodes) with every firm connected, idle (5 s) | | $idle_cpu % of a core | |
| Payments per second across firms | >= 1,000/s per node | $(field "$P" payments_per_second)/s ($(field "$P" approved) approved of $(field "$P" sent)) | the simulated agent answers up to $(field "$M" postings_per_second) postings/s (stand-in, $WINDOW in flight) |
| POSTINGs the agent got again (redelivered after 10 s without a result) | | $(field "$W/sim.out" repeats) repeats; $(field "$W/sim.out" postings) postings applied | |
| Payment reply p50 / p99 | | $(field "$P" reply_p50_ms) / $(field "$P" reply_p99_ms) ms | |
| Payment to posted p50 / p99 / max (of those posted within 60 s) | p99 <= 100 ms | $(field "$P" posted_p50_ms) / $(field "$P" posted_p99_ms) / $(field "$P" posted_max_ms) ms ($(field "$P" posted) posted) | stand-in's POSTING to POSTING-RESULT at $RATE/s: p50 / p99 $(field "$S" p50_ms) / $(field "$S" p99_ms) ms |
TABLE
)
echo "$table"
echo "simulated agent: $(tail -1 "$W/sim.out")"
echo "load client: $(cat "$P")"
if [ "$RESULTS" != - ]; then
    printf '\n%s\n' "$table" >>"$RESULTS"
fi
