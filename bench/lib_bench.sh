# shellcheck shell=bash
# The set-up bench/web.sh and bench/staff.sh share, sourced by them (bash): an optimized
# build, a work directory that is cleaned up with every process started, a PostgreSQL matter
# database with bench/run.sh's sample, and the real SMTP server, core and agent on 127.0.0.1
# with the firm "bench" replicated. The caller sets INVOICES and CLIENTS, and runs from the
# top of the tree.

BENCH_NAME=bench/$(basename "$0")

# Build in build-bench (optimized, no sanitizers); BIN is where the binaries are.
bench_build() {
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build-bench -j "$(nproc)" >build-bench/build.log 2>&1 || {
        cat build-bench/build.log
        exit 1
    }
    BIN=$ROOT/build-bench
}

# A new work directory W (PREFIX names it), removed at exit with every process in PIDS and
# WEB_PID stopped; the logs' last lines are printed when the benchmark failed.
bench_workdir() { # PREFIX
    W=$(mktemp -d "/tmp/$1_XXXXXX")
    chmod 755 "$W" # the database server runs as its service user and keeps its data under $W
    PIDS=""
    WEB_PID=
    trap bench_cleanup EXIT
}
bench_cleanup() {
    status=$?
    set +e # stop everything, whatever fails
    if [ "$status" != 0 ]; then
        for log in "$W"/*.log; do
            [ -f "$log" ] && echo "----- $(basename "$log") (last 20 lines)" && tail -n 20 "$log"
        done
    fi
    # The web first, while the core still answers: requests it has read already would
    # each wait web/core_timeout_ms for a core that is gone. Then the rest, newest first.
    for pid in $WEB_PID $PIDS; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    sh tests/servers.sh stop "$W/servers" >/dev/null 2>&1
    rm -rf "$W"
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # SECONDS WHAT COMMAND...
    deadline=$(($(date +%s) + $1))
    what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "$BENCH_NAME: gave up waiting for $what; logs in $W" >&2
            trap - EXIT
            exit 1
        fi
        sleep 0.2
    done
}
staff() { "$BIN/matterlink" --admin "ipc://$W/admin.sock" "$@"; }

# The firm's matter database on PostgreSQL: INVOICES invoices of CLIENTS clients. Sets
# connection (the agent's) and psql (a function that runs psql on it).
bench_matter_db() {
    echo "PostgreSQL matter database: $INVOICES invoices, $CLIENTS clients"
    ML_PG_SETTINGS="-c shared_buffers=1GB" sh tests/servers.sh start "$W/servers" >/dev/null
    . "$W/servers/servers.env"
    connection=$(sh tests/servers.sh createdb "$W/servers" postgresql bench)
    sh sql/sample.sh --dialect postgresql --port "$ML_PG_PORT" --database bench --clients "$CLIENTS" \
        --invoices "$INVOICES" >/dev/null
    psql -c "VACUUM ANALYZE" >/dev/null
}
psql() { command psql -X -q -At -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d bench "$@"; }

# Keys, the SMTP server (tests/smtp_server.py, mails in $W/mail), the core's and the web's
# ports (PORT, WEB_PORT), and the three configurations: $W/core.cfg, $W/agent.cfg and
# $W/web.cfg, each ending in a section the caller may add lines to.
bench_configs() {
    "$BIN/matterlink-core" keygen --out "$W/core.cert" >/dev/null
    "$BIN/matterlink-agent" keygen --out "$W/agent.cert" >/dev/null
    CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/core.cert")
    mkdir -p "$W/agents" "$W/mail"
    /usr/bin/python3 tests/smtp_server.py --dir "$W/mail" >"$W/smtp.port" 2>"$W/smtp.log" &
    PIDS="$! $PIDS"
    wait_for 10 "the SMTP server" test -s "$W/smtp.port"
    PORT=$(free_port)
    WEB_PORT=$(free_port)
    cat >"$W/core.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$PORT
    certificate = $W/core.cert_secret
    agents = $W/agents
    readers = ${READERS:-2}
store
    connection = "sqlite:$W/core.db"
admin
    endpoint = ipc://$W/admin.sock
api
    endpoint = ipc://$W/api.sock
portal
    public_url = http://127.0.0.1:$WEB_PORT
mail
    smtp_url = "smtp://127.0.0.1:$(cat "$W/smtp.port")"
    starttls = no
    from = payments@bench.example
    poll_ms = 100
CFG
    cat >"$W/agent.cfg" <<CFG
agent
    certificate = $W/agent.cert_secret
database
    dialect = postgresql
    connection = "$connection"
    batch_rows = 1000
    poll_interval_ms = 200
core
    endpoint = tcp://127.0.0.1:$PORT
    public_key = "$CORE_KEY"
CFG
    cat >"$W/web.cfg" <<CFG
web
    listen = 127.0.0.1:$WEB_PORT
    core_endpoint = ipc://$W/api.sock
    threads = $WEB_THREADS
    max_connections = 1024
    per_ip_connections = 1024
    core_timeout_ms = 30000
CFG
}

# Register the firm "bench" (extra register-agent arguments after LEVEL), start the core
# at log level LEVEL and the agent, and wait until the core's replica is complete.
bench_core_and_agent() { # LEVEL [REGISTER-ARGUMENTS...]
    level=$1
    shift
    "$BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm bench --name "Bench & Partners LLP" \
        --cert "$W/agent.cert" "$@" >/dev/null
    "$BIN/matterlink-core" run -c "$W/core.cfg" --log-level "$level" 2>>"$W/core.log" &
    PIDS="$! $PIDS"
    wait_for 30 "the core" staff status
    start=$(date +%s)
    "$BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level warning 2>>"$W/agent.log" &
    PIDS="$! $PIDS"
    wait_for 3600 "the core's replica" grep -q "replica complete" "$W/core.log"
    staff --json status | python3 -c "import json,sys; f = json.load(sys.stdin)['firms'][0]; print('The core holds %d open invoices and %d trust ledgers (snapshot in %d s).' % (f['invoice_count'], f['trust_ledger_count'], $(date +%s) - $start))"
}

# Start matterlink-web (WEB_PID) and wait until it serves.
bench_web() {
    "$BIN/matterlink-web" run -c "$W/web.cfg" >"$W/web.log" 2>&1 &
    WEB_PID=$!
    wait_for 10 "matterlink-web" grep -q "serving the payer portal" "$W/web.log"
}
