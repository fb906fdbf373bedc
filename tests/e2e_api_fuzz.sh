#!/bin/bash
# dialects: sqlite postgresql
# Hostile requests to every op (tests/api_fuzz.py reads them from core/ml_admin.c): values of
# every JSON type at and past their bounds, strangers, non-requests. Through the web's api
# socket (anonymous, made-up sessions, and two real actors: a signed-in payer who must never
# see another payer's data, a read-only staff member who must never get a change made) and
# then the admin socket (the operator, who may do anything; several clients at once), with a
# real agent and the HTTP test processor. Every request gets a JSON reply (an error text when
# refused), no reply holds the card number sent, the other payer's profile, cards and
# associations are as they were, the core is still serving afterwards, its log has no
# sanitizer report, and the books balance to the cent (tests/lib_books.sh) after what the
# accepted requests paid and gave back. ML_API_FUZZ_COUNT sets the number of requests per
# client (default 1500; bench/ runs more), ML_API_FUZZ_PARALLEL the operator's clients
# (default 2), ML_API_FUZZ_SEED the seed (each run prints its own).
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
. "$ML_SOURCE/tests/lib_books.sh"
setup 3 24
start_smtp
start_processor
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
# Real actors for the api socket: payer Pat, signed in to the portal, who must never be shown
# anything of payer Zed (whose ids the fuzz is given), and a read-only staff member, who
# must never get a change made.
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
clients=($(matter_sql "SELECT DISTINCT client_number FROM $OPEN_INVOICES ORDER BY client_number"))
pat=$(cli --json payer add --firm acme --name "Pat Fuzz" --email pat.fuzz@example.com | json 'd["payer"]["payer_id"]') ||
    fail "payer add (Pat)"
zed=$(cli --json payer add --firm acme --name "Zed Otherpayer" --email zed.other@example.com | json 'd["payer"]["payer_id"]') ||
    fail "payer add (Zed)"
cli association add "$pat" --client "${clients[0]}" >/dev/null || fail "association add (Pat)"
zed_association=$(cli --json association add "$zed" --client "${clients[1]}" | json 'd["association"]["association_id"]') ||
    fail "association add (Zed)"
zed_method=$(cli --json method add "$zed" --token tok_zed_visa --brand visa --last4 4242 --expiry 12/2031 |
    json 'd["method"]["method_id"]') || fail "method add (Zed)"
payer_signed_in "$pat" pat.fuzz@example.com
payer_members=$(echo "$SIGNED_IN" | json 'json.dumps({"session": d["session"], "csrf": d["csrf"]})')
staff_signed_in reader@acme.test read
staff_members=$(echo "$SIGNED_IN" | json 'json.dumps({"staff_session": d["staff_session"], "csrf": d["csrf"]})')
actors='[{"kind": "payer", "members": '"$payer_members"',
    "forbidden": ["zed.other@example.com", "Zed Otherpayer", "tok_zed_visa"]},
    {"kind": "staff", "role": "read", "members": '"$staff_members"', "forbidden": ["tok_zed_visa"]}]'
learnt='{"payer_id": ['"$zed"'], "method_id": ['"$zed_method"'], "association_id": ['"$zed_association"']}'
COUNT=${ML_API_FUZZ_COUNT:-1500}
SEED=${ML_API_FUZZ_SEED:-$(date +%s)}
log "seed $SEED (ML_API_FUZZ_SEED=$SEED repeats this run)"
# The api socket first, with the actors: then what Zed owns must be as it was.
API_FUZZ_ACTORS=$actors API_FUZZ_LEARNT=$learnt /usr/bin/python3 "$ML_SOURCE/tests/api_fuzz.py" \
    "$ML_BIN/ml_api_client" "ipc://$W/api.sock" "$COUNT" "$((SEED + 1))" api || fail "the api socket"
zed_now=$(cli --json payer show "$zed" | json '"%s|%s|%s|%s" % (d["payer"]["name"], d["payer"]["email"],
    sorted(m["method_id"] for m in d["payer"]["methods"]), sorted(a["association_id"] for a in d["payer"]["associations"]))') ||
    fail "payer show (Zed)"
[ "$zed_now" = "Zed Otherpayer|zed.other@example.com|[$zed_method]|[$zed_association]" ] ||
    fail "the api socket's actors changed what Zed owns: $zed_now"
# The operator's socket from PARALLEL clients at once (ML_API_FUZZ_PARALLEL, default 2): the
# same invoices, charges and links asked for by several at a time.
PARALLEL=${ML_API_FUZZ_PARALLEL:-2}
pids=()
for client in $(seq 1 "$PARALLEL"); do
    /usr/bin/python3 "$ML_SOURCE/tests/api_fuzz.py" "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" \
        "$COUNT" "$((SEED + 100 * client))" >"$W/admin_fuzz_$client.out" 2>&1 &
    pids+=($!)
done
for client in $(seq 1 "$PARALLEL"); do
    wait "${pids[$((client - 1))]}" || {
        cat "$W/admin_fuzz_$client.out"
        fail "the admin socket (client $client)"
    }
    tail -n 1 "$W/admin_fuzz_$client.out"
done
core_survived "the requests"
# What the accepted requests paid, refunded and posted balances in the books.
check_books
log "PASS"
