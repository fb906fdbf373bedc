#!/bin/bash
# dialects: sqlite postgresql
# A card payment that pays an invoice and deposits into a matter's trust ledger becomes two
# charges (operating and trust merchant accounts) and two postings, each landing once in the
# matter system's books with its processor transaction; the trust deposit arrives whole (no
# fee). A declined card posts nothing; a charge whose outcome is unknown is resolved by the
# core and posts exactly once. Receipts, the payment-link e-mail and the "posting rejected"
# notice arrive at a real SMTP server, once each, and the A/R message is in none of them.
. "$(dirname "$0")/lib_e2e.sh"
setup 30 300
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_smtp
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }

add_accounts
out=$(cli --json account add --firm acme --number TR-002 --type TRUST --currency USD \
    --merchant-account acct_trust_2 2>&1) && fail "a second USD trust account was accepted"

row=$(matter_sql "SELECT o.invoice_number || '|' || o.balance_minor || '|' || m.matter_number FROM $OPEN_INVOICES
    JOIN invoice i ON i.invoice_number = o.invoice_number JOIN matter m ON m.matter_id = i.matter_id
    ORDER BY o.invoice_number LIMIT 1")
IFS='|' read -r invoice balance matter <<<"$row"
trust_before=$(matter_sql "SELECT COALESCE(SUM(t.amount_minor), 0) FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id WHERE m.matter_number = '$matter'")
log "paying 12.34 of $invoice (balance $balance) and depositing 500.00 into $matter's trust"

out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=12.34" \
    --trust "$matter=500.00" --payer-name "Pat Doe" --payer-email pat@example.com \
    --card-stdin --message "card at the front desk") || fail "charge refused: $out"
echo "$out" | grep -q 4242424242424242 && fail "the card number came back"
[ "$(echo "$out" | json 'd["payment"]["status"]')" = approved ] || fail "not approved: $out"
operating=$(echo "$out" | json '[c["posting_uuid"] for c in d["payment"]["charges"] if c["account_type"] == "OPERATING"][0]')
trust=$(echo "$out" | json '[c["posting_uuid"] for c in d["payment"]["charges"] if c["account_type"] == "TRUST"][0]')
wait_for 30 "the operating posting to be posted" posting_is "$operating" posted
wait_for 30 "the trust posting to be posted" posting_is "$trust" posted

receipt() { matter_sql "SELECT b.account_number || '|' || r.amount_minor || '|' || r.processor_txn FROM receipt r JOIN bank_account b ON b.bank_account_id = r.bank_account_id WHERE r.posting_uuid = '$1'"; }
IFS='|' read -r account amount txn <<<"$(receipt "$operating")"
[ "$account $amount" = "OP-001 1234" ] && [ -n "$txn" ] || fail "operating receipt wrong: $account $amount $txn"
IFS='|' read -r account amount txn <<<"$(receipt "$trust")"
[ "$account $amount" = "TR-001 50000" ] && [ -n "$txn" ] || fail "trust receipt wrong: $account $amount $txn"
[ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")" = $((balance - 1234)) ] ||
    fail "invoice balance wrong"
trust_after=$(matter_sql "SELECT COALESCE(SUM(t.amount_minor), 0) FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id WHERE m.matter_number = '$matter'")
[ "$trust_after" = $((trust_before + 50000)) ] || fail "trust ledger grew by $((trust_after - trust_before)), not 50000"
log "two charges, two receipts (OP-001 12.34, TR-001 500.00 whole)"
receipts_mailed() { [ "$(mails_where 'm["rcpt_tos"] == ["pat@example.com"] and "receipt" in m["headers"]["subject"]')" = 2 ]; }
wait_for 20 "two receipts by e-mail" receipts_mailed
[ "$(mails_where '"front desk" in m["body"] or "front desk" in m["headers"]["subject"]')" = 0 ] ||
    fail "the A/R message appeared in an e-mail"
[ "$(mails_where '"'"$invoice"'" in m["body"] and "12.34" in m["body"]')" = 1 ] || fail "the receipt does not name the invoice"

# A declined card: nothing charged, nothing posted.
receipts=$(matter_sql "SELECT COUNT(*) FROM receipt")
out=$(echo "4000000000000002 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=1.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin 2>&1)
echo "$out" | grep -q declined || fail "no decline: $out"

# A timeout: the charge is unknown, the core asks again and posts exactly once.
out=$(echo "4000000000003006 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=2.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin)
[ "$(echo "$out" | json 'd["payment"]["status"]')" = unknown ] || fail "expected an unknown outcome: $out"
payment=$(echo "$out" | json 'd["payment"]["payment_uuid"]')
resolved() { [ "$(cli --json payment show "$payment" | json 'd["payment"]["status"]')" = approved ]; }
wait_for 20 "the core to resolve the unknown charge" resolved
uuid=$(cli --json payment show "$payment" | json 'd["payment"]["charges"][0]["posting_uuid"]')
wait_for 30 "the resolved posting to be posted" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt")" = $((receipts + 1)) ] || fail "not exactly one more receipt"

# Several searches, one selection: kept until paid, then emptied.
second=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = (SELECT client_number FROM $OPEN_INVOICES WHERE invoice_number = '$invoice') AND invoice_number <> '$invoice' ORDER BY invoice_number LIMIT 1")
cli --json select add --firm acme --invoice "$invoice=1.00" >/dev/null || fail "select add"
cli --json search --firm acme --by invoice-number "$second" >/dev/null || fail "a search between"
cli --json select add --firm acme --invoice "$second=2.00" >/dev/null || fail "select add"
cli --json select add --firm acme --trust "$matter=3.00" >/dev/null || fail "select add trust"
[ "$(cli --json select list --firm acme | json 'len(d["selection"])')" = 3 ] || fail "the selection lost a line"
out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --selection \
    --payer-name "Sam New" --payer-email sam@example.com --save-payer --save-method --card-stdin) ||
    fail "charge --selection: $out"
saved=$(cli --json payer list --firm acme --text sam@example.com | json 'd["payers"][0]["payer_id"]')
[ "$(cli --json payer show "$saved" | json 'd["payer"]["methods"][0]["last4"]')" = 4242 ] ||
    fail "the new payer was not saved with the card"
[ "$(echo "$out" | json 'sum(c["amount_minor"] for c in d["payment"]["charges"])')" = 600 ] ||
    fail "the selection was not paid as selected"
[ "$(cli --json select list --firm acme | json 'len(d["selection"])')" = 0 ] || fail "the paid selection was kept"
# A card saved at payment is saved whatever the processor's token holds. This form's key gives
# the payment the UUID whose tokenize key (PAYMENT_UUID:tokenize) once made the test
# processor's token end in hex holding 14 digits that pass the card check: method-add refused
# that token as a card number, and the card was not saved (one payment in about 2,000).
out=$("$ML_BIN/ml_api_client" "ipc://$W/admin.sock" '{"op": "payment", "firm": "acme",
    "payer_id": '"$saved"', "pay_key": "save-card-key-4267", "save_method": true,
    "lines": [{"invoice": "'"$invoice"'", "amount_minor": 1}],
    "card": {"number": "4242424242424242", "exp_month": 5, "exp_year": 2031, "cvc": "123"}}') ||
    fail "the payment saving a card: $out"
[ "$(echo "$out" | json 'd["payment"]["status"]')" = approved ] || fail "the payment saving a card: $out"
[ "$(cli --json payer show "$saved" | json '[m["exp_month"] for m in d["payer"]["methods"]]')" = "[4, 5]" ] ||
    fail "the card was not saved: $(cli --json payer show "$saved")"
[ "$(echo "$out" | json 'd["method_id"]')" = "$(cli --json payer show "$saved" | json 'd["payer"]["methods"][1]["method_id"]')" ] ||
    fail "the reply does not name the saved card: $out"
# A card that cannot be saved (the payer has 20, the most) is charged, and the reply says so.
for month in 01 02 03 04 05 06 07 08 09; do
    for year in 2032 2033; do
        cli --json method add "$saved" --token "tok_visa_4242_$month${year}_x" --brand visa \
            --last4 4242 --expiry "$month/$year" >/dev/null || fail "method add $month/$year"
    done
done
out=$(echo "4242424242424242 06/2031 123" | cli --json charge --firm acme --invoice "$invoice=0.01" \
    --payer "$saved" --save-method --card-stdin 2>"$W/unsaved.err") || fail "charge at 20 cards: $out"
[ "$(echo "$out" | json 'd["payment"]["status"]')" = approved ] &&
    echo "$out" | json 'd["method_not_saved"]' | grep -q "already has 20 payment methods" ||
    fail "the card not saved is not said: $out"
grep -q "the card was not saved for the payer" "$W/unsaved.err" || fail "the CLI did not say the card was not saved"

# Send for payment: a link the payer pays once, within 24 hours, with balances checked again.
out=$(cli --json link create --firm acme --invoice "$invoice=3.00" --payer-name "Pat Doe" \
    --payer-email pat@example.com --message "sent by e-mail") || fail "link create: $out"
token=$(echo "$out" | json 'd["link"]["token"]')
link_mailed() { [ "$(mails_where '"'"$token"'" in m["body"]')" = 1 ]; }
wait_for 20 "the payment link e-mail" link_mailed
link=$(echo "$out" | json 'd["link"]["link_id"]')
[ "$(echo "$out" | json 'd["link"]["state"]')" = outstanding ] || fail "a new link is not outstanding"
echo "4000000000000002 04/2031 123" | cli --json link pay "$token" --card-stdin >/dev/null 2>&1 &&
    fail "a declined card paid the link"
out=$(echo "4242424242424242 04/2031 123" | cli --json link pay "$token" --card-stdin) ||
    fail "link pay: $out"
uuid=$(echo "$out" | json 'd["payment"]["charges"][0]["posting_uuid"]')
wait_for 30 "the link's posting to be posted" posting_is "$uuid" posted
out=$(echo "4242424242424242 04/2031 123" | cli --json link pay "$token" --card-stdin 2>&1) &&
    fail "a link was paid twice"
echo "$out" | grep -q "is paid" || fail "unclear error for a paid link: $out"
other=$(cli --json link create --firm acme --invoice "$invoice=1.00" --payer-name P --payer-email p@example.com |
    json 'd["link"]["link_id"]')
cli --json link cancel "$other" >/dev/null || fail "link cancel"
[ "$(cli --json link list --firm acme --state paid | json '" ".join(l["link_id"] for l in d["links"])')" = "$link" ] ||
    fail "the paid link is not listed as paid"
[ "$(cli --json link list --firm acme --state cancelled | json 'len(d["links"])')" = 1 ] ||
    fail "the cancelled link is not listed as cancelled"

# A posting the matter system rejects (its invoice was voided meanwhile) tells the firm.
cli --json firm contact --firm acme --email billing@acme.test >/dev/null || fail "firm contact"
other=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES WHERE client_number <> (SELECT client_number FROM $OPEN_INVOICES WHERE invoice_number = '$invoice') ORDER BY client_number LIMIT 1")
victim=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$other' ORDER BY invoice_date, invoice_number LIMIT 1")
stop_agent
uuid=$(cli --json pay --firm acme --client "$other" --amount 0.01 | json 'd["posting_uuid"]')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$victim'"
start_agent
wait_for 30 "the posting to be rejected" posting_is "$uuid" rejected
notice_mailed() { [ "$(mails_where 'm["rcpt_tos"] == ["billing@acme.test"] and "'"$uuid"'" in m["body"]')" = 1 ]; }
wait_for 20 "the rejection notice" notice_mailed
sleep 2
[ "$(mails_where 'm["rcpt_tos"] == ["billing@acme.test"]')" = 1 ] || fail "the notice was sent more than once"
log "PASS"
