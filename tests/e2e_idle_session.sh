#!/bin/bash
# dialects: sqlite (the link, not the database, is under test)
# An idle agent keeps its session: it sends a PING every heartbeat, so neither side lets the
# session lapse (heartbeat 1 s here; five heartbeats of idleness must change nothing).
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
# Time itself is what is under test here: let five heartbeats pass with nothing to do.
sleep 5
grep -q "no word from the core" "$W/agent.log" && fail "the agent lost its session while idle"
grep -q "session closed" "$W/core.log" && fail "the core closed an idle agent's session"
[ "$(grep -c "HELLO sent" "$W/agent.log")" = 1 ] || fail "the agent greeted more than once"
[ "$(status_field agent_online)" = True ] || fail "the agent is not online"
log "PASS"
