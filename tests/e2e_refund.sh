#!/bin/bash
# dialects: sqlite postgresql
# Refunds, voids and chargebacks reach the matter system as reversing postings, once each:
# an invoice gets its balance back, a trust ledger is debited, the receipt's reversals are
# recorded for the auditor, and the original receipt is never edited. A rejected posting's
# money is reallocated to another invoice.
. "$(dirname "$0")/lib_e2e.sh"
setup 30 300
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
add_accounts

row=$(matter_sql "SELECT o.invoice_number || '|' || o.balance_minor || '|' || m.matter_number FROM $OPEN_INVOICES
    JOIN invoice i ON i.invoice_number = o.invoice_number JOIN matter m ON m.matter_id = i.matter_id
    WHERE o.balance_minor > 10000 ORDER BY o.invoice_number LIMIT 1")
IFS='|' read -r invoice balance matter <<<"$row"
trust() { matter_sql "SELECT COALESCE(SUM(t.amount_minor), 0) FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id WHERE m.matter_number = '$matter'"; }
trust_before=$(trust)
receipt_total() { matter_sql "SELECT amount_minor FROM receipt WHERE posting_uuid = '$1'"; }

out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=50.00" \
    --trust "$matter=500.00" --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin) ||
    fail "charge: $out"
key() { echo "$out" | json "[c['charge_key'] for c in d['payment']['charges'] if c['account_type'] == '$1'][0]"; }
operating_key=$(key OPERATING)
trust_key=$(key TRUST)
operating_posting=$(echo "$out" | json "[c['posting_uuid'] for c in d['payment']['charges'] if c['account_type'] == 'OPERATING'][0]")
trust_posting=$(echo "$out" | json "[c['posting_uuid'] for c in d['payment']['charges'] if c['account_type'] == 'TRUST'][0]")
wait_for 30 "the operating posting" posting_is "$operating_posting" posted
wait_for 30 "the trust posting" posting_is "$trust_posting" posted

# A partial refund of the invoice payment gives the invoice 20.00 back.
out=$(cli --json refund "$operating_key" --amount 20.00) || fail "refund: $out"
reversal=$(echo "$out" | json 'd["reversal"]["posting_uuid"]')
wait_for 30 "the refund's reversing posting" posting_is "$reversal" posted
[ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")" = $((balance - 5000 + 2000)) ] ||
    fail "the invoice did not get 20.00 back"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt_reversal WHERE posting_uuid = '$reversal'")" = 1 ] ||
    fail "the reversal is not recorded against the receipt"
[ "$(receipt_total "$operating_posting")" = 5000 ] || fail "the original receipt was edited"
out=$(cli --json refund "$operating_key" --amount 30.01 2>&1) && fail "refunded more than was left"
log "refund: the invoice got 20.00 back, the receipt is unchanged, 30.01 more is refused"

# A trust refund debits the ledger by exactly the amount: no fee is netted.
out=$(cli --json refund "$trust_key" --amount 100.00) || fail "trust refund: $out"
reversal=$(echo "$out" | json 'd["reversal"]["posting_uuid"]')
wait_for 30 "the trust refund's reversing posting" posting_is "$reversal" posted
[ "$(trust)" = $((trust_before + 50000 - 10000)) ] || fail "the trust ledger holds $(trust), not $((trust_before + 40000))"

# A chargeback of the rest of the invoice payment, recorded as the processor decided.
out=$(cli --json chargeback "$operating_key") || fail "chargeback: $out"
[ "$(echo "$out" | json 'd["reversal"]["amount_minor"]')" = 3000 ] || fail "the chargeback is not the 30.00 left"
reversal=$(echo "$out" | json 'd["reversal"]["posting_uuid"]')
wait_for 30 "the chargeback's reversing posting" posting_is "$reversal" posted
[ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")" = "$balance" ] ||
    fail "after refund and chargeback the invoice balance is not back to $balance"
wait_for 10 "the original posting to show as reversed" posting_is "$operating_posting" reversed
posting_is "$trust_posting" posted || fail "a partly reversed posting is no longer posted"

# A void cancels a whole fresh charge.
out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=10.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin) || fail "charge: $out"
posting=$(echo "$out" | json 'd["payment"]["charges"][0]["posting_uuid"]')
wait_for 30 "the second payment's posting" posting_is "$posting" posted
out=$(cli --json void "$(echo "$out" | json 'd["payment"]["charges"][0]["charge_key"]')") || fail "void: $out"
wait_for 30 "the void's reversing posting" posting_is "$(echo "$out" | json 'd["reversal"]["posting_uuid"]')" posted
[ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")" = "$balance" ] ||
    fail "the void did not give the invoice its 10.00 back"
log "trust refund, chargeback and void applied once each"

# A posting the matter system rejects is reallocated to another invoice.
other=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE invoice_number <> '$invoice' ORDER BY invoice_number LIMIT 1")
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES WHERE invoice_number = '$invoice'")
stop_agent
uuid=$(cli --json pay --firm acme --client "$client" --amount 0.50 | json 'd["posting_uuid"]')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$invoice'"
start_agent
wait_for 30 "the posting to be rejected" posting_is "$uuid" rejected
out=$(cli --json reallocate "$uuid" --invoice "$other=0.50") || fail "reallocate: $out"
moved=$(echo "$out" | json 'd["posting"]["posting_uuid"]')
wait_for 30 "the reallocated posting" posting_is "$moved" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$moved'")" = 1 ] || fail "no receipt for the reallocation"
cli --json reallocate "$uuid" --invoice "$other=0.50" >/dev/null 2>&1 && fail "reallocated twice"
log "PASS"
