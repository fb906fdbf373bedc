#!/bin/bash
# dialects: sqlite
# The payer portal under attack, from outside the browser (tests/web_attacks.py, HTTP with
# http.client and raw sockets) against real core, agent, SMTP server and matterlink-web
# processes: another payer's objects by id, a missing or wrong CSRF token on every POST
# route, replayed set-password and reset links, an ended session (idle and absolute), the
# growing sign-in delay that never locks the payer out, unknown and known addresses alike in
# answer and time, and oversize or malformed requests. Each refusal is checked in the
# core's store too: no session, token, login or audit row changed that should not have.
. "$ML_SOURCE/tests/lib_e2e.sh"

setup 6 60
start_smtp
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }

# Four payers: Ann and Ben (each with a client of their own: Ben's invoices are what Ann
# must never reach), Cal (throttled) and Dee (timed), both on a third client.
set -- $(matter_sql "SELECT DISTINCT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 3")
[ $# = 3 ] || fail "three clients with open invoices"
payers=""
for spec in "Ann Able:ann@example.com:$1" "Ben Best:ben@example.com:$2" "Cal Cole:cal@example.com:$3" \
    "Dee Dunn:dee@example.com:$3"; do
    IFS=: read -r name email client <<<"$spec"
    id=$(cli --json payer add --firm acme --name "$name" --email "$email" | json 'd["payer"]["payer_id"]') ||
        fail "payer add $email"
    cli --json association add "$id" --client "$client" >/dev/null || fail "association $email"
    cli payer access on "$id" >/dev/null || fail "access on $email"
    payers="$payers$email:$id:$client "
done
# (A function: wait_for runs it again each time; "$(...)" in its arguments would not be.)
welcome_mails() { [ "$(mails_where '"set-password" in (m["body"] or "")')" = 4 ]; }
wait_for 30 "four welcome mails" welcome_mails
# Ben pays one of his invoices by card at the firm (test processor) and keeps the card: a
# payment, a receipt and a saved method of Ben's that Ann's session must never reach, with
# an A/R message no payer may ever see.
add_accounts
ben=$(echo "$payers" | tr ' ' '\n' | sed -n 2p | cut -d: -f2)
ben_invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$2' ORDER BY invoice_number LIMIT 1")
echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$ben_invoice=1.00" \
    --payer "$ben" --card-stdin --save-method --message "AR-NOTE-FOR-STAFF-ONLY" >/dev/null ||
    fail "Ben's card payment"
# Its receipt mail, before the attacks count the mails.
ben_mails() { [ "$(mails_where '"ben@example.com" in m["rcpt_tos"]')" = 2 ]; }
wait_for 30 "Ben's receipt" ben_mails

WEB_CORE_TIMEOUT_MS=10000 start_web
# shellcheck disable=SC2086
python3 "$ML_SOURCE/tests/web_attacks.py" --port "$WEB_PORT" --mail "$W/mail" --store "$W/core.db" \
    --api "ipc://$W/api.sock" --api-client "$ML_BIN/ml_api_client" \
    --invoices "$(matter_sql "SELECT client_number || '=' || invoice_number FROM $OPEN_INVOICES" | tr '\n' ' ')" \
    $payers || fail "the attacks"
kill -0 "$WEB_PID" 2>/dev/null || fail "matterlink-web died"
grep -q -e "correct horse" -e "wrong horse" "$W/web.log" "$W/core.log" && fail "a password in a log"
log "PASS"
