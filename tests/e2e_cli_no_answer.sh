#!/bin/bash
# dialects: sqlite
# A CLI request that gets no answer says whether it may have taken effect, and how to find
# out: a pay that reached a core that cannot answer (its store is locked) names its pay key
# (given or made up) and exits with 6; a read just says no answer (3); a core that is stopped
# before it takes the request means nothing was sent (3); pay --wait whose core stops
# answering says the payment was recorded (4). A core stopped mid-charge (the
# processor holds the charge) gives exit 6 after --timeout; a core killed mid-charge is seen
# at once (its connection closes), not after the 30 s default timeout.
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20

# The processor test server, holding the timeout card's charges for 60 s.
printf 'test-key\n' >"$W/processor.key"
chmod 600 "$W/processor.key"
/usr/bin/python3 "$ML_SOURCE/tests/processor_server.py" --api-key-file "$W/processor.key" \
    --timeout-card-delay-ms 60000 >"$W/processor.port" 2>>"$W/processor.log" &
PROCESSOR_PID=$!
stop_processor_then_cleanup() {
    status=$?
    stop_process "$PROCESSOR_PID"
    (exit $status)
    cleanup
}
trap stop_processor_then_cleanup EXIT
wait_for 10 "the processor test server" test -s "$W/processor.port"
cat >>"$W/core.cfg" <<CFG
processor
    kind = http
    endpoint = "http://127.0.0.1:$(cat "$W/processor.port")"
    api_key_file = $W/processor.key
CFG
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
IFS='|' read -r invoice client <<<"$(matter_sql "SELECT invoice_number || '|' || client_number FROM $OPEN_INVOICES ORDER BY invoice_number LIMIT 1")"

# 1. The core's store is locked: the core takes a pay and cannot answer it.
mkfifo "$W/lock.sql"
sqlite3 "$W/core.db" <"$W/lock.sql" >"$W/lock.out" 2>&1 &
LOCK_PID=$!
exec 7>"$W/lock.sql"
echo "BEGIN IMMEDIATE; SELECT 'locked';" >&7
wait_for 10 "the store lock" grep -q locked "$W/lock.out"
out=$(cli --timeout 1500 pay --firm acme --client "$client" --amount 1.00 --pay-key desk-1 2>&1)
rc=$?
[ $rc = 6 ] || fail "an unanswered pay exited with $rc, not 6: $out"
for words in "no answer from the core" "the payment may have been recorded" \
    "again with --pay-key desk-1" "matterlink postings --firm acme"; do
    echo "$out" | grep -qF -- "$words" || fail "an unanswered pay does not say '$words': $out"
done
log "an unanswered pay: $out"
out=$(cli --timeout 1500 pay --firm acme --client "$client" --amount 1.00 2>&1)
[ $? = 6 ] && echo "$out" | grep -qE -- "--pay-key cli-[0-9a-f-]{36} " ||
    fail "an unanswered pay without --pay-key does not name the key it sent: $out"
out=$(cli --timeout 1500 open-items --firm acme 2>&1)
rc=$?
[ $rc = 3 ] && echo "$out" | grep -q "no answer" && ! echo "$out" | grep -q "may have" ||
    fail "an unanswered read (exit $rc) should only say no answer: $out"
echo "ROLLBACK;" >&7
exec 7>&-
wait "$LOCK_PID"
wait_for 30 "the core to answer again" cli status

# 2. A stopped core does not take the request: nothing was sent.
pause_process "$CORE_PID"
out=$(cli --timeout 1000 pay --firm acme --client "$client" --amount 1.00 2>&1)
rc=$?
kill -CONT "$CORE_PID"
[ $rc = 3 ] && echo "$out" | grep -q "nothing was sent" ||
    fail "a pay to a stopped core (exit $rc) should say nothing was sent: $out"

# A core that stops answering while pay --wait asks for the recorded posting: the payment
# is made, only its outcome is not known (4). Without the agent the posting stays pending.
stop_agent
postings() { cli --json postings --firm acme | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["postings"]))'; }
before=$(postings)
(
    cli --timeout 5000 pay --firm acme --client "$client" --amount 1.00 --wait 60 >"$W/wait.out" 2>&1
    echo $? >"$W/wait.rc"
) &
recorded() { [ "$(postings)" -gt "$before" ]; }
settled() { recorded || [ -s "$W/wait.rc" ]; }
wait_for 20 "the payment to be recorded (or pay --wait to end)" settled
recorded || fail "pay --wait did not record the payment: $(cat "$W/wait.out")"
pause_process "$CORE_PID"
wait_for 20 "pay --wait to give up" test -s "$W/wait.rc"
kill -CONT "$CORE_PID"
out=$(cat "$W/wait.out")
[ "$(cat "$W/wait.rc")" = 4 ] && echo "$out" | grep -q "the payment was recorded as posting" ||
    fail "pay --wait whose core stopped answering exited with $(cat "$W/wait.rc"): $out"

# 3. The core stops, then dies, while the processor holds a charge.
# Cards the processor has tokenized: once a charge's card is, the core is working on it.
tokens() {
    python3 -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:%s/_test/stats" % sys.argv[1]))["tokens"])' \
        "$(cat "$W/processor.port")"
}
charge() {
    echo "4000000000003006 04/2031 123" | cli "$@" charge --firm acme --invoice "$invoice=1.00" \
        --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin >"$W/charge.out" 2>&1
    echo $? >"$W/charge.rc"
}
rm -f "$W/charge.rc"
charge --timeout 3000 &
wait_for 20 "the charge to reach the processor" output_is 1 tokens
pause_process "$CORE_PID"
wait_for 20 "the charge command to give up" test -s "$W/charge.rc"
out=$(cat "$W/charge.out")
[ "$(cat "$W/charge.rc")" = 6 ] && echo "$out" | grep -q "within 3 s" &&
    echo "$out" | grep -q "the card may have been charged" ||
    fail "a charge to a core stopped mid-request exited with $(cat "$W/charge.rc"): $out"
log "a core stopped mid-charge: $out"
kill -9 "$CORE_PID"
wait "$CORE_PID" 2>/dev/null
start_core

rm -f "$W/charge.rc"
charge &
wait_for 20 "the second charge to reach the processor" output_is 2 tokens
started=$(date +%s)
kill -9 "$CORE_PID"
wait "$CORE_PID" 2>/dev/null
CORE_PID=
wait_for 10 "the charge command to see the core gone" test -s "$W/charge.rc"
out=$(cat "$W/charge.out")
[ "$(cat "$W/charge.rc")" = 6 ] && echo "$out" | grep -q "closed the connection before answering" &&
    echo "$out" | grep -q "the card may have been charged" ||
    fail "a charge to a core killed mid-request exited with $(cat "$W/charge.rc"): $out"
log "a core killed mid-charge, after $(($(date +%s) - started)) s: $out"

log "PASS"
