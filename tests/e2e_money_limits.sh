#!/bin/bash
# dialects: sqlite postgresql
# One money limit (999 999 999 999 999 minor units, ML_MONEY_MAX_MINOR) is refused before
# anything is recorded or charged: a card is never charged for an amount no contract would
# post. A rejected posting is reallocated, and a rejected reallocation again, each try its
# own posting, until one posts; the chain shows in each posting's history.
. "$(dirname "$0")/lib_e2e.sh"
setup 30 300
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
add_accounts

client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 3 ORDER BY client_number LIMIT 1")
[ -n "$client" ] || fail "no client with three open invoices in the sample"
invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' ORDER BY invoice_number LIMIT 1")
payments() { core_sql "SELECT COUNT(*) FROM payment"; }
postings() { cli --json postings --firm acme | json 'len(d["postings"])'; }

# Above the limit: refused with the reason, nothing charged or recorded.
out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme \
    --invoice "$invoice=10,000,000,000,000.00" --payer-name "Pat Doe" --payer-email pat@example.com \
    --card-stdin 2>&1) && fail "a charge above the limit was accepted: $out"
echo "$out" | grep -q "999,999,999,999,999" || fail "the refusal does not say the limit: $out"
out=$(cli --json pay --firm acme --client "$client" --amount 10000000000000.00 2>&1) &&
    fail "a staff payment above the limit was accepted: $out"
echo "$out" | grep -q "999,999,999,999,999" || fail "the refusal does not say the limit: $out"
[ "$(payments)" = 0 ] || fail "a payment was recorded"
[ "$(postings)" = 0 ] || fail "a posting was recorded"
log "amounts above the limit are refused before any charge or posting"

# A staff payment on the client's oldest invoice, which the matter system then voids.
stop_agent
out=$(cli --json pay --firm acme --client "$client" --amount 0.50) || fail "pay: $out"
first=$(echo "$out" | json 'd["posting_uuid"]')
paid=$(echo "$out" | json 'd["lines"][0]["invoice_number"]')
others=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' AND invoice_number <> '$paid' ORDER BY invoice_number LIMIT 2")
second_invoice=$(echo "$others" | sed -n 1p)
third_invoice=$(echo "$others" | sed -n 2p)
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$paid'"
start_agent
wait_for 30 "the payment's posting to be rejected" posting_is "$first" rejected

# Reallocated to an invoice the matter system voids before the reallocation arrives.
stop_agent
out=$(cli --json reallocate "$first" --invoice "$second_invoice=0.50") || fail "reallocate: $out"
second=$(echo "$out" | json 'd["posting"]["posting_uuid"]')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$second_invoice'"
start_agent
wait_for 30 "the reallocation to be rejected" posting_is "$second" rejected

# The rejected reallocation is reallocated in turn, and posts.
out=$(cli --json reallocate "$second" --invoice "$third_invoice=0.50") || fail "reallocating the reallocation: $out"
third=$(echo "$out" | json 'd["posting"]["posting_uuid"]')
[ "$third" != "$second" ] && [ "$third" != "$first" ] || fail "a try reused a posting"
wait_for 30 "the second reallocation" posting_is "$third" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$third'")" = 1 ] ||
    fail "no receipt for the second reallocation"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid IN ('$first', '$second')")" = 0 ] ||
    fail "a rejected try has a receipt"
# The chain: each rejected try names the posting its money went to.
history() { cli --json posting "$1" | json '"\n".join(e["status"] + " " + (e["detail"] or "") for e in d["posting"]["history"])'; }
history "$first" | grep -q "^reallocated as $second" || fail "the payment does not name its reallocation: $(history "$first")"
history "$second" | grep -q "^reallocated as $third" || fail "the reallocation does not name the next: $(history "$second")"
cli --json reallocate "$first" --invoice "$third_invoice=0.50" >/dev/null 2>&1 && fail "reallocated twice"
cli --json reallocate "$third" --invoice "$third_invoice=0.50" >/dev/null 2>&1 && fail "reallocated a posted posting"
log "a rejected posting reallocated twice: each try its own posting, the chain in history"

# A card charge whose posting is rejected is refunded instead: the payer gets the money back,
# and nothing is reversed in the books, which never had it. Then it is not reallocated.
fourth_invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE invoice_number NOT IN ('$paid', '$second_invoice', '$third_invoice') ORDER BY invoice_number LIMIT 1")
stop_agent
out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$fourth_invoice=2.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin) || fail "charge: $out"
charge_posting=$(echo "$out" | json 'd["payment"]["charges"][0]["posting_uuid"]')
charge_key=$(echo "$out" | json 'd["payment"]["charges"][0]["charge_key"]')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$fourth_invoice'"
start_agent
wait_for 30 "the charge's posting to be rejected" posting_is "$charge_posting" rejected
before=$(postings)
out=$(cli --json refund "$charge_key") || fail "refunding the rejected charge: $out"
[ "$(echo "$out" | json 'd["reversal"]["status"]')" = approved ] || fail "the refund is not approved: $out"
[ "$(echo "$out" | json 'd["reversal"]["amount_minor"]')" = 200 ] || fail "the refund is not the whole 2.00: $out"
[ "$(postings)" = "$before" ] || fail "a refund of money the books never had made a posting"
cli --json reallocate "$charge_posting" --invoice "$third_invoice=2.00" >/dev/null 2>&1 &&
    fail "refunded money was reallocated as well"

# A firm's open balances may sum past 64 bits (the schema allows any BIGINT balance): status
# stays exact and says so, in JSON and for people.
big=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE invoice_number NOT IN ('$paid', '$second_invoice', '$third_invoice', '$fourth_invoice') ORDER BY invoice_number LIMIT 2" | tr '\n' ' ')
for number in $big; do
    matter_sql "UPDATE invoice SET total_minor = 9000000000000000000, balance_minor = 9000000000000000000 WHERE invoice_number = '$number'"
done
over_64() { [ "$(cli --json status | json 'd["firms"][0]["open_balance_over_64_bits"]')" = True ]; }
wait_for 30 "the huge balances to reach the core" over_64
cli status | grep -q "outstanding (beyond 64 bits)" || fail "status does not say the sum is beyond 64 bits: $(cli status)"
cli status | grep -q " 18[0-9]\{16\}\.[0-9][0-9] USD outstanding" || fail "status lost the sum's digits: $(cli status)"
log "status past 64 bits: $(cli status | grep outstanding)"
log "PASS"
