#!/bin/bash
# dialects: sqlite postgresql mariadb
# A payment is posted once, with allocations summing exactly to the amount, oldest first,
# and the matter database's new balances come back to the core as changes.
. "$(dirname "$0")/lib_e2e.sh"
setup 30 300
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
[ "$(status_field trust_ledger_count)" = "$(matter_trust_count)" ] ||
    fail "trust balances missing from the replica"

client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 3 ORDER BY client_number LIMIT 1")
[ -n "$client" ] || fail "no client with three open invoices in the sample"
# The oldest two invoices in the matter system's own order; pay all of the first and one
# cent of the second, so the allocation must span exactly those two.
oldest=$(matter_sql "SELECT invoice_number || ' ' || balance_minor FROM $OPEN_INVOICES WHERE client_number = '$client' ORDER BY invoice_date, invoice_number LIMIT 2")
first_invoice=$(echo "$oldest" | sed -n 1p | cut -d' ' -f1)
first_balance=$(echo "$oldest" | sed -n 1p | cut -d' ' -f2)
second_invoice=$(echo "$oldest" | sed -n 2p | cut -d' ' -f1)
second_balance=$(echo "$oldest" | sed -n 2p | cut -d' ' -f2)
amount_minor=$((first_balance + 1))
amount=$(printf '%d.%02d' $((amount_minor / 100)) $((amount_minor % 100)))
log "paying $amount for $client: $first_invoice in full, then 0.01 of $second_invoice"

out=$(cli --json pay --firm acme --client "$client" --amount "$amount" --payer-name "Pat Doe" \
    --payer-email pat@example.com --message "AR note for the ledger") || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 30 "posting $uuid to be posted" posting_is "$uuid" posted

[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "not exactly one receipt"
[ "$(matter_sql "SELECT SUM(a.amount_minor) FROM receipt_allocation a JOIN receipt r USING (receipt_id) WHERE r.posting_uuid = '$uuid'")" = "$amount_minor" ] ||
    fail "allocations do not sum to the amount"
lines=$(matter_sql "SELECT i.invoice_number || ' ' || a.amount_minor FROM receipt_allocation a JOIN receipt r USING (receipt_id) JOIN invoice i USING (invoice_id) WHERE r.posting_uuid = '$uuid' ORDER BY a.receipt_allocation_id")
expected=$(printf '%s %s\n%s 1' "$first_invoice" "$first_balance" "$second_invoice")
[ "$lines" = "$expected" ] || fail "allocation not oldest first: got '$lines', expected '$expected'"
[ "$(matter_sql "SELECT status || ' ' || balance_minor FROM invoice WHERE invoice_number = '$first_invoice'")" = "paid 0" ] ||
    fail "first invoice not paid off"
[ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$second_invoice'")" = $((second_balance - 1)) ] ||
    fail "second invoice balance wrong"
[ "$(matter_sql "SELECT ar_message FROM receipt WHERE posting_uuid = '$uuid'")" = "AR note for the ledger" ] ||
    fail "A/R message did not travel"

# The matter system's new balances reach the core: the paid invoice leaves, the other shows
# its new balance, and nothing is counted as pending any more.
paid_off_at_core() {
    items=$(cli --json open-items --firm acme --client "$client")
    echo "$items" | python3 -c "
import json, sys
items = {i['invoice_number']: i for i in json.load(sys.stdin)['items']}
assert '$first_invoice' not in items
second = items['$second_invoice']
assert second['balance_minor'] == $((second_balance - 1)) and second['pending_minor'] == 0
"
}
wait_for 20 "the core's replica to show the new balances" paid_off_at_core
[ "$(status_field posted_posting_count)" = 1 ] || fail "core does not count one posted posting"
log "PASS"
