#!/bin/bash
# dialects: sqlite
# Notifications per firm (core/ml_notify.c, docs/mail.md "Notifications") against real core,
# agent and SMTP server processes: "link paid", turned on for two addresses, mails each once
# when a payer pays a link; "agent offline" mails once when the agent has been away longer than
# its minutes (the absence's start moved back in the store, so the test need not wait them
# out) and counts again once it is back; "posting rejected", turned off, mails nobody (not
# even the contact address) until it is turned on again; "payment received" mails the contact
# address when no address is given; bad settings are refused and change nothing.
. "$ML_SOURCE/tests/lib_e2e.sh"
setup 2 8
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_smtp
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }
store() { python3 -c "import sqlite3,sys; c = sqlite3.connect('$W/core.db', timeout=10); r = c.execute(sys.argv[1]).fetchall(); c.commit(); print(r[0][0] if r else '')" "$1"; }
set_event() {
    admin '{"op": "notify-set", "firm": "acme", "event": "'"$1"'", "enabled": '"$2"', "recipients": "'"$3"'"'"${4:+, \"minutes\": $4}"'}' |
        grep -q '"ok":true' || fail "notify-set $1"
}
add_accounts
cli --json firm contact --firm acme --email office@acme.example >/dev/null || fail "firm contact"

# Defaults: the failures on, to the contact address; the rest off.
settings=$(admin '{"op": "notify-settings", "firm": "acme"}')
[ "$(echo "$settings" | json '[e["event"] for e in d["events"] if e["enabled"]]')" = "['autopay_failed', 'posting_rejected']" ] ||
    fail "the defaults: $settings"
echo "$settings" | json 'd["events"][0]["sends_to"]' | grep -q office@acme.example || fail "not to the contact"
admin '{"op": "notify-set", "firm": "acme", "event": "link_paid", "enabled": true, "recipients": "a@b.example\r\nBcc: c@d.example"}' |
    grep -q "is not an e-mail address" || fail "a header in an address was not refused"
# The CLI sets what the staff page sets (matterlink notify set / show).
cli notify set --firm acme --event link_paid --on --to "desk@acme.example, boss@acme.example" |
    grep -E -q "^link_paid +yes +desk@acme.example, boss@acme.example" || fail "notify set --on"
cli notify set --firm acme --event link_paid --minutes 5 --on 2>&1 | grep -q "agent_offline only" ||
    fail "minutes for link_paid was not refused"
cli notify set --firm acme --event link_paid 2>&1 | grep -q "say --on or --off" || fail "no --on or --off"
set_event posting_rejected false ""
set_event agent_offline true "it@acme.example" 1

# A link paid: one mail to each address.
invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES ORDER BY invoice_number LIMIT 1")
token=$(cli --json link create --firm acme --invoice "$invoice=3.00" --payer-name "Pat Doe" \
    --payer-email pat@example.com | json 'd["link"]["token"]') || fail "link create"
echo "4242424242424242 04/2031 123" | cli --json link pay "$token" --card-stdin >/dev/null || fail "link pay"
link_paid() { [ "$(mails_where '"Payment link paid" in m["headers"]["subject"] and m["rcpt_tos"] in (["desk@acme.example"], ["boss@acme.example"])')" = 2 ]; }
wait_for 20 "the link-paid notices" link_paid

# The agent away: a posting waits, its invoice is voided meanwhile (so it will be rejected).
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES WHERE invoice_number <> '$invoice' ORDER BY invoice_number LIMIT 1")
victim=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' ORDER BY invoice_date, invoice_number LIMIT 1")
stop_agent
uuid=$(cli --json pay --firm acme --client "$client" --amount 0.01 | json 'd["posting_uuid"]')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$victim'"
away() { [ -n "$(store "SELECT offline_since FROM notify_setting WHERE event = 'agent_offline' AND offline_since IS NOT NULL")" ]; }
wait_for 20 "the core to see the agent away" away
store "UPDATE notify_setting SET offline_since = offline_since - 120 WHERE event = 'agent_offline'" >/dev/null
offline_mailed() { [ "$(mails_where '"Agent offline" in m["headers"]["subject"] and m["rcpt_tos"] == ["it@acme.example"]')" = 1 ]; }
wait_for 20 "the agent-offline notice" offline_mailed
start_agent
back() { [ -z "$(store "SELECT offline_since FROM notify_setting WHERE event = 'agent_offline' AND offline_since IS NOT NULL")" ]; }
wait_for 30 "the core to see the agent back" back
wait_for 30 "the posting to be rejected" posting_is "$uuid" rejected

# Payment received, on without an address: to the contact address. Its notice is queued by
# the same sweep that would have sent the rejection, after it: then none was sent.
set_event payment_received true ""
echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$invoice=1.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin >/dev/null || fail "charge"
received() { [ "$(mails_where '"Payment received" in m["headers"]["subject"] and m["rcpt_tos"] == ["office@acme.example"]')" = 1 ]; }
wait_for 20 "the payment-received notice" received
[ "$(mails_where '"Posting rejected" in m["headers"]["subject"]')" = 0 ] || fail "posting rejected is off, yet mailed"
# On again: the rejection is told, to the contact address, once.
# --off and --on again keep the addresses (none: the contact address) when --to is left out.
cli notify set --firm acme --event posting_rejected --off >/dev/null || fail "notify set --off"
cli notify set --firm acme --event posting_rejected --on >/dev/null || fail "notify set --on"
cli notify show --firm acme | grep -E -q "^posting_rejected +yes +office@acme.example" || fail "notify show"
rejected() { [ "$(mails_where '"Posting rejected" in m["headers"]["subject"] and m["rcpt_tos"] == ["office@acme.example"] and "'"$uuid"'" in m["body"]')" = 1 ]; }
wait_for 20 "the rejection notice" rejected
[ "$(mails_where '"Agent offline" in m["headers"]["subject"]')" = 1 ] || fail "the agent-offline notice was sent twice"
[ "$(mails_where '"Payment link paid" in m["headers"]["subject"]')" = 2 ] || fail "the link-paid notice was sent again"
cli notify set --firm acme --event link_paid --off | grep -E -q "^link_paid +no +nobody" || fail "link_paid --off"
[ "$(admin '{"op": "notify-settings", "firm": "acme"}' | json '[e["recipients"] for e in d["events"] if e["event"] == "link_paid"][0]')" = "['desk@acme.example', 'boss@acme.example']" ] ||
    fail "--off without --to dropped the addresses"
log "PASS"
