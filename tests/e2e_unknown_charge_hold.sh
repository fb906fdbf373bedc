#!/bin/bash
# dialects: sqlite postgresql
# A card charge whose outcome is unknown (the HTTP processor answers too late) holds its
# invoice lines against the balance until it is final: a staff payment made meanwhile gets only
# what is left, never the held balance, so when the charge is then approved its posting is
# posted, not rejected by the matter system.
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_processor.sh"
setup 10 60
# Every charge attempt with a timeout card is answered after 2 s (the core waits 300 ms) and
# never made, until the test lets it through.
start_processor --timeout-card-attempts 1000 --timeout-card-delay-ms 2000
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
money() { python3 -c "print('%d.%02d' % divmod($1, 100))"; }
add_accounts

# A client with at least two open invoices; its first in payment order is charged in full.
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 2 ORDER BY client_number LIMIT 1")
[ -n "$client" ] || fail "no client with two open invoices"
items=$(cli --json open-items --firm acme --client "$client")
invoice=$(echo "$items" | json 'd["items"][0]["invoice_number"]')
held=$(echo "$items" | json 'd["items"][0]["available_minor"]')
total=$(echo "$items" | json 'sum(i["available_minor"] for i in d["items"])')
log "charging all of $invoice ($held of client $client's $total) with a card the processor does not answer for"

out=$(echo "4000000000004004 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=$(money "$held")" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin)
[ "$(echo "$out" | json 'd["payment"]["status"]')" = unknown ] || fail "expected an unknown outcome: $out"
payment=$(echo "$out" | json 'd["payment"]["payment_uuid"]')
charge_posting=$(echo "$out" | json 'd["payment"]["charges"][0]["posting_uuid"]')

# While it is unknown, the invoice has nothing available and the client's whole balance
# cannot be paid by staff: only what is left.
[ "$(cli --json open-items --firm acme --client "$client" | json '[i["available_minor"] for i in d["items"] if i["invoice_number"] == "'"$invoice"'"][0]')" = 0 ] ||
    fail "the unknown charge's invoice still shows a balance available"
out=$(cli --json pay --firm acme --client "$client" --amount "$(money "$total")" 2>&1) &&
    fail "a staff payment took the balance held by an unknown charge: $out"
echo "$out" | grep -q "open on client" || fail "unclear refusal: $out"
out=$(cli --json pay --firm acme --client "$client" --amount "$(money $((total - held)))") ||
    fail "the balance left was refused: $out"
echo "$out" | json '[l["invoice_number"] for l in d["lines"]]' | grep -q "'$invoice'" &&
    fail "the staff payment applied to the held invoice: $out"
staff_posting=$(echo "$out" | json 'd["posting_uuid"]')

# The processor answers again: the core asks with the same key, the charge is approved, and
# its posting is posted (the balance was never promised to the staff payment).
[ "$(cli --json payment show "$payment" | json 'd["payment"]["status"]')" = unknown ] || fail "resolved too early"
processor_control '{"timeout_card_attempts": 0}'
resolved() { [ "$(cli --json payment show "$payment" | json 'd["payment"]["status"]')" = approved ]; }
wait_for 30 "the core to resolve the unknown charge" resolved
wait_for 30 "the staff posting to be posted" posting_is "$staff_posting" posted
settled() { status=$(posting_field "$charge_posting" status); [ "$status" = posted ] || [ "$status" = rejected ]; }
wait_for 30 "the charge's posting to be final" settled
[ "$(posting_field "$charge_posting" status)" = posted ] ||
    fail "the approved charge's posting was $(posting_field "$charge_posting" status): $(posting_field "$charge_posting" reason)"
[ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")" = 0 ] ||
    fail "the charged invoice is not paid in full"
log "PASS"
