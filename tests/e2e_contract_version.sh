#!/bin/bash
# dialects: sqlite postgresql mariadb
# The agent reads the contract version at start; on a mismatch it refuses to run and tells
# IT which script to run: an older contract (version 3, before SQLite's and MariaDB's search
# index) is to be upgraded, a newer one matched. An agent against a database without the contract says so too.
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
start_core # check reaches the core too
"$ML_BIN/matterlink-agent" check -c "$W/agent.cfg" >"$W/check.out" 2>&1 || fail "check failed on a good database: $(cat "$W/check.out")"
grep -q "contract version 4" "$W/check.out" || fail "check did not report the version"

matter_sql "UPDATE ml_contract SET contract_version = 3"
if "$ML_BIN/matterlink-agent" run -c "$W/agent.cfg" >"$W/run.out" 2>&1; then
    fail "the agent ran against contract version 3"
fi
grep -q "contract version 3 but this agent speaks version 4" "$W/run.out" || fail "no version message: $(cat "$W/run.out")"
grep -q "sql/$ML_DIALECT/contract.sql" "$W/run.out" || fail "the message does not name the script to run"
grep -q "to upgrade the contract" "$W/run.out" || fail "the message does not say to upgrade: $(cat "$W/run.out")"

matter_sql "UPDATE ml_contract SET contract_version = 5"
if "$ML_BIN/matterlink-agent" run -c "$W/agent.cfg" >"$W/run.out" 2>&1; then
    fail "the agent ran against contract version 5"
fi
grep -q "contract version 5 but this agent speaks version 4" "$W/run.out" || fail "no version message: $(cat "$W/run.out")"
log "PASS"
