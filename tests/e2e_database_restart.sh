#!/bin/bash
# dialects: postgresql mariadb
# The matter database goes away under the agent, mid-snapshot and mid-stream (PostgreSQL is
# restarted; on MariaDB the agent's session is killed). The agent reconnects and resumes:
# the replica ends equal to the matter database, and a payment made around the outage
# posts exactly once. Uses its own database servers, since it restarts them.
. "$(dirname "$0")/lib_e2e.sh"
ML_SERVERS_DIR=$W/servers
chmod 755 "$W" # the servers run as their service users, who must reach their data under $W
sh "$ML_SOURCE/tests/servers.sh" start "$ML_SERVERS_DIR" >/dev/null || fail "start servers"
setup 200 20000
# The snapshot is paced (database/snapshot_rows_per_second), so it lasts 8 s however fast
# the machine: unpaced it once ended in 0.8 s, before a poll saw it under way (on a
# PostgreSQL store its rows show after the first COPY, 10,000 rows in). The snapshot after
# the interruption is paced too, and the test checks that it kept the pace.
ROWS_PER_SECOND=2000
sed -i "s/^    batch_rows = 100\$/&\n    snapshot_rows_per_second = $ROWS_PER_SECOND/" "$W/agent.cfg"
grep -q "^    snapshot_rows_per_second = $ROWS_PER_SECOND" "$W/agent.cfg" || fail "agent.cfg is not paced"

interrupt_database() {
    case $ML_DIALECT in
        postgresql)
            runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$ML_SERVERS_DIR/pg/data" \
                -m fast -w restart >/dev/null || fail "restart PostgreSQL"
            ;;
        mariadb)
            ids=$(mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot -N -B -e \
                "SELECT id FROM information_schema.processlist WHERE db = '$MATTER_DATABASE' AND id <> CONNECTION_ID()")
            [ -n "$ids" ] || fail "no agent session to kill"
            for id in $ids; do mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot -e "KILL $id" 2>/dev/null; done
            ;;
    esac
}

start_core
start_agent
# The snapshot's rows stored so far, not status's counts: those count a snapshot once it
# ends (the totals of a firm whose snapshot is loading are its last complete replica's). On a
# PostgreSQL store the rows wait in the firm's load table until SNAPSHOT-END swaps it in
# (store version 5, docs/architecture.md).
snapshot_rows() {
    if [ -n "$STORE_DATABASE" ]; then
        table=$(core_sql "SELECT ml_replica_load (firm_id, generation) FROM replica_state WHERE firm_id = 'acme'")
        core_sql "SELECT COUNT(*) FROM $table"
    else
        core_sql "SELECT COUNT(*) FROM open_item"
    fi
}
snapshot_under_way() {
    [ "$(status_field complete)" = 0 ] && [ "$(snapshot_rows)" -gt 0 ]
}
wait_for 60 "the snapshot to be under way" snapshot_under_way
interrupt_database
log "database interrupted mid-snapshot at $(snapshot_rows) rows"
wait_for 120 "the replica to match the matter database after the interruption" replica_matches
# The last snapshot, start to end in the agent's log, took no less than its rows at the pace.
python3 - "$W/agent.log" "$ROWS_PER_SECOND" <<'PY' || fail "the snapshot did not keep its pace"
import datetime, re, sys
start = end = None
for line in open(sys.argv[1]):
    stamp = line.split(" ", 1)[0]
    if "core asked for a snapshot" in line:
        start = datetime.datetime.fromisoformat(stamp.rstrip("Z"))
    hit = re.search(r"snapshot sent: (\d+) items", line)
    if hit and start:
        end, rows = datetime.datetime.fromisoformat(stamp.rstrip("Z")), int(hit.group(1))
seconds = (end - start).total_seconds()
print(f"the last snapshot: {rows} rows in {seconds:.2f} s", file=sys.stderr)
sys.exit(0 if rows > 0 and seconds >= (rows - 100) / int(sys.argv[2]) else 1)
PY

# Mid-stream: changes keep coming while the database goes away; a payment is queued too.
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 2.00) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
(
    for n in $(seq 1 60); do
        matter_sql "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = (SELECT target FROM (SELECT MIN(invoice_id) + $n AS target FROM invoice WHERE status = 'open' AND balance_minor > 100) t)" >/dev/null 2>&1
        sleep 0.05
    done
) &
writer=$!
sleep 1
interrupt_database
log "database interrupted mid-stream"
wait "$writer"
wait_for 120 "the replica to match the matter database after the second interruption" replica_matches
wait_for 60 "the payment to post" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "not one receipt"
grep -q "reconnecting" "$W/agent.log" || fail "the agent never noticed the outage"
log "PASS"
