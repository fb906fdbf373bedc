#!/bin/bash
# dialects: sqlite postgresql mariadb
# The same posting delivered twice produces one receipt: the matter system answers the
# second delivery with its stored result.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 10.00) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 30 "posting to be posted" posting_is "$uuid" posted
receipt=$(posting_field "$uuid" receipt_id)
receipts_before=$(matter_sql "SELECT COUNT(*) FROM receipt")
balance_before=$(matter_sql "SELECT SUM(balance_minor) FROM invoice")

cli resend "$uuid" >/dev/null || fail "resend refused"
delivered_twice() {
    [ "$(posting_field "$uuid" status)" = posted ] &&
        [ "$(cli --json posting "$uuid" | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin)["posting"]["history"] if e["status"] == "delivered"))')" = 2 ]
}
wait_for 30 "the second delivery to be answered" delivered_twice
[ "$(posting_field "$uuid" receipt_id)" = "$receipt" ] || fail "second answer names another receipt"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "second receipt written"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt")" = "$receipts_before" ] || fail "receipt count changed"
[ "$(matter_sql "SELECT SUM(balance_minor) FROM invoice")" = "$balance_before" ] || fail "balances changed"
grep -q "posting $uuid posted as receipt $receipt" "$W/agent.log" || fail "agent did not log the stored result"
log "PASS"
