#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# Two connections with one firm's key: while the firm's agent is alive, a second connection
# with its key is refused (ERROR 423) with a warning naming both peers, and the agent keeps the
# route. When the first is silent (stopped) or gone (killed), the newcomer takes over, so a
# restarted agent is never locked out.
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
start_core
start_agent
wait_for 30 "the replica" core_has_all_invoices
# A HELLO like the agent's (same database epoch, a high-water above the core's cursor), so a
# newcomer that takes over does not make the core ask for a new snapshot.
# The contract version is the database's (the core refuses a HELLO of another version).
epoch=$(matter_sql "SELECT db_epoch FROM ml_contract")
version=$(matter_sql "SELECT contract_version FROM ml_contract")
hello=$(python3 -c '
import struct, sys
def s(t): b = t.encode(); return struct.pack(">H", len(b)) + b
print((b"\xaaM\x01\x01" + struct.pack(">H", 1) + s("x") + struct.pack(">H", int(sys.argv[2])) + s(sys.argv[1]) + struct.pack(">Q", 1 << 40)).hex())' "$epoch" "$version")
peer() {
    "$ML_BIN/ml_raw_peer" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
        --cert "$W/agent.cert_secret" --send "$hello" --timeout 3000
}

# The agent is alive: the copy of its key is refused, and the agent keeps its session.
out=$(peer)
case "$out" in "REPLY ERROR 423 "*) ;; *) fail "a second connection with the key got: $out" ;; esac
grep "warning: firm acme: second connection with the firm's agent key refused (peer 127.0.0.1, routing id [0-9A-F]*): the firm's agent at 127.0.0.1 (routing id [0-9A-F]*)" "$W/core.log" >/dev/null ||
    fail "no warning naming both peers"
grep -q "takes over" "$W/core.log" && fail "the route was handed over"
[ "$(status_field agent_online)" = True ] || fail "the agent lost its session"
invoice=$(matter_sql "SELECT invoice_id FROM invoice WHERE status = 'open' LIMIT 1")
matter_sql "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = $invoice"
wait_for 20 "the agent's change to arrive" replica_matches

# The agent is silent (stopped, its connection open): after three heartbeats the newcomer takes
# over, with a warning naming both.
kill -STOP "$AGENT_PID"
welcomed() { peer | grep -q "REPLY WELCOME"; }
wait_for 20 "a newcomer to take over from the silent agent" welcomed
grep -q "takes over the firm's route from 127.0.0.1 (routing id [0-9A-F]*), silent for" "$W/core.log" ||
    grep -q "agent silent for .* session closed" "$W/core.log" || fail "no log line for the silent agent"
# The newcomer is gone (its connection closed): the agent, back, takes over at once.
kill -CONT "$AGENT_PID"
wait_for 20 "the agent to take the route back" sh -c "grep -q 'takes over .*whose connection closed' '$W/core.log'"
wait_for 30 "the agent's session" replica_matches

# Killed and restarted: the new process is not locked out.
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
start_agent
matter_sql "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = $invoice"
wait_for 20 "the restarted agent's change to arrive" replica_matches
grep -q "error: core says 423" "$W/agent.log" && fail "the restarted agent was refused"
log "PASS"
