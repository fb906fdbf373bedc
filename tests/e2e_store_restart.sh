#!/bin/bash
# dialects: postgresql
# The core's own PostgreSQL store stops and starts again while payments are being made
# (issue 14 point 6). The core opens its connections again by itself; every payment it
# accepted posts exactly once, and none it refused was recorded: nothing lost, nothing
# doubled. Uses its own database servers, since it stops them.
. "$(dirname "$0")/lib_e2e.sh"
ML_SERVERS_DIR=$W/servers
chmod 755 "$W" # the servers run as their service users, who must reach their data under $W
sh "$ML_SOURCE/tests/servers.sh" start "$ML_SERVERS_DIR" >/dev/null || fail "start servers"
setup 30 300
start_core
start_agent
wait_for 60 "the core to hold every open invoice" core_has_all_invoices
. "$ML_SERVERS_DIR/servers.env"
pg_ctl() { runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$ML_SERVERS_DIR/pg/data" -w "$@" >/dev/null; }
receipts_before=$(matter_sql "SELECT COUNT(*) FROM receipt")
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# Payments one after another, as a busy front desk makes them, until told to stop: the
# posting of each one accepted is kept, each refusal too. A payment whose answer was lost
# with the store (its charge went to the processor, the round that recorded the answer was
# undone) is neither: the CLI says it may have taken effect (exit 6), and the core settles
# its charge with the processor once the store is back, so it posts once or not at all.
clients=$(matter_sql "SELECT DISTINCT client_number FROM $OPEN_INVOICES ORDER BY 1 LIMIT 20")
(
    # (Also stops when the test's directory is gone: a failed test removes it on exit.)
    while [ -d "$W" ] && [ ! -f "$W/stop" ]; do
        for client in $clients; do
            [ -f "$W/stop" ] && break
            out=$(cli --json --timeout 5000 pay --firm acme --client "$client" --amount 0.01 2>&1) &&
                code=0 || code=$?
            if [ "$code" = 0 ]; then
                echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])' >>"$W/accepted"
            elif [ "$code" = 6 ]; then
                echo "$client: $out" >>"$W/unknown"
            else
                echo "$client: $out" >>"$W/refused"
            fi
        done
    done
) &
payer=$!
wait_for 30 "payments before the outage" output_above 4 lines "$W/accepted"
pg_ctl stop -m fast || fail "stop PostgreSQL"
log "the store stopped after $(lines "$W/accepted") payments"
wait_for 30 "a payment refused while the store is down" output_above 0 lines "$W/refused"
pg_ctl start -o "-p $ML_PG_PORT -k $ML_SERVERS_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" ||
    fail "start PostgreSQL"
during=$(lines "$W/accepted")
wait_for 60 "payments accepted again after the outage" output_above $((during + 4)) lines "$W/accepted"
touch "$W/stop"
wait "$payer"
accepted=$(lines "$W/accepted")
unknown=$(lines "$W/unknown")
log "$accepted payments accepted, $(lines "$W/refused") refused (store down), $unknown not answered; first refusal: $(head -n 1 "$W/refused")"

# Every accepted payment posts, exactly once; nothing refused was recorded or posted; one
# not answered posts at most once, once its charge is settled.
all_posted() {
    [ "$(core_sql "SELECT COUNT(*) FROM charge WHERE status IN ('pending', 'unknown')")" = 0 ] &&
        [ "$(core_sql "SELECT COUNT(*) FROM posting WHERE status <> 'posted'")" = 0 ] &&
        [ "$(core_sql "SELECT COUNT(*) FROM posting")" -ge "$accepted" ]
}
wait_for 120 "every charge settled and every posting posted" all_posted
postings=$(core_sql "SELECT COUNT(*) FROM posting")
[ "$postings" -le $((accepted + unknown)) ] ||
    fail "the core holds $postings postings for $accepted accepted payments and $unknown not answered"
while read -r uuid; do
    [ "$(core_sql "SELECT status FROM posting WHERE posting_uuid = '$uuid'")" = posted ] ||
        fail "accepted payment $uuid is not posted"
    [ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] ||
        fail "accepted payment $uuid has not exactly one receipt"
done <"$W/accepted"
[ "$(matter_sql "SELECT COUNT(*) FROM receipt")" = $((receipts_before + postings)) ] ||
    fail "receipts in the matter database are not one per posting"
grep -q "cannot be reached\|connection lost\|server closed the connection" "$W/core.log" ||
    fail "the core never saw its store go away"
# A refusal says the store failed, never that the firm is unknown.
grep -q "unknown firm" "$W/refused" && fail "a payment was refused as for an unknown firm: $(grep -m1 "unknown firm" "$W/refused")"
log "PASS"
