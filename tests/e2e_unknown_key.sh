#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# A client with an unknown CURVE key is refused and sees nothing: the handshake fails, no
# message reaches the core, and the core's state does not change. A key the certificate
# store knows but no firm owns gets ERROR 401 and nothing else.
. "$(dirname "$0")/lib_e2e.sh"
setup 10 50
start_core
"$ML_BIN/matterlink-agent" keygen --out "$W/stranger.cert" >/dev/null
hello=$(python3 -c '
import struct
def s(t): b = t.encode(); return struct.pack(">H", len(b)) + b
print((b"\xaaM\x01\x01" + struct.pack(">H", 1) + s("x") + struct.pack(">H", 1) + s("epoch") + struct.pack(">Q", 9)).hex())')

out=$("$ML_BIN/ml_raw_peer" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
    --cert "$W/stranger.cert_secret" --send "$hello" --timeout 1500)
[ "$out" = "NO REPLY" ] || fail "an unknown key got an answer: $out"

# A real agent with an unknown key: it keeps greeting, hears nothing, says why.
write_agent_config "$W/stranger.cfg" "$MATTER_CONNECTION" "$W/stranger.cert_secret"
"$ML_BIN/matterlink-agent" run -c "$W/stranger.cfg" >>"$W/stranger.log" 2>&1 &
AGENT_PID=$!
wait_for 20 "the stranger agent to report silence" grep -q "is this agent's key registered" "$W/stranger.log"
[ "$(status_field complete)" = 0 ] || fail "the core's replica changed"
[ "$(status_field invoice_count)" = 0 ] || fail "the core received invoices"
[ "$(status_field agent_online)" = False ] || fail "the stranger counts as the firm's agent"
grep -q "firm acme" "$W/core.log" && fail "the core attributed the stranger to a firm"

# Known to the certificate store, registered to no firm: ERROR 401.
cp "$W/stranger.cert" "$W/agents/orphan.cert"
wait_for 10 "the orphan key to be refused with 401" sh -c "'$ML_BIN/ml_raw_peer' --endpoint tcp://127.0.0.1:$PORT --server-key '$CORE_KEY' --cert '$W/stranger.cert_secret' --send '$hello' --timeout 1000 | grep -q 'REPLY ERROR 401'"
[ "$(status_field invoice_count)" = 0 ] || fail "the core's replica changed"
log "PASS"
