#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# Every handshake the core refuses leaves a line in its log at the default level, naming the
# peer and why: an unknown CURVE key, a NULL client, a PLAIN client. None gets an answer.
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
# The default log level (notice), not the tests' usual info.
"$ML_BIN/matterlink-core" run -c "$W/core.cfg" >>"$W/core.log" 2>&1 &
CORE_PID=$!
wait_for 10 "core admin socket" cli status
"$ML_BIN/matterlink-agent" keygen --out "$W/stranger.cert" >/dev/null
peer() {
    "$ML_BIN/ml_raw_peer" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
        --cert "$W/stranger.cert_secret" --send aa4d0109 --timeout 1000 "$@"
}
# A client that closes at once may be gone before the core reads its address.
refused() { grep -c "warning: handshake refused from \(127.0.0.1\|an unknown peer\): $1" "$W/core.log"; }
expect_refused() {
    what=$1
    pattern=$2
    shift 2
    before=$(refused "$pattern")
    out=$(peer "$@")
    [ "$out" = "NO REPLY" ] || fail "$what got an answer: $out"
    wait_for 10 "a log line for $what" output_above "$before" refused "$pattern"
    log "$what: $(grep "handshake refused" "$W/core.log" | tail -n 1)"
}
stranger=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/stranger.cert")
expect_refused "an unknown CURVE key" "CURVE key .* is not in the agents' certificate directory"
grep -qF "CURVE key $stranger is not" "$W/core.log" || fail "the line does not name the refused key"
# Which side sees the mechanisms differ first is a race: the core reports the mismatch, or the
# client's closing the connection in the middle of the handshake.
other="\(it does not use CURVE\|it closed the connection during the handshake\)"
expect_refused "a NULL client" "$other" --mechanism null
expect_refused "a PLAIN client" "$other" --mechanism plain
# The registered agent still connects.
start_agent
wait_for 30 "the registered agent's replica" core_has_all_invoices
log "PASS"
