#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# A client with an unknown CURVE key is refused and sees nothing: the handshake fails, no
# message reaches the core, and the core's state does not change. A key the certificate
# store knows but no firm owns gets ERROR 401 and nothing else. A key in two certificates
# of the directory (a copy made by hand) ends nothing, and register-agent refuses to give a
# registered key to a second firm.
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

# The registered agent's key copied, a second time the orphan's, and a file that is no
# certificate: the core says so once and goes on; the registered agent still connects.
cp "$W/agent.cert" "$W/agents/acme-copy.cert"
cp "$W/stranger.cert" "$W/agents/orphan-again.cert"
printf 'curve\n    public-key = "short"\n' >"$W/agents/broken.cert"
stop_agent
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
wait_for 10 "the core to log the copy" grep -q "hold the same key" "$W/core.log"
grep -q "broken.cert is not a public certificate" "$W/core.log" || fail "the broken certificate was not logged"
kill -0 "$CORE_PID" || fail "the core ended"
[ "$(grep -cF "hold the same key $(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$W/agent.cert")" "$W/core.log")" = 1 ] ||
    fail "the copy was not logged exactly once"
if "$ML_BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm beta --name "Beta LLP" \
    --cert "$W/agent.cert" >"$W/register.out" 2>&1; then
    fail "a registered key was given to a second firm"
fi
grep -q "is registered already" "$W/register.out" || fail "register-agent did not say why: $(cat "$W/register.out")"
[ ! -e "$W/agents/beta.cert" ] || fail "the refused registration left a certificate"
mkfifo "$W/fifo.cert"
timeout 10 "$ML_BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm beta --name "Beta LLP" \
    --cert "$W/fifo.cert" >"$W/register.out" 2>&1
[ $? = 1 ] || fail "register-agent with a FIFO for a certificate: $(cat "$W/register.out")"
grep -q "is not a regular file" "$W/register.out" || fail "register-agent did not say why: $(cat "$W/register.out")"
log "PASS"
