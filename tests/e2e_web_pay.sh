#!/bin/bash
# dialects: sqlite
# Paying from the portal end to end (tests/web_pay.py) against real core, agent, SMTP server,
# matterlink-web, the HTTP test processor (tests/processor_server.py, whose browser
# tokenization endpoint the pay page's script calls) and headless Chromium: the payer picks
# two invoices, pays them with a new card that is saved, the receipt mail arrives, the
# postings are posted in the matter database and the invoices' balances fall; the saved card
# pays again; the same form posted twice pays once; another payer's invoice is "not found"
# and a missing CSRF token is refused at the core; a trust deposit (the firm allows them) is
# a charge of its own into TRUST; no request to matterlink-web carried the
# card number.
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
setup 3 24
start_smtp
WEB_PORT=$(free_port)
PROCESSOR_TIMEOUT_MS=5000 start_processor --cors-origin "http://127.0.0.1:$WEB_PORT"
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }
add_accounts

# The client with the most open invoices: four are paid here.
client=$(matter_sql "SELECT o.client_number FROM $OPEN_INVOICES GROUP BY o.client_number ORDER BY COUNT(*) DESC, o.client_number LIMIT 1")
[ "$(matter_sql "SELECT COUNT(*) FROM $OPEN_INVOICES WHERE o.client_number = '$client'")" -ge 4 ] ||
    fail "client $client has fewer than four open invoices"
other=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number <> '$client' LIMIT 1")
pat=$(cli --json payer add --firm acme --name "Pat Doe" --email pat@example.com | json 'd["payer"]["payer_id"]') ||
    fail "payer add"
cli --json association add "$pat" --client "$client" >/dev/null || fail "association"
admin '{"op": "payer-access", "payer_id": '"$pat"', "action": "on", "staff": "alice"}' | grep -q '"ok":true' ||
    fail "access on"
token=$(link_token pat@example.com set-password)
[ ${#token} = 43 ] || fail "no set-password link in the welcome mail"
admin '{"op": "firm-portal", "firm": "acme", "trust_deposits": true}' | grep -q '"trust_deposits":true' ||
    fail "firm-portal"
# The balances of Pat's invoices before paying.
balances=$(matter_sql "SELECT o.invoice_number || '=' || o.balance_minor FROM $OPEN_INVOICES WHERE o.client_number = '$client'" |
    tr '\n' ' ')

WEB_LOG_LEVEL=debug WEB_CORE_TIMEOUT_MS=10000 start_web "tokenize_url = $PROCESSOR_URL/v1/public/tokens"
HOME="$W" timeout 80 /usr/bin/python3 "$ML_SOURCE/tests/web_pay.py" "http://127.0.0.1:$WEB_PORT" \
    "$token" pat@example.com "Acme LLP" "$ML_BIN/screenshots" "$ML_BIN/ml_api_client" \
    "ipc://$W/api.sock" "$other" "$W/paid.json" || fail "the browser flow"

# Every posting of the portal's payments: three payments (two invoices with a new card, one
# invoice with the saved card, and the form posted twice with a trust deposit: two charges),
# each posting posted once in the matter database.
payments=$(python3 -c "import json; print(' '.join(json.load(open('$W/paid.json'))['postings']))")
[ "$(echo $payments | wc -w)" = 4 ] || fail "not four postings of portal payments: $payments"
for posting in $payments; do
    wait_for 30 "posting $posting to be posted" posting_is "$posting" posted
    [ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$posting'")" = 1 ] ||
        fail "posting $posting is not one receipt in the matter database"
done
for invoice in $(python3 -c "import json; print(' '.join(json.load(open('$W/paid.json'))['invoices'][:2]))"); do
    before=$(echo " $balances" | sed -n "s/.* $invoice=\([0-9]*\).*/\1/p")
    [ -n "$before" ] || fail "invoice $invoice is not Pat's"
    after=$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")
    [ "$after" -lt "$before" ] || fail "invoice $invoice's balance did not fall ($before -> $after)"
done
[ "$(matter_sql "SELECT COUNT(*) FROM receipt r JOIN bank_account b ON b.bank_account_id = r.bank_account_id
    WHERE b.account_number = 'TR-001' AND r.amount_minor = 500")" = 1 ] || fail "the trust deposit is not in TR-001"
log "three portal payments posted once each (the trust deposit into TR-001); the two invoices' balances fell"
[ "$(admin '{"op": "payments", "firm": "acme"}' | json 'len([p for p in d["payments"] if p["source"] == "portal" and p["status"] == "approved"])')" = 3 ] ||
    fail "not three approved payments from the portal"
receipts_mailed() { [ "$(mails_where 'm["rcpt_tos"] == ["pat@example.com"] and "receipt" in m["headers"]["subject"].lower()')" -ge 3 ]; }
wait_for 20 "the receipts by e-mail" receipts_mailed
# The processor made one charge per key, and the browser, not the web, tokenized the card.
curl -sf "$PROCESSOR_URL/_test/ledger" | python3 -c '
import json, sys
charges = json.load(sys.stdin)["charges"]
assert charges and all(c["made"] == 1 for c in charges), charges' || fail "a charge was made twice"
[ "$(curl -sf "$PROCESSOR_URL/_test/stats" | json 'd["browser_tokens"]')" -ge 1 ] ||
    fail "the browser did not tokenize at the processor"
# The core asked the processor what card each browser token names (through its worker).
grep -q '"GET /v1/tokens/tok_' "$W/processor.log" || fail "the core did not look the token up"
grep -q -e 4242424242424242 -e "$token" "$W/web.log" && fail "a card number or token in the web's log"
log "PASS"
