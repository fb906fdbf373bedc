#!/bin/bash
# dialects: sqlite
# The payer's account in the portal end to end, in a real browser (tests/web_account.py)
# against real core, agent, SMTP server and matterlink-web processes (the core's test card
# processor): staff charge the payer's saved card (an invoice and a trust deposit), refund the
# trust deposit, record a payment with 'pay', and a card is declined; the payer signs in and
# finds each in the history with its status, opens a receipt, sees an expired card marked,
# makes a card the default, removes another, and sees the Auto-Pay schedule with its next run. Over plain HTTP, another
# payer's payment and card get "not found" (404) and a change without the CSRF token is
# refused (403), with nothing changed.
. "$ML_SOURCE/tests/lib_e2e.sh"

setup 4 16
start_smtp
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }
# The core's store, read or written beside the running core: wait for its locks.
core_sql() { sqlite3 -cmd ".timeout 5000" "$W/core.db" "$1"; }

row=$(matter_sql "SELECT o.client_number || '|' || o.invoice_number || '|' || m.matter_number FROM $OPEN_INVOICES
    JOIN invoice i ON i.invoice_number = o.invoice_number JOIN matter m ON m.matter_id = i.matter_id
    WHERE o.balance_minor > 5000 ORDER BY o.invoice_number LIMIT 1")
IFS='|' read -r client invoice matter <<<"$row"
new_payer() { cli --json payer add --firm acme --name "$1" --email "$2" | json 'd["payer"]["payer_id"]'; }
pat=$(new_payer "Pat Doe" pat@example.com) || fail "payer add"
sam=$(new_payer "Sam Roe" sam@example.com) || fail "payer add"
association=$(cli --json association add "$pat" --client "$client" | json 'd["association"]["association_id"]') ||
    fail "association add"
# Cards saved for Pat (Visa, then Mastercard) and for Sam, each by a small trust deposit.
save_card() {
    echo "$2 12/2031 123" | cli --json charge --firm acme --trust "$matter=1.00" --payer "$1" \
        --card-stdin --save-method | json 'd["payment"]["payment_uuid"]'
}
save_card "$pat" 4242424242424242 >/dev/null || fail "saving a card"
save_card "$pat" 5555555555554444 >/dev/null || fail "saving a card"
sam_payment=$(save_card "$sam" 6011111111111117) || fail "saving Sam's card"
methods() { cli --json payer show "$1" | json "' '.join(str(m['method_id']) for m in d['payer']['methods'])"; }
read -r visa mastercard <<<"$(methods "$pat")"
sam_method=$(methods "$sam")
[ -n "$visa" ] && [ -n "$mastercard" ] && [ -n "$sam_method" ] || fail "saved methods"

# A card that expired since it was saved (method-add refuses expired cards: the store is
# written as time would have it).
core_sql "INSERT INTO payment_method (payer_id, processor_token,
    brand, last4, exp_month, exp_year, created_at) VALUES ($pat, 'tok_old', 'visa', '1111', 1, 2020, 'x')" ||
    fail "the expired card"
expired=$(methods "$pat" | awk '{print $3}')

# Staff charge Pat's saved Visa: the invoice into OPERATING, a deposit into TRUST; then
# refund the deposit.
out=$(cli --json charge --firm acme --invoice "$invoice=12.34" --trust "$matter=5.00" --payer "$pat" \
    --method "$visa") || fail "charge: $out"
payment=$(echo "$out" | json 'd["payment"]["payment_uuid"]')
key() { echo "$out" | json "[c['$2'] for c in d['payment']['charges'] if c['account_type'] == '$1'][0]"; }
operating_posting=$(key OPERATING posting_uuid)
trust_key=$(key TRUST charge_key)
cli --json refund "$trust_key" >/dev/null || fail "refund"
# A declined card, and a payment staff record for Pat's address.
echo "4000000000000002 12/2031 123" | cli --json charge --firm acme --invoice "$invoice=3.00" --payer "$pat" \
    --card-stdin >/dev/null 2>&1
recorded=$(cli --json pay --firm acme --client "$client" --amount 2.00 --payer-name "Pat Doe" \
    --payer-email pat@example.com | json 'd["posting_uuid"]') || fail "pay"
wait_for 30 "the invoice's posting" posting_is "$operating_posting" posted

# Pat's Auto-Pay, on the Visa, first run next month.
first=$(python3 -c "import datetime; t = datetime.date.today(); print((t.replace(day=1) + datetime.timedelta(days=40)).replace(day=15))")
schedule=$(cli --json autopay add --payer "$pat" --method "$visa" --name "Monthly fees" --account OP-001 \
    --frequency monthly --first "$first" 2>/dev/null | json 'd["schedule"]["schedule_id"]') || fail "autopay add"
cli --json autopay enroll "$schedule" "$association" >/dev/null || fail "autopay enroll"

# Login access for Pat; the password is set through the welcome link.
admin '{"op": "payer-access", "payer_id": '"$pat"', "action": "on", "staff": "alice"}' | grep -q '"ok":true' ||
    fail "access on"
token=$(link_token pat@example.com set-password)
[ ${#token} = 43 ] || fail "no set-password link in the welcome mail"

start_web
HOME="$W" timeout 80 /usr/bin/python3 "$ML_SOURCE/tests/web_account.py" "http://127.0.0.1:$WEB_PORT" \
    "$token" pat@example.com "Acme LLP" "$ML_BIN/screenshots" "$payment" "$recorded" "$invoice" "$matter" \
    "$visa" "$mastercard" "$sam_payment" "$sam_method" "$first" || fail "the browser checks"

# What the portal changed, seen by staff: the Mastercard is gone, Sam's card is not.
[ "$(methods "$pat")" = "$visa $expired" ] || fail "Pat's methods are $(methods "$pat"), not $visa $expired"
[ "$(methods "$sam")" = "$sam_method" ] || fail "Sam's card changed"
[ "$(core_sql "SELECT method_id FROM payment_method_default WHERE payer_id = $pat")" = "$visa" ] ||
    fail "the Visa is not Pat's default"
[ -z "$(core_sql "SELECT method_id FROM payment_method_default WHERE payer_id = $sam")" ] ||
    fail "Sam got a default"
log "PASS"
