#!/bin/bash
# dialects: sqlite postgresql
# The matter database's driver reports a COMMIT of a posting as done when it was not (the
# test hook rolls the first one back and says success; PostgreSQL answers COMMIT in an
# aborted transaction with ROLLBACK and no error). The agent reads each result back after
# the commit and answers only what the database shows, so the core never records "posted"
# for a receipt that is not there: it delivers the posting again and it posts once.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
MATTERLINK_TEST_LOST_COMMITS=1 start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 12.34) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 60 "the posting to post after the lost commit" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] ||
    fail "posted at the core, but $(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'") receipts"
[ "$(matter_sql "SELECT SUM(a.amount_minor) FROM receipt_allocation a JOIN receipt r USING (receipt_id) WHERE r.posting_uuid = '$uuid'")" = 1234 ] ||
    fail "allocation wrong"
grep -q "test hook: this commit is rolled back" "$W/agent.log" || fail "the hook did not run"
grep -q "could not be read back after the commit" "$W/agent.log" || fail "the agent did not notice"
log "PASS"
