#!/bin/sh
# Tests the SQLite SQL contract (sql/sqlite/contract.sql) against the reference schema and sample data,
# with nothing but the sqlite3 shell: change capture, the item views, exactly-once postings and every
# rejection code.
#
#   tests/contract_sqlite.sh [REPO_ROOT]      (default: the directory above this script)
#
# Exit status 0 when every check passes, 1 otherwise; each failed check is printed.

set -u

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -f "$root/sql/sqlite/contract.sql" ] || { echo "contract_sqlite: no sql/sqlite/contract.sql under $root" >&2; exit 2; }
command -v sqlite3 >/dev/null 2>&1 || { echo "contract_sqlite: sqlite3 not found" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
db=$tmp/firm.db

checks=0
failures=0

fail() {
    failures=$((failures + 1))
    printf 'FAIL: %s\n' "$1"
    [ $# -lt 2 ] || printf '      %s\n' "$2"
}

# expect NAME EXPECTED ACTUAL
expect() {
    checks=$((checks + 1))
    [ "$2" = "$3" ] || fail "$1" "expected [$2], got [$3]"
}

# Runs SQL the way the agent's connection does (foreign keys on); prints rows as a|b|c.
q() {
    sqlite3 -bail -cmd 'PRAGMA foreign_keys = ON' "$db" "$@"
}

# Everything an apply may write, in one line: a rejected or replayed posting must leave it unchanged.
fingerprint() {
    q "SELECT (SELECT count(*) FROM receipt) || '/' || (SELECT count(*) FROM receipt_allocation) || '/'
        || (SELECT count(*) FROM trust_entry) || '/' || (SELECT count(*) FROM ml_change) || '/'
        || (SELECT count(*) FROM ml_posting_rejection) || '/'
        || (SELECT sum(invoice_id * (balance_minor + 1) * (1 + (status = 'paid'))) FROM invoice)"
}

uuid() {
    printf '00000000-0000-4000-8000-%012d' "$1"
}

# posting UUID ACCOUNT CLIENT CURRENCY AMOUNT ALLOCATIONS
posting() {
    printf '{"posting_uuid":"%s","received_on":"2026-11-22","account_number":"%s","client_number":"%s",' "$1" "$2" "$3"
    printf '"payer_name":"Pat Payer","payer_email":"pat@example.com","currency":"%s","amount_minor":%s,' "$4" "$5"
    printf '"ar_message":"Thank you","processor_txn":"txn_%s","allocations":[%s]}' "$1" "$6"
}

inv() { printf '{"kind":"invoice","invoice_number":"%s","amount_minor":%s}' "$1" "$2"; }
trust() { printf '{"kind":"trust","matter_number":"%s","amount_minor":%s}' "$1" "$2"; }

# apply JSON: one transaction, as the agent does it; stderr goes to $tmp/err.
apply() {
    q "BEGIN; INSERT INTO ml_apply_posting (posting) VALUES ('$1'); COMMIT;" 2>"$tmp/err"
}

result() {
    q "SELECT posting_uuid, status, coalesce(receipt_id, 'null'), coalesce(reason, 'null')
       FROM ml_posting_result WHERE posting_uuid = '$1'"
}

# The newest ml_changes row for an item, as op|balance_minor|status.
latest() {
    q "SELECT op || '|' || coalesce(balance_minor, 'null') || '|' || coalesce(status, 'null') FROM ml_changes
       WHERE item_kind = '$1' AND source_id = $2 ORDER BY change_id DESC LIMIT 1"
}

items='item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name, matter_number, matter_description, currency, total_minor, balance_minor, status'

# ----------------------------------------------------------------------------------------------------
echo "contract_sqlite: building a sample database"
sh "$root/sql/sample.sh" --dialect sqlite --db "$db" --clients 40 --invoices 600 >"$tmp/out" 2>&1 \
    || { cat "$tmp/out"; echo "FAIL: sql/sample.sh"; exit 1; }

# --- contract version, epoch, idempotent install ----------------------------------------------------
expect "one ml_contract row, version 1" "1|1" "$(q 'SELECT count(*), max(contract_version) FROM ml_contract')"
epoch=$(q 'SELECT db_epoch FROM ml_contract')
hex='[0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
expect "db_epoch is a lower-case 8-4-4-4-12 UUID" 1 \
    "$(q "SELECT '$epoch' GLOB '$hex$hex-$hex-$hex-$hex-$hex$hex$hex'")"
if q "INSERT INTO ml_contract VALUES (1, '$epoch', 'x')" 2>/dev/null; then
    fail "ml_contract accepted a second row"
fi
checks=$((checks + 1))

q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$(uuid 999)', 'ML001 bad_amount')"
before=$(q 'SELECT count(*) FROM ml_change')
q "UPDATE ml_contract SET contract_version = 2"
sqlite3 -bail "$db" <"$root/sql/sqlite/schema.sql" || fail "schema.sql re-run"
sqlite3 -bail "$db" <"$root/sql/sqlite/contract.sql" || fail "contract.sql re-run"
sqlite3 -bail "$db" <"$root/sql/sqlite/contract.sql" || fail "contract.sql second re-run"
expect "re-run keeps db_epoch" "$epoch" "$(q 'SELECT db_epoch FROM ml_contract')"
expect "re-run sets contract_version 1" "1|1" "$(q 'SELECT count(*), contract_version FROM ml_contract')"
expect "re-run keeps ml_change rows" "$before" "$(q 'SELECT count(*) FROM ml_change')"
expect "re-run keeps ml_posting_rejection rows" 1 "$(q 'SELECT count(*) FROM ml_posting_rejection')"
q "DELETE FROM ml_posting_rejection"
sh "$root/sql/sample.sh" --dialect sqlite --db "$db" >"$tmp/out" 2>&1 || fail "sample.sh re-run" "$(cat "$tmp/out")"
expect "sample.sh re-run adds no data" "600" "$(q 'SELECT count(*) FROM invoice')"

# --- interface columns -------------------------------------------------------------------------------
cols() { q "SELECT group_concat(name, ', ') FROM pragma_table_info('$1')"; }
expect "ml_open_items columns" "$items" "$(cols ml_open_items)"
expect "ml_trust_balances columns" "$items" "$(cols ml_trust_balances)"
expect "ml_changes columns" "change_id, op, $items" "$(cols ml_changes)"
expect "ml_posting_result columns" "posting_uuid, status, receipt_id, reason" "$(cols ml_posting_result)"
expect "ml_apply_posting columns" "posting" "$(cols ml_apply_posting)"
expect "ml_contract columns" "contract_version, db_epoch, installed_at" "$(cols ml_contract)"

# --- sample data and the item views ------------------------------------------------------------------
expect "sample has open, partly paid and paid invoices" "1|1|1" \
    "$(q "SELECT max(status = 'open' AND balance_minor = total_minor),
                 max(status = 'open' AND balance_minor BETWEEN 1 AND total_minor - 1),
                 max(status = 'paid' AND balance_minor = 0) FROM invoice")"
expect "open items = open invoices with a balance" \
    "$(q "SELECT count(*) FROM invoice WHERE status = 'open' AND balance_minor > 0")" \
    "$(q 'SELECT count(*) FROM ml_open_items')"
expect "open items are all open, positive, kind invoice" 0 \
    "$(q "SELECT count(*) FROM ml_open_items WHERE status <> 'open' OR balance_minor <= 0 OR item_kind <> 'invoice'
          OR client_number IS NULL OR matter_number IS NULL")"
expect "one trust row per matter with entries" \
    "$(q 'SELECT count(DISTINCT matter_id), sum(amount_minor) FROM trust_entry')" \
    "$(q 'SELECT count(*), sum(balance_minor) FROM ml_trust_balances')"
expect "trust rows are shaped as trust" 0 \
    "$(q "SELECT count(*) FROM ml_trust_balances WHERE item_kind <> 'trust' OR status <> 'trust'
          OR invoice_number IS NOT NULL OR total_minor IS NOT NULL OR currency <> 'USD'")"
expect "paging by source_id returns the next page" \
    "$(q "SELECT group_concat(source_id) FROM (SELECT source_id FROM ml_open_items ORDER BY source_id LIMIT 3 OFFSET 5)")" \
    "$(q "SELECT group_concat(source_id) FROM (SELECT $items FROM ml_open_items WHERE item_kind = 'invoice'
          AND source_id > (SELECT source_id FROM ml_open_items ORDER BY source_id LIMIT 1 OFFSET 4)
          ORDER BY source_id LIMIT 3)")"

# --- apply a posting ---------------------------------------------------------------------------------
# A client with two open, unpaid invoices over $300 and a matter; another client's invoice; a paid one.
row=$(q "SELECT c.client_number, i.invoice_id, i.invoice_number, i.balance_minor, m.matter_number, m.matter_id
         FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
         WHERE i.status = 'open' AND i.balance_minor = i.total_minor AND i.balance_minor > 30000
           AND (SELECT count(*) FROM invoice AS j JOIN matter AS n USING (matter_id)
                WHERE n.client_id = c.client_id AND j.status = 'open' AND j.balance_minor > 30000) >= 2
           AND EXISTS (SELECT 1 FROM invoice AS p JOIN matter AS n USING (matter_id)
                       WHERE n.client_id = c.client_id AND p.status = 'paid')
         ORDER BY i.invoice_id LIMIT 1")
[ -n "$row" ] || { echo "FAIL: sample data has no suitable client"; exit 1; }
IFS='|' read -r client inv_id inv_no inv_bal matter matter_id <<EOF
$row
EOF
row=$(q "SELECT i.invoice_id, i.invoice_number, i.balance_minor FROM invoice AS i JOIN matter AS m USING (matter_id)
         JOIN client AS c USING (client_id) WHERE c.client_number = '$client' AND i.status = 'open'
         AND i.balance_minor > 30000 AND i.invoice_id <> $inv_id ORDER BY i.invoice_id LIMIT 1")
IFS='|' read -r inv2_id inv2_no inv2_bal <<EOF
$row
EOF
paid_no=$(q "SELECT i.invoice_number FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
             WHERE c.client_number = '$client' AND i.status = 'paid' LIMIT 1")
other=$(q "SELECT i.invoice_number || '|' || m.matter_number
           FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
           WHERE c.client_number <> '$client' AND i.status = 'open' AND i.balance_minor > 0 LIMIT 1")
IFS='|' read -r other_inv other_matter <<EOF
$other
EOF

changes0=$(q 'SELECT coalesce(max(change_id), 0) FROM ml_change')
u1=$(uuid 1)
p1=$(posting "$u1" OP-001 "$client" USD 25000 "$(inv "$inv_no" 10000),$(inv "$inv2_no" 15000)")
apply "$p1" || fail "apply posting 1" "$(cat "$tmp/err")"
receipt1=$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$u1'")
expect "posting 1 wrote one receipt" "1|25000|USD" \
    "$(q "SELECT count(*), sum(amount_minor), min(currency) FROM receipt WHERE posting_uuid = '$u1'")"
expect "posting 1 allocations sum to the amount" "2|25000" \
    "$(q "SELECT count(*), sum(amount_minor) FROM receipt_allocation WHERE receipt_id = $receipt1")"
expect "posting 1 receipt fields" "2026-11-22|Pat Payer|pat@example.com|Thank you|txn_$u1|OP-001|$client" \
    "$(q "SELECT r.received_on, r.payer_name, r.payer_email, r.ar_message, r.processor_txn, b.account_number,
                 c.client_number FROM receipt AS r JOIN bank_account AS b USING (bank_account_id)
          JOIN client AS c USING (client_id) WHERE r.receipt_id = $receipt1")"
expect "invoice balance decreased" "$((inv_bal - 10000))|open" \
    "$(q "SELECT balance_minor, status FROM invoice WHERE invoice_id = $inv_id")"
expect "second invoice balance decreased" "$((inv2_bal - 15000))" \
    "$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $inv2_id")"
expect "ml_change rows for both invoices" "2" \
    "$(q "SELECT count(DISTINCT entity_id) FROM ml_change WHERE change_id > $changes0 AND entity = 'invoice'
          AND entity_id IN ($inv_id, $inv2_id)")"
expect "ml_changes shows the new balance" "upsert|$((inv_bal - 10000))|open" "$(latest invoice "$inv_id")"
expect "ml_posting_result: posted" "$u1|posted|$receipt1|null" "$(result "$u1")"

# --- replay ------------------------------------------------------------------------------------------
fp=$(fingerprint)
apply "$p1" || fail "replay of posting 1 raised an error" "$(cat "$tmp/err")"
expect "replay writes nothing" "$fp" "$(fingerprint)"
expect "replay: still one receipt" 1 "$(q "SELECT count(*) FROM receipt WHERE posting_uuid = '$u1'")"
# A replay is answered from the first outcome even if this copy of the posting differs.
apply "$(posting "$u1" OP-001 "$client" USD 1 "$(inv "$inv_no" 1)")" || fail "changed replay raised an error"
expect "changed replay writes nothing" "$fp" "$(fingerprint)"
q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$u1', 'ML001 bad_amount')
   ON CONFLICT (posting_uuid) DO NOTHING"
expect "a posted uuid cannot also be rejected" "$u1|posted|$receipt1|null" "$(result "$u1")"

# --- rejections --------------------------------------------------------------------------------------
q "INSERT INTO bank_account (account_number, name, account_type, currency)
   VALUES ('OP-CAD', 'Operating CAD', 'OPERATING', 'CAD')"
n=100
# reject CODE JSON: the apply must fail with "ML001 CODE" and leave everything as it was.
reject() {
    checks=$((checks + 1))
    before=$(fingerprint)
    if apply "$2"; then
        fail "ML001 $1: posting was accepted"
    elif ! grep -Eq "ML001 $1([^a-z_]|\$)" "$tmp/err"; then
        fail "ML001 $1: wrong error" "$(cat "$tmp/err")"
    fi
    expect "ML001 $1 writes nothing" "$before" "$(fingerprint)"
}
ok_lines="$(inv "$inv_no" 100)"
# Sets $id to a fresh posting UUID (a function called as $(...) could not advance the counter).
nu() { n=$((n + 1)); id=$(uuid $n); }

reject bad_posting 'not json'
reject bad_posting '[1,2]'
reject bad_posting "$(posting ABCDEF00-0000-4000-8000-000000000001 OP-001 "$client" USD 100 "$ok_lines")"
reject bad_posting "$(posting 00000000-0000-4000-8000-00000000001 OP-001 "$client" USD 100 "$ok_lines")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/2026-11-22/2026-02-30/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" usd 100 "$ok_lines")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"refund","amount_minor":100}')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"invoice","amount_minor":100}')"
nu; reject unknown_account "$(posting "$id" OP-999 "$client" USD 100 "$ok_lines")"
nu; reject client_not_found "$(posting "$id" OP-001 C-99999 USD 100 "$ok_lines")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 0 "$(inv "$inv_no" 0)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100.00 "$(inv "$inv_no" 100)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD '"100"' "$(inv "$inv_no" 100)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$inv_no" 150),$(inv "$inv2_no" -50)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"invoice","invoice_number":"'"$inv_no"'"}')"
nu; reject allocation_sum_mismatch "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$inv_no" 60),$(inv "$inv2_no" 30)")"
nu; reject currency_mismatch "$(posting "$id" OP-001 "$client" CAD 100 "$ok_lines")"
nu; reject currency_mismatch "$(posting "$id" OP-CAD "$client" CAD 100 "$ok_lines")"
nu; reject operating_account_required "$(posting "$id" TR-001 "$client" USD 100 "$ok_lines")"
nu; reject trust_account_required "$(posting "$id" OP-001 "$client" USD 100 "$(trust "$matter" 100)")"
nu; reject trust_account_required "$(posting "$id" OP-001 "$client" USD 200 "$ok_lines,$(trust "$matter" 100)")"
nu; reject invoice_not_found "$(posting "$id" OP-001 "$client" USD 100 "$(inv INV-9999999 100)")"
nu; reject matter_not_found "$(posting "$id" TR-001 "$client" USD 100 "$(trust M-999999 100)")"
nu; reject duplicate_line "$(posting "$id" OP-001 "$client" USD 200 "$ok_lines,$ok_lines")"
nu; reject duplicate_line "$(posting "$id" TR-001 "$client" USD 200 "$(trust "$matter" 100),$(trust "$matter" 100)")"
nu; reject invoice_client_mismatch "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$other_inv" 100)")"
nu; reject matter_client_mismatch "$(posting "$id" TR-001 "$client" USD 100 "$(trust "$other_matter" 100)")"
nu; reject invoice_not_open "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")"
nu; reject amount_over_balance "$(posting "$id" OP-001 "$client" USD $((inv_bal - 9999)) "$(inv "$inv_no" $((inv_bal - 9999)))")"

# The agent records a rejection after rolling back; a replay then writes nothing and the result stands.
nu; ur=$id
pr=$(posting "$ur" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")
apply "$pr" && fail "rejected posting was accepted"
q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$ur', 'ML001 invoice_not_open')
   ON CONFLICT (posting_uuid) DO NOTHING"
q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$ur', 'ML001 something_else')
   ON CONFLICT (posting_uuid) DO NOTHING"
expect "ml_posting_result: rejected" "$ur|rejected|null|ML001 invoice_not_open" "$(result "$ur")"
fp=$(fingerprint)
apply "$pr" || fail "replay of a rejected posting raised an error" "$(cat "$tmp/err")"
expect "replay of a rejected posting writes nothing" "$fp" "$(fingerprint)"
nu; expect "unknown posting has no result" "" "$(result "$id")"

# --- paying an invoice off turns it into a remove ---------------------------------------------------
rest=$((inv_bal - 10000))
nu; apply "$(posting "$id" OP-001 "$client" USD $rest "$(inv "$inv_no" $rest)")" || fail "pay-off posting" "$(cat "$tmp/err")"
expect "paid-off invoice" "0|paid" "$(q "SELECT balance_minor, status FROM invoice WHERE invoice_id = $inv_id")"
expect "paid-off invoice is a remove in ml_changes" "remove|null|null" "$(latest invoice "$inv_id")"
expect "remove rows carry only the key" "1" \
    "$(q "SELECT count(*) FROM ml_changes WHERE item_kind = 'invoice' AND source_id = $inv_id AND op = 'remove'
          AND coalesce(invoice_number, invoice_date, due_date, client_number, client_name, matter_number,
                       matter_description, currency, total_minor, balance_minor, status) IS NULL
          AND change_id = (SELECT max(change_id) FROM ml_change WHERE entity = 'invoice' AND entity_id = $inv_id)")"
expect "paid-off invoice left ml_open_items" 0 "$(q "SELECT count(*) FROM ml_open_items WHERE source_id = $inv_id")"

# --- trust deposit through a posting ------------------------------------------------------------------
tbal=$(q "SELECT coalesce(sum(amount_minor), 0) FROM trust_entry WHERE matter_id = $matter_id")
nu; ut=$id
apply "$(posting "$ut" TR-001 "$client" USD 50000 "$(trust "$matter" 50000)")" || fail "trust posting" "$(cat "$tmp/err")"
expect "trust posting wrote a deposit" "1|50000|matterlink receipt|TR-001" \
    "$(q "SELECT count(*), sum(t.amount_minor), min(t.memo), min(b.account_number) FROM trust_entry AS t
          JOIN bank_account AS b USING (bank_account_id)
          WHERE t.receipt_id = (SELECT receipt_id FROM receipt WHERE posting_uuid = '$ut')")"
expect "trust posting shows in ml_changes" "upsert|$((tbal + 50000))|trust" "$(latest trust "$matter_id")"
expect "trust posting shows in ml_trust_balances" "$((tbal + 50000))" \
    "$(q "SELECT balance_minor FROM ml_trust_balances WHERE source_id = $matter_id")"

# --- direct edits by the billing system ----------------------------------------------------------------
# A new trust entry on a matter that had none.
new_matter=$(q "SELECT m.matter_id FROM matter AS m WHERE NOT EXISTS
                (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id LIMIT 1")
q "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
   VALUES ($new_matter, (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001'),
           '2026-11-20', 120000, 'USD', 'Retainer deposit')"
expect "new trust entry is a trust upsert" "upsert|120000|trust" "$(latest trust "$new_matter")"
# Moving an entry to another matter changes both.
entry=$(q "SELECT max(trust_entry_id) FROM trust_entry WHERE matter_id = $new_matter")
q "UPDATE trust_entry SET matter_id = $matter_id WHERE trust_entry_id = $entry"
expect "moved entry: old matter removed" "remove|null|null" "$(latest trust "$new_matter")"
expect "moved entry: new matter updated" "upsert|$((tbal + 50000 + 120000))|trust" "$(latest trust "$matter_id")"
q "DELETE FROM trust_entry WHERE trust_entry_id = $entry"
expect "deleted entry: matter updated" "upsert|$((tbal + 50000))|trust" "$(latest trust "$matter_id")"

# Deleting an invoice.
del=$(q "SELECT i.invoice_id FROM invoice AS i WHERE i.status = 'open' AND NOT EXISTS
         (SELECT 1 FROM receipt_allocation AS a WHERE a.invoice_id = i.invoice_id) ORDER BY i.invoice_id DESC LIMIT 1")
q "DELETE FROM invoice WHERE invoice_id = $del"
expect "deleted invoice is a remove" "remove|null|null" "$(latest invoice "$del")"

# Voiding an invoice.
void=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id DESC LIMIT 1")
q "UPDATE invoice SET status = 'void' WHERE invoice_id = $void"
expect "voided invoice is a remove" "remove|null|null" "$(latest invoice "$void")"

# Renaming a client: one change row per open invoice, one per matter with trust entries.
open_n=$(q "SELECT count(*) FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
            WHERE c.client_number = '$client' AND i.status = 'open' AND i.balance_minor > 0")
trust_n=$(q "SELECT count(*) FROM matter AS m JOIN client AS c USING (client_id) WHERE c.client_number = '$client'
             AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)")
mark=$(q 'SELECT max(change_id) FROM ml_change')
q "UPDATE client SET name = 'Renamed Client LLC' WHERE client_number = '$client'"
expect "client rename: change rows" "$open_n|$trust_n" \
    "$(q "SELECT sum(entity = 'invoice'), sum(entity = 'trust') FROM ml_change WHERE change_id > $mark")"
expect "client rename: ml_changes carries the new name" "$((open_n + trust_n))" \
    "$(q "SELECT count(*) FROM ml_changes WHERE change_id > $mark AND op = 'upsert'
          AND client_name = 'Renamed Client LLC' AND client_number = '$client'")"
mark=$(q 'SELECT max(change_id) FROM ml_change')
q "UPDATE client SET email = 'new@example.com' WHERE client_number = '$client'"
expect "client e-mail change adds no change rows" "$mark" "$(q 'SELECT max(change_id) FROM ml_change')"

# Renaming a matter.
mark=$(q 'SELECT max(change_id) FROM ml_change')
q "UPDATE matter SET description = 'Renamed matter' WHERE matter_id = $matter_id"
expect "matter update: change rows" \
    "$(q "SELECT count(*) + 1 FROM invoice WHERE matter_id = $matter_id AND status = 'open' AND balance_minor > 0")" \
    "$(q "SELECT count(*) FROM ml_changes WHERE change_id > $mark AND matter_description = 'Renamed matter'")"

# --- the agent's reads ---------------------------------------------------------------------------------
hw=$(q 'SELECT COALESCE(MAX(change_id), 0) FROM ml_change')
expect "changes_since pages up to the high-water mark" "3" \
    "$(q "SELECT count(*) FROM (SELECT change_id, op, $items FROM ml_changes
          WHERE change_id > $((hw - 5)) AND change_id <= $((hw - 2)) ORDER BY change_id LIMIT 1000)")"
expect "contract_version read" "1|$epoch" "$(q 'SELECT contract_version, db_epoch FROM ml_contract')"
expect "trust_balances page" "$(q 'SELECT count(*) FROM ml_trust_balances WHERE source_id > 0')" \
    "$(q "SELECT count(*) FROM (SELECT $items FROM ml_trust_balances WHERE source_id > 0 ORDER BY source_id LIMIT 100000)")"
expect "every ml_change row has one ml_changes row" "$(q 'SELECT count(*) FROM ml_change')" \
    "$(q 'SELECT count(*) FROM ml_changes')"

# ----------------------------------------------------------------------------------------------------
if [ "$failures" -ne 0 ]; then
    printf 'contract_sqlite: %d of %d checks failed\n' "$failures" "$checks"
    exit 1
fi
printf 'contract_sqlite: all %d checks passed\n' "$checks"
