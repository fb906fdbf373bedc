#!/bin/bash
# dialects: sqlite
# Hostile HTTP requests to matterlink-web (tests/web_fuzz.py): every page of the portal and
# the staff app with odd paths, queries, bodies, methods and headers, anonymous and with the
# sessions of a billing member and an administrator, on raw sockets. Every request gets a
# well-formed response, never a 5xx; no response holds the card number sent; the web and the
# core still serve afterwards, and their logs have no sanitizer report and no card number.
# ML_WEB_FUZZ_COUNT sets the number of requests (default 1500), ML_WEB_FUZZ_SEED the seed.
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
setup 3 24
start_smtp
WEB_PORT=$(free_port)
start_processor --cors-origin "http://127.0.0.1:$WEB_PORT"
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
cookies=()
for role in billing read; do
    staff_signed_in "$role@acme.test" "$role"
    cookies+=("ml_staff=$(echo "$SIGNED_IN" | json 'd["staff_session"]')")
done
# A payer with portal access, signed in, who may pay a client's invoices.
payer=$(cli --json payer add --firm acme --name "Fuzz Payer" --email payer@acme.test | json 'd["payer"]["payer_id"]') ||
    fail "payer add"
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
cli association add "$payer" --client "$client" >/dev/null || fail "association add"
payer_signed_in "$payer" payer@acme.test
cookies+=("ml_session=$(echo "$SIGNED_IN" | json 'd["session"]')")
start_web "tokenize_url = $PROCESSOR_URL/v1/public/tokens"
COUNT=${ML_WEB_FUZZ_COUNT:-1500}
SEED=${ML_WEB_FUZZ_SEED:-$(date +%s)}
log "seed $SEED (ML_WEB_FUZZ_SEED=$SEED repeats this run)"
/usr/bin/python3 "$ML_SOURCE/tests/web_fuzz.py" "http://127.0.0.1:$WEB_PORT" "$COUNT" "$SEED" \
    "${cookies[@]}" || fail "hostile HTTP requests"
kill -0 "$WEB_PID" 2>/dev/null || fail "matterlink-web died"
kill -0 "$CORE_PID" 2>/dev/null || fail "the core died"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WEB_PORT/sign-in")" = 200 ] ||
    fail "the sign-in page after the requests"
for file in "$W/core.log" "$W/web.log"; do
    if grep -q 4242424242424242 "$file"; then
        grep -n 4242424242424242 "$file" | head -5 >&2
        fail "the card number the requests carried is in $(basename "$file")"
    fi
done
log "PASS"
