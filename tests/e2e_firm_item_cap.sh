#!/bin/bash
# dialects: sqlite postgresql
# A firm's replica stays within core/max_firm_items, whatever its agent sends (an agent is
# outside input, and the store is every firm's). A registered agent gone bad
# (tests/ml_hostile_agent.c) with the firm's own key:
#   - with a limit of 12,000, starts four snapshots of 10,500 new items each and never ends
#     one: the store keeps at most two limits' worth of rows (SQLite), and no load table but
#     the newest (PostgreSQL, where a snapshot past 10,000 rows goes to one);
#   - with a limit of 300, sends a snapshot of 400 items: refused with ERROR 413;
#   - ends a snapshot of 250 items and then sends change batches of 20 new items each: the
#     batch that could pass the limit is refused whole (ERROR 413), and status's totals are
#     still the replica's sums.
# Then the real agent restores the replica. Last, with a limit of just what the firm has, a
# change to an invoice's balance is taken, a change that adds three invoices is refused, the
# agent says why (core says 413), and once the operator raises the limit the change arrives,
# without a new snapshot. Meanwhile a billing member's dashboard, in a real browser, says the
# firm's matter data is not taken and whom to ask.
. "$(dirname "$0")/lib_e2e.sh"
setup 3 12
start_smtp
portal_config
set_limit() { sed -i "/^    max_firm_items = /d; s|^    agents = .*|&\n    max_firm_items = $1|" "$W/core.cfg"; }
set_limit 12000
start_core
hostile() {
    "$ML_BIN/ml_hostile_agent" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
        --cert "$W/agent.cert_secret" --seed 1 "$@" >>"$W/hostile.log" 2>&1 ||
        fail "ml_hostile_agent $*: $(tail -n 3 "$W/hostile.log")"
    log "$(grep "^ml_hostile_agent" "$W/hostile.log" | tail -n 1)"
}
acme_rows() { core_sql "SELECT COUNT(*) FROM open_item WHERE firm_id = 'acme'"; }
load_tables() {
    core_sql "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()
        AND tablename LIKE 'open_item_' || md5('acme') || '\\_%'"
}

# Snapshots started and abandoned, again and again.
hostile --flood 4 --rows 10500
grep -q "4 sessions of 10500 items never ended; 840 batches acked, 0 refused" "$W/hostile.log" ||
    fail "the abandoned snapshots were not taken as the limit allows: $(grep flood: "$W/hostile.log")"
# The last batches are acknowledged when taken, and written just after.
sleep 2
rows=$(acme_rows)
log "after four abandoned snapshots of 10,500 items: $rows rows in the replica"
[ "$rows" -le 24000 ] || fail "abandoned snapshots left $rows rows, more than twice the limit of 12,000"
if [ -n "$STORE_DATABASE" ]; then
    tables=$(load_tables)
    log "load tables left: $tables"
    [ "$tables" -le 1 ] || fail "abandoned snapshots left $tables load tables"
fi
stop_core
set_limit 300
start_core

# A snapshot larger than the limit.
hostile --flood 1 --rows 400
grep -q "1 sessions of 400 items never ended; 6 batches acked, 1 refused" "$W/hostile.log" ||
    fail "a snapshot of 400 items was not refused at the limit: $(grep flood: "$W/hostile.log" | tail -n 1)"
grep -q "ERROR 413 the snapshot would take the firm's" "$W/hostile.log" ||
    fail "the refusal was not ERROR 413: $(grep ERROR "$W/hostile.log")"
grep -q "firm acme: the snapshot would take the firm's replica past the core's limit of 300 items" \
    "$W/core.log" || fail "the core did not log the refused snapshot"

# Changes that grow the replica past the limit.
hostile --grow 250
grep -q "grow: snapshot of 250 items ended, then 2 change batches of 20 new items acked, the next one refused" \
    "$W/hostile.log" || fail "changes were not refused at the limit: $(grep grow: "$W/hostile.log")"
grep -q "ERROR 413 a change batch would take the firm's" "$W/hostile.log" ||
    fail "the refusal was not ERROR 413: $(grep ERROR "$W/hostile.log")"
[ "$(acme_rows)" = 290 ] || fail "the replica holds $(acme_rows) rows, not the 290 taken"
totals=$(core_sql "SELECT SUM(item_count) FROM replica_total WHERE firm_id = 'acme'")
[ "$totals" = 290 ] || fail "status counts $totals items, not the replica's 290"
core_survived "the hostile agent"

# The real agent brings the replica back to the matter database's.
start_agent
wait_for 60 "the real agent to make the replica the matter database's" replica_matches
have=$(( $(status_field invoice_count) + $(status_field trust_ledger_count) ))

# A limit of just the firm's items: an update is taken, a change adding three invoices is
# refused whole.
stop_core
set_limit "$have"
start_core
wait_for 30 "the agent to resume changes" agent_online
paid=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE balance_minor > 100 ORDER BY source_id LIMIT 1")
matter_sql "UPDATE invoice SET balance_minor = balance_minor - 100 WHERE invoice_number = '$paid'"
wait_for 20 "a change to an invoice's balance to be taken at the limit" replica_matches
matter=$(matter_sql "SELECT matter_id FROM matter ORDER BY matter_id LIMIT 1")
matter_sql "INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status)
    VALUES ('INV-CAP-1', $matter, '2026-11-20', '2026-12-20', 'USD', 4200, 4200, 'open'),
           ('INV-CAP-2', $matter, '2026-11-20', '2026-12-20', 'USD', 4300, 4300, 'open'),
           ('INV-CAP-3', $matter, '2026-11-20', '2026-12-20', 'USD', 4400, 4400, 'open')"
agent_told() { grep -q "core says 413: a change batch would take the firm's replica past the core's limit of $have items" "$W/agent.log"; }
wait_for 30 "the agent to be told why its change was refused" agent_told
[ "$(core_sql "SELECT COUNT(*) FROM open_item WHERE invoice_number LIKE 'INV-CAP-%'")" = 0 ] ||
    fail "part of the refused change batch was stored"
# status says so, for the operator (JSON and the CLI's own words).
case "$(status_field refused)" in
    "a change batch would take the firm's replica past the core's limit of $have items"*) ;;
    *) fail "status does not say why the firm's changes are refused: $(status_field refused)" ;;
esac
cli status | grep -q "^  refused: *since 20.*: a change batch would take" ||
    fail "the CLI's status does not show the refusal: $(cli status)"
cli --json staff invite --firm acme --email bo@example.com --name "Bo Billing" --role billing >/dev/null ||
    fail "staff invite bo"
start_web
HOME="$W" timeout 120 /usr/bin/python3 "$ML_SOURCE/tests/staff_postings.py" "http://127.0.0.1:$WEB_PORT" \
    refused "$(link_token bo@example.com staff/accept)" "$ML_BIN/screenshots" || fail "the dashboard, data refused"
# The operator raises the limit: the agent's next greeting (30 s after the refusal) resumes.
snapshots=$(grep -c "snapshot requested" "$W/core.log")
stop_core
set_limit 300
start_core
has_cap_invoices() { [ "$(core_sql "SELECT COUNT(*) FROM open_item WHERE invoice_number LIKE 'INV-CAP-%'")" = 3 ]; }
wait_for 60 "the change to arrive once the limit is raised" has_cap_invoices
wait_for 10 "the replica to be the matter database's" replica_matches
[ "$(status_field refused)" = None ] || fail "status still shows a refusal: $(status_field refused)"
[ "$(grep -c "snapshot requested" "$W/core.log")" = "$snapshots" ] ||
    fail "raising the limit cost a new snapshot"
log "PASS"
