#!/bin/bash
# dialects: postgresql mariadb
# A slow database cannot hang a search: while another session holds the invoice table
# locked, a search with a 1 s deadline gets a clear error in about that time, and the
# next search after the lock is gone works.
. "$(dirname "$0")/lib_e2e.sh"
setup 10 100
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
background_session \
    "BEGIN; LOCK TABLE invoice IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;" \
    "LOCK TABLES invoice WRITE; DO SLEEP(4); UNLOCK TABLES;"
sleep 1 # the lock is taken
started=$(date +%s%N)
out=$(cli --json search --firm acme --deadline 1000 --by client-number "$client" 2>&1) &&
    fail "a search through a locked table succeeded: $out"
elapsed=$((($(date +%s%N) - started) / 1000000))
log "locked: '$out' after $elapsed ms"
echo "$out" | grep -q "did not answer" || fail "unclear error for a slow database: $out"
[ "$elapsed" -lt 2500 ] || fail "the slow search took $elapsed ms to fail (deadline 1000 ms)"
wait "$LOCKER"
found_again() {
    cli --json search --firm acme --by client-number "$client" >/dev/null 2>&1
}
wait_for 20 "searches to work again once the lock is gone" found_again
log "PASS"
