#!/bin/bash
# dialects: sqlite
# The staff app's Auto-Pay and Notifications in a real browser (tests/staff_autopay.py)
# against real core, agent, SMTP server, matterlink-web and the HTTP test processor
# (tests/processor_server.py): the administrator sends "Error-Failed AutoPay" to
# alerts@acme.example; a billing member makes a schedule with "Save and Manage Enrollments"
# and enrolls the payer's association; the operator's test clock runs it, the page shows the
# paid run and its posting, posted in the matter database; a declined card's run e-mails the
# address set on the notifications page (not the contact address); a disabled schedule makes
# no more runs; "payment received", turned on, mails the firm's contact address.
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
setup 2 8
start_smtp
WEB_PORT=$(free_port)
PROCESSOR_TIMEOUT_MS=5000 start_processor
portal_config
export MATTERLINK_TEST_CLOCK=1
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
add_accounts
cli --json firm contact --firm acme --email office@acme.example >/dev/null || fail "firm contact"

# Two payers with a saved card each (the processor's test tokens): Pat's pays, the other's
# is declined (card_declined, no retry). Each is associated with a client of its own.
clients=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number ORDER BY client_number LIMIT 2")
client=$(echo "$clients" | sed -n 1p)
other=$(echo "$clients" | sed -n 2p)
[ -n "$other" ] || fail "two clients with open invoices"
payer_with_card() {
    local payer
    payer=$(cli --json payer add --firm acme --name "$1" --email "$2" | json 'd["payer"]["payer_id"]') ||
        fail "payer add $1"
    cli --json method add "$payer" --token "tok_visa_$3_122031_0123456789abcdef" --brand visa \
        --last4 "$3" --expiry 12/2031 >/dev/null || fail "method add $1"
    cli --json association add "$payer" --client "$4" >/dev/null || fail "association $1"
    echo "$payer"
}
payer_with_card "Pat Doe" pat@example.com 4242 "$client" >/dev/null
payer_with_card "Poor Payer" poor@example.com 0002 "$other" >/dev/null
# Schedules start after the clock's day.
cli --json autopay clock 2027-01-01 >/dev/null || fail "the test clock"

cli --json staff invite --firm acme --email ann@example.com --name "Ann Admin" --role admin >/dev/null ||
    fail "invite the administrator"
ann=$(link_token ann@example.com staff/accept)
cli --json staff invite --firm acme --email bo@example.com --name "Bo Billing" --role billing >/dev/null ||
    fail "invite the billing member"
bo=$(link_token bo@example.com staff/accept)

start_web
HOME="$W" timeout 170 /usr/bin/python3 "$ML_SOURCE/tests/staff_autopay.py" "http://127.0.0.1:$WEB_PORT" \
    "$ann" "$bo" "$ML_BIN/matterlink" "ipc://$W/admin.sock" "$W/autopay.json" "$ML_BIN/screenshots" ||
    fail "the staff Auto-Pay browser flow"

# The run's posting is posted in the matter database, with the schedule's A/R message.
posting=$(json 'd["posting"]' <"$W/autopay.json")
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$posting'")" = 1 ] ||
    fail "posting $posting is not one receipt in the matter database"
[ "$(posting_field "$posting" source)" = autopay ] || fail "the posting's source is not autopay"
[ "$(posting_field "$posting" ar_message)" = "AutoPay web" ] || fail "the posting lacks the A/R message"
# The declined run's alert went where the notifications page said, and only there.
alerted() { [ "$(mails_where '"Error-Failed AutoPay: Plan" in m["headers"]["subject"] and m["rcpt_tos"] == ["alerts@acme.example"]')" = 1 ]; }
wait_for 20 "the Error-Failed AutoPay alert to alerts@acme.example" alerted
[ "$(mails_where '"Error-Failed AutoPay" in m["headers"]["subject"] and "office@acme.example" in m["rcpt_tos"]')" = 0 ] ||
    fail "the alert also went to the contact address"
# Payment received, turned on without an address: the run's charge told the contact address.
received() { [ "$(mails_where '"Payment received" in m["headers"]["subject"] and m["rcpt_tos"] == ["office@acme.example"]')" = 1 ]; }
wait_for 20 "the payment received notice to office@acme.example" received
# Who changed what is in the staff audit.
cli --json staff audit --firm acme | grep -q '"notify-set"' || fail "notify-set not in the audit"
cli --json staff audit --firm acme | grep -q '"autopay-add"' || fail "autopay-add not in the audit"
log "PASS"
