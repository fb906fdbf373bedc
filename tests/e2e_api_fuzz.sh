#!/bin/bash
# dialects: sqlite postgresql
# Hostile requests to every op (tests/api_fuzz.py reads them from core/ml_admin.c): values of
# every JSON type at and past their bounds, strangers, non-requests. Through the admin socket
# (the operator, who may do anything) and the web's api socket (anonymous or made-up
# sessions), with a real agent and the HTTP test processor. Every request gets a JSON reply
# (an error text when refused), no reply holds the card number sent, the core is still
# serving afterwards, its log has no sanitizer report, and the books balance to the cent
# (tests/lib_books.sh) after what the accepted requests paid and gave back. ML_API_FUZZ_COUNT sets the
# number of requests per socket (default 1500; bench/ runs more).
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
. "$ML_SOURCE/tests/lib_books.sh"
setup 3 24
start_processor
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
COUNT=${ML_API_FUZZ_COUNT:-1500}
SEED=${ML_API_FUZZ_SEED:-$(date +%s)}
log "seed $SEED (ML_API_FUZZ_SEED=$SEED repeats this run)"
/usr/bin/python3 "$ML_SOURCE/tests/api_fuzz.py" "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" \
    "$COUNT" "$SEED" || fail "the admin socket"
/usr/bin/python3 "$ML_SOURCE/tests/api_fuzz.py" "$ML_BIN/ml_api_client" "ipc://$W/api.sock" \
    "$COUNT" "$((SEED + 1))" api || fail "the api socket"
kill -0 "$CORE_PID" 2>/dev/null || fail "the core died"
if grep -q 4242424242424242 "$W/core.log"; then
    grep -n 4242424242424242 "$W/core.log" | head -5 >&2
    fail "the card number the requests carried is in the core's log"
fi
wait_for 10 "the core to answer status" cli status
# What the accepted requests paid, refunded and posted balances in the books.
check_books
log "PASS"
