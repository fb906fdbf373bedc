#!/bin/bash
# dialects: sqlite
# Manage Postings and the dashboard in a real browser (tests/staff_postings.py) against real
# core, agent, SMTP server, card processor (the core's test processor) and matterlink-web: a
# posting the matter system rejects (its invoice voided while the agent was away) is found
# under "Rejected", reallocated in the browser to another invoice of its client, and posts;
# a refund from a card payment's page makes a reversing posting that posts, and a refund of
# more than is left is refused in the core's words; a filter by client narrows the list, and
# pages go on without a posting twice; the dashboard shows the agent online and the counts,
# and "Offline" once the agent stopped; a read-only member sees but cannot act (the core
# answers 404).
. "$ML_SOURCE/tests/lib_e2e.sh"

setup 8 60
start_smtp
portal_config
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }

client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 3 ORDER BY client_number LIMIT 1")
[ -n "$client" ] || fail "no client with three open invoices in the sample"
other_client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES WHERE client_number <> '$client' ORDER BY client_number LIMIT 1")

# A staff payment on the client's oldest invoice, which the matter system voids meanwhile.
stop_agent
out=$(cli --json pay --firm acme --client "$client" --amount 0.50) || fail "pay: $out"
rejected=$(echo "$out" | json 'd["posting_uuid"]')
paid=$(echo "$out" | json 'd["lines"][0]["invoice_number"]')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$paid'"
start_agent
wait_for 30 "the payment's posting to be rejected" posting_is "$rejected" rejected
other_invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' AND invoice_number <> '$paid' ORDER BY invoice_number LIMIT 1")

# A card payment on another invoice of the client, and a staff payment of another client.
card_invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' AND invoice_number NOT IN ('$paid', '$other_invoice') AND balance_minor > 2000 ORDER BY invoice_number LIMIT 1")
[ -n "$card_invoice" ] || fail "no third invoice of $client with 20.00 open"
out=$(echo "4242424242424242 04/2031 123" | cli --json charge --firm acme --invoice "$card_invoice=20.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin) || fail "charge: $out"
payment=$(echo "$out" | json 'd["payment"]["payment_uuid"]')
wait_for 30 "the card payment's posting" posting_is "$(echo "$out" | json 'd["payment"]["charges"][0]["posting_uuid"]')" posted
out=$(cli --json pay --firm acme --client "$other_client" --amount 1.00) || fail "pay: $out"
wait_for 30 "the other client's posting" posting_is "$(echo "$out" | json 'd["posting_uuid"]')" posted
# More than a page of postings (25 a page): small staff payments of the other client.
for _ in $(seq 24); do
    cli --json pay --firm acme --client "$other_client" --amount 0.01 >/dev/null || fail "pay 0.01"
done
nothing_waiting() { [ "$(status_field unanswered_posting_count)" = 0 ]; }
wait_for 30 "every posting answered" nothing_waiting

# Bo (billing) and Rita (read-only), invited by the operator.
cli --json staff invite --firm acme --email bo@example.com --name "Bo Billing" --role billing >/dev/null ||
    fail "staff invite bo"
cli --json staff invite --firm acme --email rita@example.com --name "Rita Reader" --role read >/dev/null ||
    fail "staff invite rita"
bo_token=$(link_token bo@example.com staff/accept)
rita_token=$(link_token rita@example.com staff/accept)
[ ${#bo_token} = 43 ] && [ ${#rita_token} = 43 ] || fail "no /staff/accept links in the invitations"

start_web
HOME="$W" timeout 180 /usr/bin/python3 "$ML_SOURCE/tests/staff_postings.py" "http://127.0.0.1:$WEB_PORT" \
    main "$bo_token" "$rita_token" "$rejected" "$other_invoice" "$payment" "$client" "$other_client" \
    "$ML_BIN/screenshots" || fail "the postings browser flow"

# The core's record agrees: one reallocation and one reversal, both posted.
[ "$(cli --json postings --firm acme --status posted | json 'sum(1 for p in d["postings"] if p["source"] == "reallocation")')" = 1 ] ||
    fail "not one posted reallocation"
[ "$(cli --json postings --firm acme | json 'sum(1 for p in d["postings"] if p["source"] == "reversal" and p["status"] == "posted")')" = 1 ] ||
    fail "not one posted reversal"

# The agent stops: once the core's session ends, the dashboard says so.
stop_agent
agent_offline() { [ "$(status_field agent_online)" = False ]; }
wait_for 20 "the core to see the agent offline" agent_offline
HOME="$W" timeout 60 /usr/bin/python3 "$ML_SOURCE/tests/staff_postings.py" "http://127.0.0.1:$WEB_PORT" \
    offline "$ML_BIN/screenshots" || fail "the dashboard offline"
log "PASS"
