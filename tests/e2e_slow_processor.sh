#!/bin/bash
# dialects: sqlite postgresql
# The core calls the card processor from a worker thread: while the processor takes 10 s to
# answer a card payment, status, a search and a staff payment (its posting posted by the
# matter system) each answer in well under a second, and the card payment then completes,
# approved, with its one posting.
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_processor.sh"
setup 10 60
PROCESSOR_TIMEOUT_MS=20000 start_processor
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
add_accounts
row=$(matter_sql "SELECT o.invoice_number || '|' || o.client_number FROM $OPEN_INVOICES ORDER BY o.invoice_number LIMIT 1")
IFS='|' read -r invoice client <<<"$row"
other=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES WHERE client_number <> '$client' ORDER BY client_number LIMIT 1")

# The next request the processor gets (the card's tokenization) is answered after 10 s.
processor_control '{"delay_ms": 10000, "delay_count": 1}'
started=$(date +%s%N)
(echo "4242424242424242 04/2031 123" | cli --json --timeout 60000 charge --firm acme --invoice "$invoice=1.00" \
    --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin >"$W/charge.out" 2>&1; echo $? >"$W/charge.rc") &
charger=$!
in_flight() { [ "$(curl -sf "$PROCESSOR_URL/_test/stats" | json 'd["requests"]')" -ge 1 ]; }
wait_for 10 "the processor to get the slow request" in_flight

# Each of these must answer within a second while the processor call is in flight.
quick() {
    what=$1
    shift
    before=$(date +%s%N)
    out=$("$@" 2>&1) || fail "$what failed while the processor was slow: $out"
    took=$((($(date +%s%N) - before) / 1000000))
    log "$what answered in $took ms"
    [ "$took" -lt 1000 ] || fail "$what took $took ms while the processor was slow"
    echo "$out" >"$W/quick.out"
}
quick status cli --json status
quick search cli --json search --firm acme --by invoice-number "$invoice"
grep -q "$invoice" "$W/quick.out" || fail "the search did not find $invoice"
quick pay cli --json pay --firm acme --client "$other" --amount 1.00
posting=$(json 'd["posting_uuid"]' <"$W/quick.out")
wait_for 5 "the staff posting to be posted" posting_is "$posting" posted
[ -f "$W/charge.rc" ] && fail "the card payment finished before the processor answered"
log "status, search and a staff payment ($posting posted) while the processor was slow"

# The card payment then completes: approved, one posting, posted.
wait "$charger"
[ "$(cat "$W/charge.rc")" = 0 ] || fail "charge failed: $(cat "$W/charge.out")"
took=$((($(date +%s%N) - started) / 1000000))
[ "$took" -ge 9000 ] || fail "the processor did not hold the charge ($took ms)"
[ "$(json 'd["payment"]["status"]' <"$W/charge.out")" = approved ] || fail "not approved: $(cat "$W/charge.out")"
charge_posting=$(json 'd["payment"]["charges"][0]["posting_uuid"]' <"$W/charge.out")
wait_for 30 "the card payment's posting to be posted" posting_is "$charge_posting" posted
log "PASS"
