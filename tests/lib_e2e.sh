# Shared by the end-to-end tests: each test sources this file, gets a fresh working
# directory with a reference matter database, keys and configuration, and real core and
# agent processes on loopback. Everything started is stopped on exit, pass or fail.
#   ML_BIN     build directory with matterlink-core, matterlink-agent, matterlink
#   ML_SOURCE  source directory
set -u
ML_BIN=${ML_BIN:?set ML_BIN to the build directory}
ML_SOURCE=${ML_SOURCE:?set ML_SOURCE to the source directory}
W=$(mktemp -d /tmp/matterlink_e2e_XXXXXX)
CORE_PID=
AGENT_PID=
ML_TEST_NAME=$(basename "$0" .sh)

log() { printf '%s: %s\n' "$ML_TEST_NAME" "$*"; }

fail() {
    log "FAIL: $*"
    for file in "$W"/*.log; do
        [ -f "$file" ] || continue
        echo "----- $(basename "$file") (last 40 lines)"
        tail -n 40 "$file"
    done
    exit 1
}

# Stop a process with SIGTERM (so sanitizers run their exit checks), SIGKILL after 10 s.
stop_process() {
    pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# On exit, pass or fail: stop what was started, and fail the test if a sanitizer reported
# anything in a daemon's log (the daemons run in the background, so nothing else would
# notice).
cleanup() {
    status=$?
    stop_process "$AGENT_PID"
    stop_process "$CORE_PID"
    if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$W"/*.log >/dev/null 2>&1; then
        log "FAIL: a sanitizer reported a problem"
        grep -h -A 30 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$W"/*.log | head -n 80
        status=1
    fi
    rm -rf "$W"
    exit $status
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS DESCRIPTION COMMAND...: run COMMAND until it succeeds or time runs out.
wait_for() {
    seconds=$1
    what=$2
    shift 2
    deadline=$(($(date +%s) + seconds))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$deadline" ] && fail "timed out after ${seconds}s waiting for: $what"
        sleep 0.1
    done
}

matter_sql() { sqlite3 -batch -noheader "$W/matter.db" "$@"; }
cli() { "$ML_BIN/matterlink" --admin "ipc://$W/admin.sock" "$@"; }

# A JSON field of the first firm in 'status', e.g. status_field complete
status_field() { cli --json status | python3 -c "import json,sys; print(json.load(sys.stdin)['firms'][0]['$1'])"; }
posting_field() { cli --json posting "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['posting']['$2'])"; }

# Set up the matter database, keys and configuration. Arguments: clients invoices.
setup() {
    sh "$ML_SOURCE/sql/sample.sh" --dialect sqlite --db "$W/matter.db" --clients "${1:-30}" \
        --invoices "${2:-300}" >/dev/null || fail "sample database"
    "$ML_BIN/matterlink-core" keygen --out "$W/core.cert" >/dev/null || fail "core keygen"
    "$ML_BIN/matterlink-agent" keygen --out "$W/agent.cert" >/dev/null || fail "agent keygen"
    CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/core.cert")
    PORT=$(free_port)
    mkdir -p "$W/agents"
    cat >"$W/core.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$PORT
    certificate = $W/core.cert_secret
    agents = $W/agents
    heartbeat_ms = ${ML_HEARTBEAT_MS:-1000}
    redelivery_ms = ${ML_REDELIVERY_MS:-3000}
store
    connection = "Driver=SQLite3;Database=$W/core.db;StepAPI=1;FKSupport=1;Timeout=5000"
admin
    endpoint = ipc://$W/admin.sock
CFG
    write_agent_config "$W/agent.cfg" "$W/matter.db" "$W/agent.cert_secret"
    "$ML_BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm acme --name "Acme LLP" \
        --cert "$W/agent.cert" >/dev/null || fail "register agent"
}

# write_agent_config FILE MATTER_DB SECRET_CERT
write_agent_config() {
    cat >"$1" <<CFG
agent
    certificate = $3
database
    dialect = sqlite
    connection = "Driver=SQLite3;Database=$2;StepAPI=1;FKSupport=1;Timeout=5000"
    batch_rows = 100
    poll_interval_ms = 100
core
    endpoint = tcp://127.0.0.1:$PORT
    public_key = "$CORE_KEY"
CFG
}

start_core() {
    "$ML_BIN/matterlink-core" run -c "$W/core.cfg" --log-level info >>"$W/core.log" 2>&1 &
    CORE_PID=$!
    wait_for 10 "core admin socket" cli status
}

start_agent() {
    "$ML_BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level info >>"$W/agent.log" 2>&1 &
    AGENT_PID=$!
}

stop_agent() {
    stop_process "$AGENT_PID"
    AGENT_PID=
}

stop_core() {
    stop_process "$CORE_PID"
    CORE_PID=
}

replica_complete() { [ "$(status_field complete)" = 1 ]; }

# The number of open invoices the matter database has (what the core should hold).
matter_open_count() { matter_sql "SELECT COUNT(*) FROM ml_open_items"; }

core_has_all_invoices() {
    [ "$(status_field complete)" = 1 ] && [ "$(status_field invoice_count)" = "$(matter_open_count)" ]
}

posting_is() { [ "$(posting_field "$1" status)" = "$2" ]; }
