#!/bin/bash
# dialects: sqlite
# Hostile command lines for the staff CLI (tests/cli_fuzz.py reads the commands from its
# --help): options with values of every wrong sort, card numbers where none belongs, card
# lines on standard input good and bad, against a running core with a real agent and the
# HTTP test processor. Every run ends with a documented exit code (0 to 6) and says why when
# it fails, no sanitizer report, no card number printed back; the core is still serving
# afterwards and the books balance (tests/lib_books.sh). ML_CLI_FUZZ_COUNT sets the number of
# command lines (default 250), ML_CLI_FUZZ_SEED the seed (each run prints its own).
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
. "$ML_SOURCE/tests/lib_books.sh"
setup 3 24
start_processor
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
COUNT=${ML_CLI_FUZZ_COUNT:-250}
SEED=${ML_CLI_FUZZ_SEED:-$(date +%s)}
log "seed $SEED (ML_CLI_FUZZ_SEED=$SEED repeats this run)"
/usr/bin/python3 "$ML_SOURCE/tests/cli_fuzz.py" "$ML_BIN/matterlink" "ipc://$W/admin.sock" \
    "$COUNT" "$SEED" || fail "the CLI"
core_survived "the command lines"
check_books
log "PASS"
