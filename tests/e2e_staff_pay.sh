#!/bin/bash
# dialects: sqlite
# Make a Payment in four steps (tests/staff_pay.py) against a real core, agent (SQLite), SMTP
# server, matterlink-web, the HTTP test processor and headless Chromium: an administrator
# invites a billing staff member (the operator's CLI), who accepts from the mail and signs in,
# searches, checks two invoices, searches again and adds a third and a trust deposit (by
# hand), goes back to step 1 and finds the selection kept, allocates one total oldest first
# after a surplus was refused with the reason, and pays with a new card (hosted fields) for a
# new payer who is saved; the result page shows the operating and trust charges apart with
# their postings; both are posted in the matter database with the A/R message (the deposit
# into TR-001); a declined card first charges nothing; the same form sent twice pays once; the receipt mail arrives (without the A/R message). "Send for
# Payment" sends the payer the link mail. A payer with 20 saved cards pays with a new card and
# "Save this card": charged, and the page says the card was not saved. A read-only member gets 404 for the pages; a change
# without the CSRF token is refused.
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
wait_for 30 "the agent online" agent_online
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
add_accounts

# The client with the most open invoices: four are used here.
client=$(matter_sql "SELECT o.client_number FROM $OPEN_INVOICES GROUP BY o.client_number ORDER BY COUNT(*) DESC, o.client_number LIMIT 1")
[ "$(matter_sql "SELECT COUNT(*) FROM $OPEN_INVOICES WHERE o.client_number = '$client'")" -ge 4 ] ||
    fail "client $client has fewer than four open invoices"

cli staff invite --firm acme --email bill@acme.test --name "Bill Ing" --role billing >/dev/null ||
    fail "staff invite"
token=$(link_token bill@acme.test staff/accept)
[ ${#token} = 43 ] || fail "no invitation link in the mail to bill@acme.test"

# Max Full has 20 saved cards, the most: a new card with "Save this card" is charged, not kept.
max=$(cli --json payer add --firm acme --name "Max Full" --email max@example.com | json 'd["payer"]["payer_id"]') ||
    fail "payer add (Max Full)"
for month in 01 02 03 04 05 06 07 08 09 10; do
    for year in 2032 2033; do
        cli --json method add "$max" --token "tok_visa_4242_$month${year}_m" --brand visa \
            --last4 4242 --expiry "$month/$year" >/dev/null || fail "method add $month/$year"
    done
done
WEB_CORE_TIMEOUT_MS=15000 start_web "tokenize_url = $PROCESSOR_URL/v1/public/tokens"
HOME="$W" timeout 150 /usr/bin/python3 "$ML_SOURCE/tests/staff_pay.py" "http://127.0.0.1:$WEB_PORT" \
    "$token" bill@acme.test "$client" "Acme LLP" "$ML_BIN/screenshots" "$W/paid.json" ||
    fail "the browser flow"

field() { python3 -c "import json; d = json.load(open('$W/paid.json')); print($1)"; }
postings=$(field "' '.join(d['postings'])")
[ "$(echo $postings | wc -w)" = 2 ] || fail "not two postings (operating, trust) of the staff payment: $postings"
for posting in $postings; do
    wait_for 30 "posting $posting to be posted" posting_is "$posting" posted
    [ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$posting'")" = 1 ] ||
        fail "posting $posting is not one receipt in the matter database"
    [ "$(posting_field "$posting" ar_message)" = "$(field "d['ar_message']")" ] ||
        fail "the posting does not carry the A/R message"
    [ "$(posting_field "$posting" source)" = payment ] || fail "the posting's source"
done
# Oldest first, trust by hand: the amounts the page showed are the postings' lines.
for posting in $postings; do cli --json posting "$posting" >"$W/posting-$posting.json"; done
python3 -c "
import glob, json
lines = {}
for path in glob.glob('$W/posting-*.json'):
    lines.update({l['reference']: l['amount_minor'] for l in json.load(open(path))['posting']['lines']})
amounts = json.load(open('$W/paid.json'))['amounts']
assert lines == amounts, (lines, amounts)" || fail "the postings' lines are not the allocation"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt r JOIN bank_account b ON b.bank_account_id = r.bank_account_id
    WHERE b.account_number = 'TR-001' AND r.amount_minor = 500")" = 1 ] || fail "the trust deposit is not in TR-001"
log "the staff payment posted once, oldest first, the deposit into TR-001, with the A/R message"
receipt_mailed() { [ "$(mails_where 'm["rcpt_tos"] == ["pat@example.com"] and "receipt" in m["headers"]["subject"].lower()')" -ge 1 ]; }
wait_for 20 "the receipt by e-mail" receipt_mailed
[ "$(mails_where '"ticket 4471" in (m["body"] or "")')" = 0 ] || fail "the A/R message reached a mail"
link_mailed() { [ "$(mails_where 'm["rcpt_tos"] == ["pat@example.com"] and "/link?token=" in (m["body"] or "")')" -ge 1 ]; }
wait_for 20 "the payment link by e-mail" link_mailed
[ "$(cli --json payer list --firm acme | json 'len([p for p in d["payers"] if p["email"] == "pat@example.com"])')" = 1 ] ||
    fail "the new payer was not saved once"
[ "$("$ML_BIN/ml_api_client" "ipc://$W/admin.sock" '{"op": "payments", "firm": "acme"}' | json 'len([p for p in d["payments"] if p["source"] == "staff" and p["status"] == "approved"])')" = 2 ] ||
    fail "not two approved staff payments, the first's form sent twice and the one at 20 cards"
unsaved=$(field "' '.join(d['unsaved_postings'])")
[ "$(echo $unsaved | wc -w)" = 1 ] || fail "not one posting of the payment at 20 cards: $unsaved"
wait_for 30 "posting $unsaved to be posted" posting_is "$unsaved" posted
[ "$(cli --json payer show "$max" | json 'len(d["payer"]["methods"])')" = 20 ] ||
    fail "Max Full does not have 20 cards after the card that was not saved"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt")" = "$(echo $postings $unsaved | wc -w)" ] ||
    fail "the matter database holds receipts of other postings than the payment's"
# The core decides, the web relays: a read-only member gets 404 for the pages, and a change
# without the session's CSRF token is refused (403) with nothing changed.
api() { "$ML_BIN/ml_api_client" "ipc://$W/api.sock" "$1"; }
cli staff invite --firm acme --email reader@acme.test --name "Rea Der" --role read >/dev/null ||
    fail "staff invite (read)"
rtoken=$(link_token reader@acme.test staff/accept)
api '{"op": "staff-accept", "token": "'"$rtoken"'", "password": "reader horse battery"}' |
    grep -q '"ok":true' || fail "staff-accept (read)"
reader=$(api '{"op": "staff-sign-in", "email": "reader@acme.test", "password": "reader horse battery"}' |
    json 'd["staff_session"]') || fail "staff-sign-in (read)"
for page in /staff/pay /staff/pay/search /staff/pay/allocate /staff/pay/pay; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: ml_staff=$reader" "http://127.0.0.1:$WEB_PORT$page")" = 404 ] ||
        fail "a read-only member reaches $page"
done
billing=$(api '{"op": "staff-sign-in", "email": "bill@acme.test", "password": "staff horse battery"}' |
    json 'd["staff_session"]') || fail "staff-sign-in (billing)"
invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE o.client_number = '$client' ORDER BY o.invoice_number DESC LIMIT 1")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: ml_staff=$billing" \
    --data-urlencode "rows=iUSD$invoice" --data-urlencode pick_0=0 "http://127.0.0.1:$WEB_PORT/staff/pay/select")
[ "$code" = 403 ] || fail "a selection change without the CSRF token: $code"
[ "$(api '{"op": "selection", "staff_session": "'"$billing"'"}' | json 'len(d["selection"])')" = 0 ] ||
    fail "the selection changed without the CSRF token"
log "a read-only member gets 404; a change without the CSRF token is refused"
grep -q -e 4242424242424242 "$W/web.log" && fail "a card number in the web's log"
log "PASS"
