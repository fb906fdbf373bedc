#!/bin/bash
# dialects: sqlite postgresql
# Staff requests for a firm reach its owner node (docs/multinode.md, "Staff and web requests").
# Three core nodes share one store; the firm's agent is served by node 2 (then node 3). A staff
# search and a staff payment sent to node 1's admin socket (the operator) and API socket (a
# staff member's session, as matterlink-web sends it), and a search page of matterlink-web
# in front of node 1, succeed: the search is forwarded to the
# owner (over CURVE to node 2's tcp:// forward socket, over node 3's ipc:// one), the payment
# is served by node 1 from the shared store and posted by the owner. The owner stopped
# (SIGSTOP), a forwarded search gets a clear error by its deadline; the owner killed, the
# firm moves to node 3 and the same requests to node 1 succeed again. 'matterlink-agent check'
# tests every node and names the one that does not answer. The shared store is SQLite, or
# PostgreSQL in the postgresql run (with the matter database there too).
. "$(dirname "$0")/lib_e2e.sh"

LEASE=3
PIDS=()
create_matter_database 4 16
create_store_database
mkdir -p "$W/agents" "$W/mail"
/usr/bin/python3 "$ML_SOURCE/tests/smtp_server.py" --dir "$W/mail" >"$W/smtp.port" 2>>"$W/smtp.log" &
SMTP_PID=$!
wait_for 10 "the SMTP server" test -s "$W/smtp.port"
WEB_PORT=$(free_port)
for n in 1 2 3; do
    "$ML_BIN/matterlink-core" keygen --out "$W/core$n.cert" >/dev/null || fail "core keygen"
    eval "KEY$n=\$(sed -n 's/^ *public-key = \"\(.*\)\"/\1/p' \"\$W/core$n.cert\")"
    eval "PORT$n=\$(free_port)"
done
# Node 2 takes forwarded requests on tcp:// (CURVE), node 3 on a socket file; node 1 takes
# none (it only forwards, known to the others by the key it records in the store).
FORWARD1=
FORWARD2="tcp://127.0.0.1:$(free_port)"
FORWARD3="ipc://$W/forward3.sock"
for n in 1 2 3; do
    eval "port=\$PORT$n forward=\$FORWARD$n"
    cat >"$W/core$n.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$port
    certificate = $W/core$n.cert_secret
    agents = $W/agents
    heartbeat_ms = 500
    redelivery_ms = 2000
    node = n$n
    advertise = tcp://127.0.0.1:$port
    lease_seconds = $LEASE
$([ -n "$forward" ] && echo "    forward = $forward")
store
    connection = "$STORE_CONNECTION"
admin
    endpoint = ipc://$W/admin$n.sock
api
    endpoint = ipc://$W/api$n.sock
portal
    public_url = http://127.0.0.1:$WEB_PORT
mail
    smtp_url = "smtp://127.0.0.1:$(cat "$W/smtp.port")"
    starttls = no
    from = payments@matterlink.test
    poll_ms = 200
    retry_base_ms = 200
    outbox_key = $W/outbox.key
CFG
done
"$ML_BIN/matterlink-agent" keygen --out "$W/agent.cert" >/dev/null || fail "agent keygen"
"$ML_BIN/matterlink-core" register-agent -c "$W/core1.cfg" --firm acme --name "Acme LLP" \
    --cert "$W/agent.cert" >/dev/null || fail "register agent"
# The agent starts at node 2, then tries node 3, and node 1 last.
cat >"$W/agent.cfg" <<CFG
agent
    certificate = $W/agent.cert_secret
database
    dialect = $ML_DIALECT
    connection = "$MATTER_CONNECTION"
    batch_rows = 100
    poll_interval_ms = 100
core
    endpoint = tcp://127.0.0.1:$PORT2
    public_key = "$KEY2"
    others = "tcp://127.0.0.1:$PORT3 $KEY3, tcp://127.0.0.1:$PORT1 $KEY1"
CFG

node_cli() {
    local n=$1
    shift
    "$ML_BIN/matterlink" --admin "ipc://$W/admin$n.sock" "$@"
}
cli() { node_cli 1 "$@"; }
admin1() { "$ML_BIN/ml_api_client" "ipc://$W/admin1.sock" "$1"; }
api1() { "$ML_BIN/ml_api_client" "ipc://$W/api1.sock" "$1"; }
# matterlink-web in front of node 1's API socket: a staff member's search page, signed in.
web_search() {
    local jar="$W/cookies" code token
    rm -f "$jar"
    token=$(curl -s -c "$jar" "http://127.0.0.1:$WEB_PORT/staff/sign-in" |
        sed -n 's/.*name="form_token" value="\([^"]*\)".*/\1/p')
    code=$(curl -s -o "$W/sign-in.html" -w '%{http_code}' -c "$jar" -b "$jar" \
        -H "Origin: http://127.0.0.1:$WEB_PORT" --data-urlencode "form_token=$token" \
        --data-urlencode email=bob@acme.test \
        --data-urlencode "password=correct horse billing" "http://127.0.0.1:$WEB_PORT/staff/sign-in")
    [ "$code" = 303 ] || fail "web sign-in answered $code: $(head -c 2000 "$W/sign-in.html")"
    curl -s -b "$jar" "http://127.0.0.1:$WEB_PORT/staff/pay/search?by=client-number&text=$client&target=invoices&go=1" \
        >"$W/search.html"
    grep -q "INV-" "$W/search.html" || fail "the web's search through node 1: $(head -c 3000 "$W/search.html")"
}
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
owner_is() { [ "$(core_sql "SELECT owner FROM firm_lease WHERE firm_id = 'acme' AND expires_at > $(now_ms)")" = "$1" ]; }
online_at() { [ "$(node_cli "$1" --json status | json 'd["firms"][0]["agent_online"]')" = True ]; }
cleanup_nodes() {
    for pid in "${PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null
        stop_process "$pid"
    done
}
trap 'rc=$?; cleanup_nodes; (exit $rc); cleanup' EXIT

for n in 1 2 3; do
    "$ML_BIN/matterlink-core" run -c "$W/core$n.cfg" --log-level info >>"$W/core$n.log" 2>&1 &
    eval "NODE$n=$!"
    PIDS+=($!)
done
for n in 1 2 3; do wait_for 15 "node $n's admin socket" node_cli $n status; done
add_accounts
"$ML_BIN/matterlink-agent" run -c "$W/agent.cfg" --log-level info >>"$W/agent.log" 2>&1 &
PIDS+=($!)
wait_for 30 "the replica" replica_complete
wait_for 15 "node 2 to serve acme" owner_is n2
wait_for 15 "the agent's session at node 2" online_at 2

# check: every node answers (the owner: the agent holds the route; the others: send it there).
out=$("$ML_BIN/matterlink-agent" check -c "$W/agent.cfg" 2>&1) || fail "agent check: $out"
echo "$out" | grep -q "core nodes: 3 of 3 accepted this agent" || fail "agent check, 3 nodes: $out"
for n in 1 3; do
    eval "port=\$PORT$n"
    echo "$out" | grep -q "core OK: tcp://127.0.0.1:$port accepted this agent's key; another core node serves the firm now (tcp://127.0.0.1:$PORT2)" ||
        fail "agent check did not report node $n: $out"
done

# A billing staff member of Acme, signed in through node 1's API socket.
cli staff invite --firm acme --email bob@acme.test --name "Bob Billing" --role billing >/dev/null ||
    fail "staff invite"
api1 '{"op": "staff-accept", "token": "'"$(link_token bob@acme.test staff/accept)"'", "password": "correct horse billing"}' |
    grep -q '"ok":true' || fail "staff accept"
bob=$(api1 '{"op": "staff-sign-in", "email": "bob@acme.test", "password": "correct horse billing"}' |
    json 'd["staff_session"] + " " + d["csrf"]') || fail "staff sign-in"
session=${bob% *} csrf=${bob#* }
client=$(matter_sql "SELECT client_number FROM client ORDER BY client_number" | head -1)
[ -n "$client" ] || fail "no client in the matter database"

# The requests, all to node 1: searches (need the agent: forwarded) and payments (served
# from the shared store, posted by the owner). Arguments: the owner's node number.
requests_to_node1() {
    local out posting
    out=$(cli --json search --firm acme --by client-number "$client") || fail "admin search via node 1: $out"
    [ "$(echo "$out" | json 'len(d["items"]) > 0')" = True ] || fail "admin search: $out"
    out=$(api1 '{"op": "search", "staff_session": "'"$session"'", "by": "client-number", "text": "'"$client"'"}')
    [ "$(echo "$out" | json 'd["ok"] and len(d["items"]) > 0')" = True ] || fail "staff search via node 1's API: $out"
    grep -q "firm acme: request forwarded to its owner, node n$1" "$W/core1.log" ||
        fail "node 1 did not forward to node $1"
    out=$(cli --json pay --firm acme --client "$client" --amount 0.01) || fail "admin pay via node 1: $out"
    posting=$(echo "$out" | json 'd["posting_uuid"]') || fail "admin pay: $out"
    wait_for 15 "the operator's posting" posting_is "$posting" posted
    out=$(api1 '{"op": "pay", "staff_session": "'"$session"'", "csrf": "'"$csrf"'", "client": "'"$client"'", "amount": "1.00"}')
    posting=$(echo "$out" | json 'd["posting_uuid"]') || fail "staff pay via node 1's API: $out"
    wait_for 15 "the staff member's posting" posting_is "$posting" posted
}
requests_to_node1 2
log "node 1 forwarded searches to node 2 (CURVE) and took payments that node 2 posted"
# A staff member's association (a search, then a write by the owner) through node 1: made
# once, and the staff audit records the ask once (by node 1, not again by the owner).
out=$(api1 '{"op": "payer-add", "staff_session": "'"$session"'", "csrf": "'"$csrf"'", "name": "Pat Doe", "email": "pat@example.com"}')
pat=$(echo "$out" | json 'd["payer"]["payer_id"]') || fail "payer-add via node 1: $out"
out=$(api1 '{"op": "association-add", "staff_session": "'"$session"'", "csrf": "'"$csrf"'", "payer_id": '"$pat"', "level": "client", "number": "'"$client"'"}')
[ "$(echo "$out" | json 'd["association"]["client_number"]')" = "$client" ] || fail "association-add via node 1: $out"
[ "$(cli --json staff audit --firm acme | json 'len([e for e in d["entries"] if e["op"] == "association-add"])')" = 1 ] ||
    fail "the association's ask is not in the staff audit once: $(cli --json staff audit --firm acme)"
ln -s "$W/api1.sock" "$W/api.sock"
start_web
web_search
log "matterlink-web's staff search through node 1 was answered by node 2"

# A forwarded request is never forwarded again: node 3, which does not serve acme, answers a
# search that came to its forward socket with its own refusal naming the owner.
out=$("$ML_BIN/ml_api_client" "$FORWARD3" '{"op": "search", "firm": "acme", "by": "client-number", "text": "'"$client"'"}' admin)
echo "$out" | grep -q "firm acme is served by core node n2 (its agent is connected there)" ||
    fail "a forwarded search was not refused by a node that does not serve the firm: $out"
grep -q "request forwarded" "$W/core3.log" && fail "node 3 forwarded a forwarded request"
# Node 2's tcp:// forward socket takes only nodes' keys: a CURVE client with a key of its own
# gets no answer, and node 2 logs the refusal.
out=$(ML_API_CLIENT_SERVER_KEY=$KEY2 ML_API_CLIENT_TIMEOUT_MS=1500 "$ML_BIN/ml_api_client" "$FORWARD2" \
    '{"op": "status"}' admin 2>&1) && fail "node 2's forward socket answered a stranger: $out"
wait_for 5 "node 2 to log the refused key" grep -q "forward handshake refused from .*is no core node's" "$W/core2.log"

# The owner stopped: a forwarded search gets a clear error by its deadline (1 s + 3 s).
pause_process "$NODE2"
started=$(now_ms)
out=$(admin1 '{"op": "search", "firm": "acme", "by": "client-number", "text": "'"$client"'", "deadline_ms": 1000}')
echo "$out" | grep -q "served by core node n2, which did not answer the forwarded request within 4000 ms" ||
    fail "a stopped owner's search: $out"
[ $(($(now_ms) - started)) -lt 8000 ] || fail "the error came after $(($(now_ms) - started)) ms"
log "a stopped owner: 'did not answer' after $(($(now_ms) - started)) ms"

# The owner killed: the firm moves to node 3, and node 1 forwards there (its ipc socket).
kill -KILL "$NODE2"
kill -CONT "$NODE2" 2>/dev/null
wait_for $((LEASE + 10)) "node 3 to serve acme" owner_is n3
wait_for 15 "the agent's session at node 3" online_at 3
requests_to_node1 3
web_search
log "after the failover node 1 forwarded searches to node 3 and its payments were posted"

# The owner checks a forwarded request's actor as its own socket's (node 3's socket file, as
# a node forwards to it): a staff member's search runs; without a live staff session, or as
# the operator on the API socket, it does not.
out=$("$ML_BIN/ml_api_client" "$FORWARD3" '{"op": "search", "staff_session": "'"$session"'", "by": "client-number", "text": "'"$client"'"}' api)
[ "$(echo "$out" | json 'd["ok"] and len(d["items"]) > 0')" = True ] || fail "a forwarded staff search: $out"
for request in '"staff_session": "'"${session%?}x"'", "by": "client-number"' '"firm": "acme", "by": "client-number"'; do
    out=$("$ML_BIN/ml_api_client" "$FORWARD3" '{"op": "search", '"$request"', "text": "'"$client"'"}' api)
    [ "$(echo "$out" | json 'd["ok"]')" = False ] && ! echo "$out" | grep -q '"items"' ||
        fail "a forwarded API search ran without a staff session: $out"
done
log "the owner checked forwarded requests' actors"

out=$("$ML_BIN/matterlink-agent" check -c "$W/agent.cfg" --timeout 2 2>&1) && fail "agent check with a node down passed: $out"
echo "$out" | grep -q "core node tcp://127.0.0.1:$PORT2: unreachable" || fail "agent check did not name the dead node: $out"
echo "$out" | grep -q "core nodes: 2 of 3 accepted this agent" || fail "agent check, one node down: $out"
log "agent check named the node that does not answer"
