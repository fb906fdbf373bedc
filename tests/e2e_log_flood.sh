#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# No peer can flood the core's log: 1,000 malformed messages from an agent, and hundreds of
# refused handshakes, leave a few lines each and then a count of what was suppressed. Every bad
# message is accounted for: the lines written plus the suppressed count make 1,000.
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
start_core
out=$("$ML_BIN/ml_raw_peer" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
    --cert "$W/agent.cert_secret" --send deadbeef --count 1000 --timeout 5000)
log "1000 malformed messages sent: $(echo "$out" | tr '\n' ' ')"
summary="firm acme: [0-9]* more like this suppressed"
wait_for 20 "the count of suppressed lines" grep -q "$summary" "$W/core.log"
written=$(grep -c "firm acme: malformed message refused" "$W/core.log")
suppressed=$(grep -o "$summary" "$W/core.log" | awk '{ n += $3 } END { print n }')
log "malformed: $written lines written, $suppressed suppressed"
[ "$written" -le 6 ] || fail "$written lines for one peer's malformed messages"
[ $((written + suppressed)) -eq 1000 ] || fail "written $written + suppressed $suppressed is not 1000"

# Refused handshakes: 300 connections that speak NULL, one after another.
python3 - "$PORT" <<'PY'
import socket, sys
greeting = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31
for _ in range(300):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(greeting)
    try:
        s.settimeout(2)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
PY
wait_for 20 "the count of suppressed handshake lines" grep -q "\(127.0.0.1\|an unknown peer\): [0-9]* more like this suppressed" "$W/core.log"
handshakes=$(grep -c "handshake refused" "$W/core.log")
log "300 refused handshakes: $handshakes lines written; $(grep "127.0.0.1: [0-9]* more like this" "$W/core.log" | tail -n 1)"
[ "$handshakes" -le 12 ] || fail "$handshakes lines for 300 refused handshakes"
kill -0 "$CORE_PID" || fail "the core died"
log "PASS"
