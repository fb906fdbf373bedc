#!/bin/bash
# dialects: sqlite postgresql mariadb
# Postings that reach the agent together are applied in one transaction; one that the
# matter system refuses is isolated and rejected with its reason while the others post.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
stop_agent

clients=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number ORDER BY client_number LIMIT 5")
uuids=""
for client in $clients; do
    out=$(cli --json pay --firm acme --client "$client" --amount 1.00) || fail "pay refused: $out"
    uuids="$uuids $(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')"
done
set -- $uuids
[ $# = 5 ] || fail "expected 5 postings"
# Meanwhile the firm voids the invoice the third posting pays.
victim=$(cli --json posting "$3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting"]["lines"][0]["reference"])')
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$victim'"

start_agent
for uuid in "$@"; do
    final() { status=$(posting_field "$1" status); [ "$status" = posted ] || [ "$status" = rejected ]; }
    wait_for 40 "posting $uuid to be final" final "$uuid"
done
[ "$(posting_field "$3" status)" = rejected ] || fail "the posting for the voided invoice was not rejected"
[ "$(posting_field "$3" reason)" = invoice_not_open ] || fail "wrong reason: $(posting_field "$3" reason)"
for uuid in "$1" "$2" "$4" "$5"; do
    [ "$(posting_field "$uuid" status)" = posted ] || fail "posting $uuid did not post"
done
[ "$(matter_sql "SELECT COUNT(*) FROM receipt")" = 4 ] || fail "expected 4 receipts"
[ "$(matter_sql "SELECT COUNT(*) FROM ml_posting_rejection")" = 1 ] || fail "expected 1 recorded rejection"
[ "$(status_field rejected_posting_count)" = 1 ] || fail "the core does not show the rejection"
log "PASS"
