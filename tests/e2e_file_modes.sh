#!/bin/bash
# dialects: sqlite
# Every file the core and the agent create is their user's only, whatever the umask they were
# started with: the store with its -wal and -shm (it holds payment data and the mail outbox),
# the registered agents' certificates and the admin socket (issue 11, point 5).
umask 022
. "$(dirname "$0")/lib_e2e.sh"
setup 3 6
# The store is meant to run in WAL mode (core/ml_store.c); make sure it does here, so that
# the -wal and -shm files exist to be checked.
[ "$(sqlite3 "$W/core.db" 'PRAGMA journal_mode = WAL')" = wal ] || fail "store not in WAL mode"
start_smtp
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 1.00 --payer-name "Pat Doe" \
    --payer-email pat@example.com) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 30 "posting $uuid to be posted" posting_is "$uuid" posted
# Checked while the daemons run: the -wal and -shm files exist only then.
checked=0
for file in "$W"/core.db "$W"/core.db-wal "$W"/core.db-shm "$W"/core.db-journal "$W"/agents/*; do
    [ -e "$file" ] || continue
    mode=$(stat -c %a "$file")
    [ "$mode" = 600 ] || fail "$(basename "$file") has mode $mode, not 600"
    checked=$((checked + 1))
done
[ "$checked" -ge 4 ] || fail "only $checked of the store's files and certificates were there to check"
mode=$(stat -c %a "$W/admin.sock")
[ $((0$mode & 077)) = 0 ] || fail "the admin socket has mode $mode"
# The daemons write no other file: they log to standard error (systemd's journal) and keep
# the mail outbox in the store.
log "PASS ($checked files checked)"
