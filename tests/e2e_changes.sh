#!/bin/bash
# dialects: sqlite postgresql mariadb
# Changes made in the matter database after the snapshot reach the core: a new invoice on
# an existing matter, an invoice paid off, one deleted, one voided, a new trust entry.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
# Status says how many rows the session's snapshot brought (a first snapshot's progress while
# it runs): every invoice and trust ledger of the replica, before any change.
rows=$(( $(status_field invoice_count) + $(status_field trust_ledger_count) ))
[ "$(status_field snapshot_rows)" = "$rows" ] ||
    fail "status's snapshot_rows ($(status_field snapshot_rows)) is not the snapshot's $rows rows"
core_items() { cli --json open-items --firm acme; }
core_has() { core_items | python3 -c "import json,sys; sys.exit(0 if any(i['invoice_number'] == '$1' for i in json.load(sys.stdin)['items']) else 1)"; }
core_lacks() { ! core_has "$1"; }

matter=$(matter_sql "SELECT matter_id FROM matter ORDER BY matter_id LIMIT 1")
matter_sql "INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status) VALUES ('INV-NEW-1', $matter, '2026-11-20', '2026-12-20', 'USD', 4200, 4200, 'open')"
wait_for 20 "the new invoice to reach the core" core_has INV-NEW-1

# A new matter, with a first invoice.
client_id=$(matter_sql "SELECT client_id FROM client ORDER BY client_id LIMIT 1")
matter_sql "INSERT INTO matter (matter_number, client_id, description, status, opened_on) VALUES ('M-NEW-1', $client_id, 'Estate of A. Example', 'open', '2026-11-20')"
new_matter=$(matter_sql "SELECT matter_id FROM matter WHERE matter_number = 'M-NEW-1'")
matter_sql "INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status) VALUES ('INV-NEW-2', $new_matter, '2026-11-21', '2026-12-21', 'USD', 9900, 9900, 'open')"
wait_for 20 "the new matter's invoice to reach the core" core_has INV-NEW-2

set -- $(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES ORDER BY source_id LIMIT 4")
matter_sql "UPDATE invoice SET balance_minor = 0, status = 'paid' WHERE invoice_number = '$1'"
matter_sql "DELETE FROM invoice WHERE invoice_number = '$2' AND NOT EXISTS (SELECT 1 FROM receipt_allocation a WHERE a.invoice_id = invoice.invoice_id)"
matter_sql "UPDATE invoice SET status = 'void' WHERE invoice_number = '$3'"
matter_sql "UPDATE invoice SET status = 'closed' WHERE invoice_number = '$4'"
wait_for 20 "the paid invoice to leave the core" core_lacks "$1"
wait_for 20 "the deleted invoice to leave the core" core_lacks "$2"
wait_for 20 "the voided invoice to leave the core" core_lacks "$3"
wait_for 20 "the closed invoice to leave the core" core_lacks "$4"

# Many changes in one statement, all with the same timestamp: every one arrives, once.
matter_sql "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE status = 'open' AND balance_minor > 1"
wait_for 30 "the replica to match after one statement changed every open invoice" replica_matches

ledgers=$(status_field trust_ledger_count)
fresh=$(matter_sql "SELECT m.matter_id FROM matter m WHERE NOT EXISTS (SELECT 1 FROM trust_entry t WHERE t.matter_id = m.matter_id) LIMIT 1")
matter_sql "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo) VALUES ($fresh, (SELECT bank_account_id FROM bank_account WHERE account_type = 'TRUST' ORDER BY bank_account_id LIMIT 1), '2026-11-21', 50000, 'USD', 'retainer')"
more_ledgers() { [ "$(status_field trust_ledger_count)" = $((ledgers + 1)) ]; }
wait_for 20 "the new trust ledger to reach the core" more_ledgers
wait_for 20 "the core to match the matter database" core_has_all_invoices

# A client renamed to a name beyond ASCII arrives whole (drivers count sizes in characters,
# the agent's buffers in bytes).
renamed=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
matter_sql "UPDATE client SET name = 'Zoë Łukasz-Müller 李小龍 & Søn' WHERE client_number = '$renamed'"
renamed_at_core() { cli --json open-items --firm acme --client "$renamed" | python3 -c "import json,sys; sys.exit(0 if all(i['client_name'] == 'Zoë Łukasz-Müller 李小龍 & Søn' for i in json.load(sys.stdin)['items']) else 1)"; }
wait_for 20 "the renamed client to reach the core intact" renamed_at_core
log "PASS"
