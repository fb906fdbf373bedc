#!/bin/bash
# dialects: sqlite postgresql mariadb
# The agent is killed (SIGKILL) after its database commit and before its acknowledgement.
# After a restart, redelivery writes no second receipt and the core shows "posted".
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
MATTERLINK_TEST_CRASH=after-commit start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 12.34) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')

agent_dead() { ! kill -0 "$AGENT_PID" 2>/dev/null; }
wait_for 30 "the agent to die after its commit" agent_dead
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "commit did not happen before the crash"
[ "$(posting_field "$uuid" status)" = delivered ] || fail "core should still wait for the result"

start_agent
wait_for 40 "redelivery after the restart" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "second receipt written"
[ "$(matter_sql "SELECT SUM(a.amount_minor) FROM receipt_allocation a JOIN receipt r USING (receipt_id) WHERE r.posting_uuid = '$uuid'")" = 1234 ] ||
    fail "allocation changed"
log "PASS"
