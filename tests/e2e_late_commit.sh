#!/bin/bash
# dialects: postgresql mariadb
# Change capture never misses a committed change: a long transaction that commits late,
# after later changes were already published, still reaches the core; and a thousand
# changes made in one statement (one timestamp) all arrive, once. (SQLite serializes
# writers, so a late commit cannot happen there.)
. "$(dirname "$0")/lib_e2e.sh"
setup 50 2000
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
set -- $(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES ORDER BY source_id LIMIT 2")
late=$1
early=$2
core_balance() { cli --json open-items --firm acme | python3 -c "import json,sys; print(next((i['balance_minor'] for i in json.load(sys.stdin)['items'] if i['invoice_number'] == '$1'), 'none'))"; }

# The late transaction starts first and commits after five seconds.
case $ML_DIALECT in
    postgresql)
        psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$MATTER_DATABASE" -q -v ON_ERROR_STOP=1 \
            -c "BEGIN; UPDATE invoice SET balance_minor = 4242 WHERE invoice_number = '$late'; SELECT pg_sleep(5); COMMIT;" >/dev/null &
        ;;
    mariadb)
        mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot "$MATTER_DATABASE" \
            -e "START TRANSACTION; UPDATE invoice SET balance_minor = 4242 WHERE invoice_number = '$late'; DO SLEEP(5); COMMIT;" &
        ;;
esac
late_writer=$!
sleep 1 # let the late transaction take its change row before the early one
matter_sql "UPDATE invoice SET balance_minor = 4343 WHERE invoice_number = '$early'"
early_arrived() { [ "$(core_balance "$early")" = 4343 ]; }
wait_for 20 "the early change to reach the core" early_arrived
[ "$(core_balance "$late")" != 4242 ] || fail "the late change arrived before its commit"
wait "$late_writer" || fail "the late transaction failed"
late_arrived() { [ "$(core_balance "$late")" = 4242 ]; }
wait_for 20 "the late-committing change to reach the core" late_arrived

# A thousand invoices changed by one statement, at one timestamp.
matter_sql "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE status = 'open' AND balance_minor > 1 AND invoice_id IN (SELECT invoice_id FROM (SELECT invoice_id FROM invoice WHERE status = 'open' AND balance_minor > 1 ORDER BY invoice_id LIMIT 1000) t)"
wait_for 30 "the replica to match after a thousand changes at once" replica_matches
log "PASS"
