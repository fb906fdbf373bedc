#!/bin/bash
# dialects: sqlite postgresql mariadb
# The core restarts (SIGKILL) while a posting is undelivered: it is delivered after the
# restart. A core restart under a connected agent also heals: the agent greets again and
# the session resumes without a new snapshot.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
stop_agent
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 5.00) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
[ "$(posting_field "$uuid" status)" = pending ] || fail "posting should be pending with no agent"

kill -9 "$CORE_PID"
wait "$CORE_PID" 2>/dev/null
CORE_PID=
start_core
[ "$(posting_field "$uuid" status)" = pending ] || fail "posting lost across the core restart"
start_agent
wait_for 40 "delivery after the core restart" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "not one receipt"

# Restart the core under a connected agent; a payment made afterwards still posts, and the
# agent resumed where it was (no second snapshot).
snapshots_before=$(grep -c "snapshot sent" "$W/agent.log")
kill -9 "$CORE_PID"
wait "$CORE_PID" 2>/dev/null
CORE_PID=
start_core
out=$(cli --json pay --firm acme --client "$client" --amount 1.00) || fail "pay refused: $out"
second=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 40 "delivery to the re-greeted agent" posting_is "$second" posted
[ "$(grep -c "snapshot sent" "$W/agent.log")" = "$snapshots_before" ] || fail "the agent re-sent a snapshot"
grep -q "session resumed" "$W/agent.log" || fail "the agent did not resume its session"
log "PASS"
