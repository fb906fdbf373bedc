#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# Malformed and out-of-state messages from an authenticated agent get an ERROR reply and a
# log line, and change nothing.
. "$(dirname "$0")/lib_e2e.sh"
setup 10 50
start_core
peer() {
    "$ML_BIN/ml_raw_peer" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
        --cert "$W/agent.cert_secret" --send "$1" --timeout 3000
}
expect() {
    out=$(peer "$2")
    case "$out" in
        "$3"*) log "$1: $out" ;;
        *) fail "$1: expected '$3', got '$out'" ;;
    esac
}
before=$(sqlite3 "$W/core.db" "SELECT COUNT(*) FROM open_item; SELECT cursor, complete FROM replica_state; SELECT COUNT(*) FROM posting")
expect "garbage" "deadbeef" "REPLY ERROR 400 not an MLP message"
expect "unknown id" "aa4d0163" "REPLY ERROR 400 unknown message id"
expect "truncated HELLO" "aa4d01010001" "REPLY ERROR 400 message is shorter"
expect "trailing bytes" "aa4d010900" "REPLY ERROR 400 bytes left over"
expect "item count too big" "aa4d010300000000000000010000ffff" "REPLY ERROR 400 too many items"
expect "changes without a session" "aa4d0105000000000000000100000000000000000000000000000005""00000000" "REPLY ERROR 409"
expect "welcome from an agent" "aa4d01020000000100000001000000000000000000" "REPLY ERROR 400 that message goes from the core"
expect "ping without a session" "aa4d0109" "REPLY ERROR 409"
after=$(sqlite3 "$W/core.db" "SELECT COUNT(*) FROM open_item; SELECT cursor, complete FROM replica_state; SELECT COUNT(*) FROM posting")
[ "$before" = "$after" ] || fail "the core's store changed"
grep -q "malformed message refused" "$W/core.log" || fail "no log line for the malformed messages"
kill -0 "$CORE_PID" || fail "the core died"
log "PASS"
