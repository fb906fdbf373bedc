# Shared by the end-to-end tests: each test sources this file, gets a fresh working
# directory with a reference matter database, keys and configuration, and real core and
# agent processes on loopback. Everything started is stopped on exit, pass or fail.
#   ML_BIN          build directory with matterlink-core, matterlink-agent, matterlink
#   ML_SOURCE       source directory
#   ML_DIALECT      matter database dialect: sqlite (default), postgresql or mariadb
#   ML_SERVERS_DIR  for postgresql and mariadb: where tests/servers.sh started the servers
set -u
ML_BIN=${ML_BIN:?set ML_BIN to the build directory}
ML_SOURCE=${ML_SOURCE:?set ML_SOURCE to the source directory}
ML_DIALECT=${ML_DIALECT:-sqlite}
W=$(mktemp -d /tmp/matterlink_e2e_XXXXXX)
CORE_PID=
AGENT_PID=
PROCESSOR_PID=
WEB_PID=
SMTP_PID=
MATTER_DATABASE=
STORE_DATABASE=
ML_TEST_NAME="$(basename "$0" .sh) [$ML_DIALECT]"

# Open invoices of the matter database with their client, in SQL all three dialects run.
OPEN_INVOICES="(SELECT i.invoice_id AS source_id, i.invoice_number, i.invoice_date, i.balance_minor,
    c.client_number FROM invoice i JOIN matter m ON m.matter_id = i.matter_id
    JOIN client c ON c.client_id = m.client_id WHERE i.status = 'open' AND i.balance_minor > 0) o"

log() { printf "%s %s: %s\n" "$(date +%T.%N)" "$ML_TEST_NAME" "$*"; }

fail() {
    log "FAIL: $*"
    for file in "$W"/*.log; do
        [ -f "$file" ] || continue
        echo "----- $(basename "$file") (last 40 lines)"
        tail -n 40 "$file"
    done
    exit 1
}

# Pause a process with SIGSTOP and return once every thread of it has stopped: the signal is
# delivered asynchronously, and a thread still running when kill returns can take a lock or
# a request after it (a fresh-clone CI run of e2e_failover: a node took the store's write
# lock after the test had checked it held none). Fails the test after 1 s.
all_threads_stopped() {
    local stat
    for stat in /proc/"$1"/task/*/stat; do
        [ "$(sed 's/.*) //' "$stat" 2>/dev/null | cut -d' ' -f1)" = T ] || return 1
    done
}
pause_process() {
    kill -STOP "$1" || fail "cannot pause process $1"
    for _ in $(seq 200); do all_threads_stopped "$1" && return 0; sleep 0.005; done
    fail "process $1 did not stop within 1 s of SIGSTOP"
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
    stop_process "$WEB_PID"
    stop_process "$PROCESSOR_PID"
    stop_process "$AGENT_PID"
    stop_process "$CORE_PID"
    stop_process "$SMTP_PID"
    if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$W"/*.log >/dev/null 2>&1; then
        log "FAIL: a sanitizer reported a problem"
        grep -h -A 30 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$W"/*.log | head -n 80
        status=1
    fi
    drop_matter_database
    drop_store_database
    # A test that needed its own servers (to restart them) started them under $W.
    [ -f "$W/servers/servers.env" ] && sh "$ML_SOURCE/tests/servers.sh" stop "$W/servers" >/dev/null 2>&1
    # ML_E2E_KEEP=1 keeps a failed test's directory (logs, stores) to look into.
    if [ "$status" != 0 ] && [ "${ML_E2E_KEEP:-0}" = 1 ]; then
        log "kept $W"
    else
        rm -rf "$W"
    fi
    exit $status
}
trap cleanup EXIT

# A free port below the ephemeral range (tests/free_port.py says why).
free_port() {
    python3 "$ML_SOURCE/tests/free_port.py"
}

# wait_for SECONDS DESCRIPTION COMMAND...: run COMMAND until it succeeds or time runs out.
# For wait_for, which runs its command again each time: whether a command's output is
# exactly WANT (output_is WANT COMMAND...), or a number above FLOOR (output_above FLOOR
# COMMAND...). A "$(...)" in wait_for's own arguments would be run once, before the wait.
output_is() {
    local want=$1
    shift
    [ "$("$@")" = "$want" ]
}
output_above() {
    local floor=$1
    shift
    [ "$("$@")" -gt "$floor" ]
}
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

# Run SQL in the matter database; rows come out with '|' between columns.
matter_sql() {
    case $ML_DIALECT in
        sqlite) sqlite3 -batch -noheader -cmd ".timeout 10000" "$W/matter.db" "$@" ;;
        postgresql)
            psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$MATTER_DATABASE" -At -F '|' -q \
                -v ON_ERROR_STOP=1 -c "$@"
            ;;
        mariadb)
            mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot -N -B \
                --init-command="SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')" \
                "$MATTER_DATABASE" -e "$@" | tr '\t' '|'
            ;;
    esac
}

# Run SQL in a matter-database session of its own, in the background, and set LOCKER to its
# process id: for tests that hold a lock while the agent works. Arguments: the PostgreSQL
# statements, the MariaDB statements.
background_session() {
    case $ML_DIALECT in
        postgresql)
            psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$MATTER_DATABASE" -q -c "$1" >/dev/null &
            ;;
        mariadb)
            mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot "$MATTER_DATABASE" -e "$2" >/dev/null &
            ;;
        *) fail "no background sessions on $ML_DIALECT" ;;
    esac
    LOCKER=$!
}

drop_matter_database() {
    [ -n "$MATTER_DATABASE" ] || return 0
    case $ML_DIALECT in
        postgresql)
            psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -q \
                -c "DROP DATABASE IF EXISTS $MATTER_DATABASE WITH (FORCE)" >/dev/null 2>&1
            ;;
        mariadb)
            mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot -e "DROP DATABASE IF EXISTS $MATTER_DATABASE" 2>/dev/null
            ;;
    esac
    MATTER_DATABASE=
}

# The core's store: on PostgreSQL whenever the matter database is (a database of its own in
# the same test server), so the suites run the core on both of its backends without running
# twice; SQLite (a file in $W) for the sqlite and mariadb dialects. Sets STORE_CONNECTION.
create_store_database() {
    if [ "$ML_DIALECT" = postgresql ]; then
        . "$ML_SERVERS_DIR/servers.env"
        STORE_DATABASE="mlstore_$(basename "$W" | tr -c 'A-Za-z0-9\n' '_' | tr 'A-Z' 'a-z')"
        STORE_CONNECTION=$(sh "$ML_SOURCE/tests/servers.sh" storedb "$ML_SERVERS_DIR" "$STORE_DATABASE") ||
            fail "create the core's store database"
    else
        STORE_CONNECTION="Driver=SQLite3;Database=$W/core.db;StepAPI=1;FKSupport=1;Timeout=5000"
    fi
}

drop_store_database() {
    [ -n "$STORE_DATABASE" ] || return 0
    psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -q \
        -c "DROP DATABASE IF EXISTS $STORE_DATABASE WITH (FORCE)" >/dev/null 2>&1
    STORE_DATABASE=
}

# Run SQL in the core's store (either engine); rows come out with '|' between columns.
core_sql() {
    if [ -n "$STORE_DATABASE" ]; then
        psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$STORE_DATABASE" -q -A -t -X \
            -v ON_ERROR_STOP=1 -c "$1"
    else
        sqlite3 -batch -noheader -cmd ".timeout 10000" "$W/core.db" "$1"
    fi
}

# Make the matter database with sample data. Arguments: clients invoices.
create_matter_database() {
    case $ML_DIALECT in
        sqlite)
            sh "$ML_SOURCE/sql/sample.sh" --dialect sqlite --db "$W/matter.db" --clients "$1" \
                --invoices "$2" >/dev/null || fail "sample database"
            MATTER_CONNECTION="Driver=SQLite3;Database=$W/matter.db;StepAPI=1;FKSupport=1;Timeout=5000"
            ;;
        postgresql | mariadb)
            [ -f "${ML_SERVERS_DIR:-}/servers.env" ] || fail "no database servers: run tests/servers.sh start DIR and set ML_SERVERS_DIR"
            . "$ML_SERVERS_DIR/servers.env"
            MATTER_DATABASE="ml_$(basename "$W" | tr -c 'A-Za-z0-9\n' '_' | tr 'A-Z' 'a-z')"
            MATTER_CONNECTION=$(sh "$ML_SOURCE/tests/servers.sh" createdb "$ML_SERVERS_DIR" "$ML_DIALECT" "$MATTER_DATABASE") ||
                fail "create the matter database"
            if [ "$ML_DIALECT" = postgresql ]; then port=$ML_PG_PORT; else port=$ML_MARIADB_PORT; fi
            sh "$ML_SOURCE/sql/sample.sh" --dialect "$ML_DIALECT" --port "$port" \
                --database "$MATTER_DATABASE" --clients "$1" --invoices "$2" >/dev/null ||
                fail "sample database"
            ;;
        *) fail "unknown dialect $ML_DIALECT" ;;
    esac
}
cli() { "$ML_BIN/matterlink" --admin "ipc://$W/admin.sock" "$@"; }

# A JSON field of the first firm in 'status', e.g. status_field complete
status_field() { cli --json status | python3 -c "import json,sys; print(json.load(sys.stdin)['firms'][0]['$1'])"; }
posting_field() { cli --json posting "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['posting']['$2'])"; }

# Set up the matter database, keys and configuration. Arguments: clients invoices.
setup() {
    create_matter_database "${1:-30}" "${2:-300}"
    create_store_database
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
    connection = "$STORE_CONNECTION"
admin
    endpoint = ipc://$W/admin.sock
CFG
    write_agent_config "$W/agent.cfg" "$MATTER_CONNECTION" "$W/agent.cert_secret"
    "$ML_BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm acme --name "Acme LLP" \
        --cert "$W/agent.cert" >/dev/null || fail "register agent"
}

# write_agent_config FILE CONNECTION_STRING SECRET_CERT
write_agent_config() {
    cat >"$1" <<CFG
agent
    certificate = $3
database
    dialect = $ML_DIALECT
    connection = "$2"
    batch_rows = 100
    poll_interval_ms = 100
core
    endpoint = tcp://127.0.0.1:$PORT
    public_key = "$CORE_KEY"
CFG
}

# A real SMTP server (python3-aiosmtpd) on a free loopback port, keeping what it receives in
# $W/mail (NAME.eml as received, NAME.json as Python's e-mail parser reads it), and a "mail"
# section in the core's configuration that sends through it. Before start_core.
start_smtp() {
    mkdir -p "$W/mail"
    /usr/bin/python3 "$ML_SOURCE/tests/smtp_server.py" --dir "$W/mail" >"$W/smtp.port" 2>>"$W/smtp.log" &
    SMTP_PID=$!
    wait_for 10 "the SMTP server" test -s "$W/smtp.port"
    cat >>"$W/core.cfg" <<CFG
mail
    smtp_url = "smtp://127.0.0.1:$(cat "$W/smtp.port")"
    starttls = no
    from = payments@matterlink.test
    from_name = "Acme LLP payments"
    poll_ms = 200
    retry_base_ms = 200
CFG
}

# The number of mails received whose decoded subject, recipient and body match a Python
# expression over m (the NAME.json object), e.g. mails_where '"receipt" in m["subject"]'.
mails_where() {
    python3 - "$W/mail" "$1" <<'PY'
import glob, json, os, sys
count = 0
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    m = json.load(open(path))
    if eval(sys.argv[2], {}, {"m": m}):
        count += 1
print(count)
PY
}

# The firm's deposit accounts at the core, matching the sample matter database's: OP-001
# (OPERATING) and TR-001 (TRUST), in USD.
add_accounts() {
    cli --json account add --firm acme --number OP-001 --type OPERATING --currency USD \
        --merchant-account acct_operating >/dev/null || fail "operating account"
    cli --json account add --firm acme --number TR-001 --type TRUST --currency USD \
        --merchant-account acct_trust >/dev/null || fail "trust account"
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
# The firm's agent has a session with the core (searches can reach it).
agent_online() { [ "$(status_field agent_online)" = True ]; }

# The number of open invoices the matter database has (what the core should hold).
matter_open_count() { matter_sql "SELECT COUNT(*) FROM $OPEN_INVOICES"; }
matter_trust_count() { matter_sql "SELECT COUNT(DISTINCT matter_id) FROM trust_entry"; }

core_has_all_invoices() {
    [ "$(status_field complete)" = 1 ] && [ "$(status_field invoice_count)" = "$(matter_open_count)" ]
}

posting_is() { [ "$(posting_field "$1" status)" = "$2" ]; }

# The core's replica equals the matter database: the same open invoices with the same
# balances (compared as sorted "number balance" lines).
replica_matches() {
    core=$(cli --json open-items --firm acme | python3 -c "import json,sys; print('\n'.join(sorted('%s %d' % (i['invoice_number'], i['balance_minor']) for i in json.load(sys.stdin)['items'])))")
    matter=$(matter_sql "SELECT invoice_number || ' ' || balance_minor FROM $OPEN_INVOICES" | sort)
    [ "$(status_field complete)" = 1 ] && [ "$core" = "$matter" ]
}

# The payer portal: the core's api socket and the portal's public URL (a free port in
# WEB_PORT, unless the test chose one), for core.cfg before start_core.
portal_config() {
    WEB_PORT=${WEB_PORT:-$(free_port)}
    cat >>"$W/core.cfg" <<CFG
api
    endpoint = ipc://$W/api.sock
portal
    public_url = http://127.0.0.1:$WEB_PORT
CFG
}

# start_web [KEY = VALUE ...]: matterlink-web on 127.0.0.1:WEB_PORT in front of the core's
# api socket, with more keys of its "web" section if given (WEB_CORE_TIMEOUT_MS and
# WEB_LOG_LEVEL change two defaults); waits until it serves.
start_web() {
    {
        printf 'web\n    listen = 127.0.0.1:%s\n    core_endpoint = ipc://%s/api.sock\n' "$WEB_PORT" "$W"
        printf '    core_timeout_ms = %s\n' "${WEB_CORE_TIMEOUT_MS:-5000}"
        for line in "$@"; do printf '    %s\n' "$line"; done
    } >"$W/web.cfg"
    "$ML_BIN/matterlink-web" run -c "$W/web.cfg" --log-level "${WEB_LOG_LEVEL:-info}" >"$W/web.log" 2>&1 &
    WEB_PID=$!
    web_serving() { grep -q "serving the payer portal" "$W/web.log"; }
    wait_for 10 "matterlink-web to serve" web_serving
}

# link_token EMAIL PATH: waits for a mail to EMAIL with a PATH?token= link (set-password,
# confirm-email) and prints the newest such token.
link_token() {
    wait_for 20 "a $2 link in a mail to $1" output_above 0 mails_where \
        "\"$1\" in m[\"rcpt_tos\"] and \"/$2?token=\" in (m[\"body\"] or \"\")"
    python3 - "$W/mail" "$1" "$2" <<'PY'
import glob, json, os, re, sys
found = []
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    m = json.load(open(path))
    hit = re.search(r"/" + re.escape(sys.argv[3]) + r"\?token=([A-Za-z0-9_-]{43})", m["body"] or "")
    if hit and sys.argv[2] in m["rcpt_tos"]:
        found.append((os.path.getmtime(path), hit.group(1)))
print(max(found)[1] if found else "")
PY
}

# Signed-in actors for the web's api socket (needs start_smtp and portal_config). Each sets
# SIGNED_IN to the sign-in's reply (JSON) and fails the test if a step is refused.
#   staff_signed_in EMAIL ROLE: the operator invites a staff member, who accepts from the
#     mail and signs in (staff_session, csrf);
#   payer_signed_in PAYER_ID EMAIL: the operator gives a payer portal access, who sets a
#     password from the welcome mail and signs in (session, csrf).
api_request() { "$ML_BIN/ml_api_client" "ipc://$W/api.sock" "$1"; }
staff_signed_in() {
    cli staff invite --firm acme --email "$1" --name "Fuzz $2" --role "$2" >/dev/null ||
        fail "staff invite ($1)"
    local token
    token=$(link_token "$1" staff/accept)
    api_request '{"op": "staff-accept", "token": "'"$token"'", "password": "fuzzy horse battery"}' |
        grep -q '"ok":true' || fail "staff-accept ($1)"
    SIGNED_IN=$(api_request '{"op": "staff-sign-in", "email": "'"$1"'", "password": "fuzzy horse battery"}')
    echo "$SIGNED_IN" | grep -q '"staff_session"' || fail "staff-sign-in ($1): $SIGNED_IN"
}
payer_signed_in() {
    cli payer access on "$1" >/dev/null || fail "payer access on ($2)"
    local token
    token=$(link_token "$2" set-password)
    api_request '{"op": "portal-password-set", "token": "'"$token"'", "password": "fuzzy payer battery"}' |
        grep -q '"ok":true' || fail "portal-password-set ($2)"
    SIGNED_IN=$(api_request '{"op": "portal-sign-in", "email": "'"$2"'", "password": "fuzzy payer battery", "client": "127.0.0.1"}')
    echo "$SIGNED_IN" | grep -q '"session"' || fail "portal-sign-in ($2): $SIGNED_IN"
}

# After hostile input (WHAT carried it): the core is still up and answering, and no card
# number the input carried is in its log.
core_survived() {
    kill -0 "$CORE_PID" 2>/dev/null || fail "the core died"
    if grep -q 4242424242424242 "$W/core.log"; then
        grep -n 4242424242424242 "$W/core.log" | head -5 >&2
        fail "a card number $1 carried is in the core's log"
    fi
    wait_for 10 "the core to answer status" cli status
}
