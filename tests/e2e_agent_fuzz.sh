#!/bin/bash
# dialects: sqlite postgresql
# A registered agent gone bad (tests/ml_hostile_agent.c): with the firm's own key it greets
# the core and sends hundreds of messages the codec accepts but a sound agent never would:
# items of every odd value, batches out of order or past the window, wrong snapshot ends,
# change cursors that run backwards, results for postings never sent, messages that go the
# other way. The core answers or refuses each, and afterwards: it still serves; what its
# replica holds is what the contract allows (open invoices owing something, three-letter
# currencies, real dates); the totals that status reads are the replica's own
# sums; no posting was made or changed; and the real agent, once it connects, brings the
# replica back to the matter database's. ML_AGENT_FUZZ_COUNT messages (default 400),
# ML_AGENT_FUZZ_SEED the seed (each run prints its own).
. "$(dirname "$0")/lib_e2e.sh"
setup 6 30
start_core
COUNT=${ML_AGENT_FUZZ_COUNT:-400}
SEED=${ML_AGENT_FUZZ_SEED:-$(($(date +%s%N) / 1000 % 1000000))}
log "seed $SEED (ML_AGENT_FUZZ_SEED=$SEED repeats this run)"
postings_before=$(core_sql "SELECT COUNT(*) FROM posting")
for round in 1 2 3; do
    "$ML_BIN/ml_hostile_agent" --endpoint "tcp://127.0.0.1:$PORT" --server-key "$CORE_KEY" \
        --cert "$W/agent.cert_secret" --seed $((SEED + round)) --count "$COUNT" >>"$W/hostile.log" 2>&1 ||
        fail "the core stopped answering the hostile agent (round $round): $(tail -n 3 "$W/hostile.log")"
done
log "$(grep "^ml_hostile_agent" "$W/hostile.log" | tail -n 1)"
# Each round ends with a sound session whose last change batch holds one open invoice owing a
# negative amount: its other batches are taken, that one refused whole.
[ "$(grep -c "the clean session: 4 batches acked of 5" "$W/hostile.log")" = 3 ] ||
    fail "a sound session was not taken, or its bad batch was: $(grep "clean session" "$W/hostile.log")"
core_survived "the hostile agent"
# What the replica holds is what the contract allows.
bad=$(core_sql "SELECT kind || ' ' || source_id || ' ' || currency || ' ' || balance_minor FROM open_item
    WHERE firm_id = 'acme' AND ((kind = 'I' AND balance_minor < 1)
       OR length(currency) <> 3 OR upper(currency) <> currency OR kind NOT IN ('I', 'T')
       OR (kind = 'I' AND (invoice_date IS NULL OR invoice_date NOT LIKE '____-__-__')))")
[ -z "$bad" ] || fail "the replica holds what the contract does not allow: $bad"
# status's totals are the complete replica's own sums (two parts, as the store keeps them).
# While a snapshot is being stored they are those of the last complete replica, by design
# (store version 4): then they are checked once the real agent's snapshot is in.
totals_are_sums() {
    local sums totals
    sums=$(core_sql "SELECT kind || ' ' || currency || ' ' || COUNT(*) || ' ' || SUM(balance_minor / 1000000000)
        || ' ' || SUM(balance_minor % 1000000000) FROM open_item WHERE firm_id = 'acme'
        AND generation = (SELECT generation FROM replica_state WHERE firm_id = 'acme')
        GROUP BY kind, currency ORDER BY kind, currency")
    totals=$(core_sql "SELECT kind || ' ' || currency || ' ' || item_count || ' ' || balance_billions || ' ' || balance_rest
        FROM replica_total WHERE firm_id = 'acme' AND item_count <> 0 ORDER BY kind, currency")
    [ "$sums" = "$totals" ] || fail "status's totals are not the replica's sums ($1): replica '$sums', totals '$totals'"
}
loading=$(core_sql "SELECT COUNT(*) FROM replica_loading WHERE firm_id = 'acme'")
if [ "$(status_field complete)" = 1 ] && [ "$loading" = 0 ]; then
    totals_are_sums "after the hostile agent"
else
    log "the hostile agent left a snapshot unfinished: totals checked after the real agent's"
fi
[ "$(core_sql "SELECT COUNT(*) FROM posting")" = "$postings_before" ] || fail "a posting was made or lost"
# The real agent brings the replica back to the matter database's.
start_agent
wait_for 60 "the real agent to make the replica the matter database's" replica_matches
totals_are_sums "after the real agent"
log "PASS ($(grep -c "greeted" "$W/hostile.log") rounds)"
