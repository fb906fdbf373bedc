#!/bin/bash
# dialects: postgresql mariadb
# A slow database cannot hang the agent: while another transaction holds the invoice's row
# lock longer than database/statement_timeout_ms, applying a posting times out, nothing is
# half-written, the agent reconnects, and the posting posts once the lock is gone.
. "$(dirname "$0")/lib_e2e.sh"
setup 10 100
sed -i 's/    poll_interval_ms = 100/    poll_interval_ms = 100\n    statement_timeout_ms = 1000/' "$W/agent.cfg"
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' ORDER BY invoice_date, invoice_number LIMIT 1")
background_session \
    "BEGIN; SELECT 1 FROM invoice WHERE invoice_number = '$invoice' FOR UPDATE; SELECT pg_sleep(6); COMMIT;" \
    "START TRANSACTION; SELECT 1 FROM invoice WHERE invoice_number = '$invoice' FOR UPDATE; DO SLEEP(6); COMMIT;"
sleep 1 # the lock is taken
out=$(cli --json pay --firm acme --client "$client" --amount 1.00) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 15 "the agent to give up on the blocked statement" grep -q "reconnecting" "$W/agent.log"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 0 ] || fail "written while blocked"
wait "$LOCKER"
wait_for 40 "the posting to post after the lock is gone" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "not one receipt"
log "PASS"
