#!/bin/bash
# dialects: sqlite
# What IT meets when a file or a setting is wrong: each mistake gets a message that names it
# and changes nothing (issue 11, point 7).
. "$(dirname "$0")/lib_e2e.sh"
setup 2 4

# A mistyped SQLite path says the file does not exist, and creates no file.
write_agent_config "$W/typo.cfg" "Driver=SQLite3;Database=$W/matter.bd;StepAPI=1" "$W/agent.cert_secret"
status=0
"$ML_BIN/matterlink-agent" check -c "$W/typo.cfg" >"$W/check.out" 2>&1 || status=$?
[ "$status" = 1 ] || fail "check on a missing database exited with $status: $(cat "$W/check.out")"
grep -q "the SQLite database file $W/matter.bd does not exist" "$W/check.out" || fail "no 'does not exist' message: $(cat "$W/check.out")"
[ ! -e "$W/matter.bd" ] || fail "check created the mistyped database file"
"$ML_BIN/matterlink-agent" check -c "$W/agent.cfg" >"$W/check.out" 2>&1 || fail "check failed on a good database: $(cat "$W/check.out")"
log "PASS"
