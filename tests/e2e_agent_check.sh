#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# 'matterlink-agent check' reaches the core (CURVE handshake and HELLO, with a deadline) and
# tells apart: OK, the core refused this agent's key (register it), no answer to the handshake
# (wrong pinned core key, or not a matterlink core), and unreachable.
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
start_core
check() { "$ML_BIN/matterlink-agent" check -c "$1" --timeout 3 >"$W/check.out" 2>&1; }
expect_check() {
    what=$1
    config=$2
    code=$3
    text=$4
    check "$config"
    got=$?
    log "$what: $(tr '\n' ' ' <"$W/check.out")"
    [ "$got" = "$code" ] || fail "$what: exit $got, not $code"
    grep -q "$text" "$W/check.out" || fail "$what: no '$text'"
}

# Success: the database and the core.
expect_check "registered, agent not running" "$W/agent.cfg" 0 "core OK: .* accepted this agent's key and its HELLO"
grep -q "matter database OK" "$W/check.out" || fail "the database was not reported"
# With the firm's agent running, the check's own connection is refused, which proves the key.
start_agent
wait_for 30 "the replica" core_has_all_invoices
expect_check "registered, agent running" "$W/agent.cfg" 0 "the firm's agent is connected now"
[ "$(status_field agent_online)" = True ] || fail "the check took the agent's route"
stop_agent

# A key the core does not know (not in its agents directory), and one no firm owns.
"$ML_BIN/matterlink-agent" keygen --out "$W/stranger.cert" >/dev/null
write_agent_config "$W/stranger.cfg" "$MATTER_CONNECTION" "$W/stranger.cert_secret"
expect_check "unknown key" "$W/stranger.cfg" 1 "the core refused this agent's key .*register-agent .*--cert $W/stranger.cert "
cp "$W/stranger.cert" "$W/agents/orphan.cert"
expect_check "key of no firm" "$W/stranger.cfg" 1 "the core refused this agent's key: .*no firm owns it.*register-agent"

# The wrong core key pinned: the handshake never completes.
"$ML_BIN/matterlink-core" keygen --out "$W/other-core.cert" >/dev/null
CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/other-core.cert") \
    write_agent_config "$W/wrong-key.cfg" "$MATTER_CONNECTION" "$W/agent.cert_secret"
expect_check "wrong pinned core key" "$W/wrong-key.cfg" 1 "no answer to the handshake .*the pinned core key (core/public_key) is wrong, or this is not a matterlink core"

# Something that is not a matterlink core: it accepts the connection and says nothing, so the
# check gives up at its deadline.
mute=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
connections = []
while True:
    connections.append(s.accept()[0])' "$mute" &
MUTE_PID=$!
trap 'status=$?; kill $MUTE_PID 2>/dev/null; (exit $status); cleanup' EXIT
PORT=$mute write_agent_config "$W/mute.cfg" "$MATTER_CONNECTION" "$W/agent.cert_secret"
wait_for 10 "the mute listener" python3 -c "import socket; socket.create_connection(('127.0.0.1', $mute))"
expect_check "not a matterlink core" "$W/mute.cfg" 1 "no answer to the handshake from tcp://127.0.0.1:$mute: the pinned core key"
kill $MUTE_PID

# Nothing listens at the endpoint.
PORT=$(free_port) write_agent_config "$W/nobody.cfg" "$MATTER_CONNECTION" "$W/agent.cert_secret"
expect_check "unreachable" "$W/nobody.cfg" 1 "unreachable: cannot connect to .*Connection refused"
log "PASS"
