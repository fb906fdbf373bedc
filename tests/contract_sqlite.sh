#!/bin/sh
# Tests the SQLite SQL contract (sql/sqlite/contract.sql) against the reference schema and sample data,
# with nothing but the sqlite3 shell: change capture, the item views, exactly-once postings, reversing
# postings, every rejection code, and the upgrade from contract version 1.
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

# The checks, postings and rejections every dialect's script shares; a rejection's error
# starts with this (the driver's own words before ML001).
ml001_error=''
. "$root/tests/lib_contract.sh"

# Runs SQL the way the agent's connection does (foreign keys on); prints rows as a|b|c.
q() {
    sqlite3 -bail -cmd 'PRAGMA foreign_keys = ON' "$db" "$@"
}

# Everything an apply may write, in one line: a rejected or replayed posting must leave it unchanged.
fingerprint() {
    q "SELECT (SELECT count(*) FROM receipt) || '/' || (SELECT count(*) FROM receipt_allocation) || '/'
        || (SELECT count(*) FROM trust_entry) || '/' || (SELECT count(*) FROM ml_change) || '/'
        || (SELECT count(*) FROM ml_posting_rejection) || '/'
        || (SELECT count(*) FROM receipt_reversal) || '/' || (SELECT count(*) FROM receipt_reversal_line) || '/'
        || (SELECT sum(invoice_id * (balance_minor + 1) * (1 + (status = 'paid'))) FROM invoice)"
}

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
expect "one ml_contract row, version 4" "1|4" "$(q 'SELECT count(*), max(contract_version) FROM ml_contract')"
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
q "UPDATE ml_contract SET contract_version = 1"
sqlite3 -bail "$db" <"$root/sql/sqlite/schema.sql" || fail "schema.sql re-run"
sqlite3 -bail "$db" <"$root/sql/sqlite/contract.sql" || fail "contract.sql re-run"
sqlite3 -bail "$db" <"$root/sql/sqlite/contract.sql" || fail "contract.sql second re-run"
expect "re-run keeps db_epoch" "$epoch" "$(q 'SELECT db_epoch FROM ml_contract')"
expect "re-run over version 1 sets contract_version 4" "1|4" "$(q 'SELECT count(*), contract_version FROM ml_contract')"
expect "re-run keeps ml_change rows" "$before" "$(q 'SELECT count(*) FROM ml_change')"
expect "re-run keeps ml_posting_rejection rows" 1 "$(q 'SELECT count(*) FROM ml_posting_rejection')"
q "DELETE FROM ml_posting_rejection"
sh "$root/sql/sample.sh" --dialect sqlite --db "$db" >"$tmp/out" 2>&1 || fail "sample.sh re-run" "$(cat "$tmp/out")"
expect "sample.sh re-run adds no data" "600" "$(q 'SELECT count(*) FROM invoice')"

# --- upgrade from contract version 1 -----------------------------------------------------------------
# A database installed with version 1's scripts (from the last commit that had them), with a posting
# applied, becomes version 4 when this release's contract.sql runs over it, after schema.sql: epoch,
# change rows and posting results stay, and reversals work. contract.sql alone refuses to install
# while the reversal tables are missing, and changes nothing.
v1=9450a9b
old=$tmp/v1.db
qo() {
    sqlite3 -bail -cmd 'PRAGMA foreign_keys = ON' "$old" "$@"
}
if command -v git >/dev/null 2>&1 && git -C "$root" cat-file -e "$v1:sql/sqlite/contract.sql" 2>/dev/null; then
    { git -C "$root" show "$v1:sql/sqlite/schema.sql" | sqlite3 -bail "$old" &&
        git -C "$root" show "$v1:sql/sqlite/contract.sql" | sqlite3 -bail "$old"; } >"$tmp/out" 2>&1 ||
        fail "installing contract version 1" "$(cat "$tmp/out")"
    qo "INSERT INTO client (client_number, name) VALUES ('C-1', 'Old Client');
        INSERT INTO matter (matter_number, client_id, description) VALUES ('M-1', 1, 'Old matter');
        INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('OP-001', 'Operating', 'OPERATING', 'USD');
        INSERT INTO invoice (invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor)
        VALUES ('INV-1', 1, '2026-01-05', 'USD', 10000, 10000);
        INSERT INTO ml_apply_posting (posting) VALUES ('$(posting "$(uuid 901)" OP-001 C-1 USD 10000 "$(inv INV-1 10000)")')"
    expect "version 1 installed and posting" "1|paid" \
        "$(qo "SELECT contract_version, (SELECT status FROM invoice) FROM ml_contract")"
    old_epoch=$(qo 'SELECT db_epoch FROM ml_contract')
    old_changes=$(qo "SELECT count(*) || '/' || max(change_id) FROM ml_change")
    checks=$((checks + 1))
    if sqlite3 -bail "$old" <"$root/sql/sqlite/contract.sql" 2>"$tmp/err"; then
        fail "contract.sql installed without receipt_reversal"
    elif ! grep -q 'receipt_reversal and receipt_reversal_line are missing: run sql/sqlite/schema.sql first' "$tmp/err"; then
        fail "contract.sql without receipt_reversal: wrong message" "$(cat "$tmp/err")"
    fi
    expect "a refused install changes nothing" "1|0" \
        "$(qo "SELECT contract_version, (SELECT count(*) FROM sqlite_master WHERE sql LIKE '%receipt_reversal%')
               FROM ml_contract")"
    { sqlite3 -bail "$old" <"$root/sql/sqlite/schema.sql" && sqlite3 -bail "$old" <"$root/sql/sqlite/contract.sql"; } \
        >"$tmp/out" 2>&1 || fail "upgrading to version 4" "$(cat "$tmp/out")"
    expect "upgraded: version 4, same epoch, same change rows" "4|$old_epoch|$old_changes" \
        "$(qo "SELECT contract_version, db_epoch, (SELECT count(*) || '/' || max(change_id) FROM ml_change) FROM ml_contract")"
    expect "upgraded: the search index is there and finds the old invoice" "3|1" \
        "$(qo "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name GLOB 'ml_search_*_number'),
                      (SELECT count(*) FROM ml_search_invoices WHERE invoice_number_key = 'inv-1')")"
    expect "upgraded: the version 1 posting's result stands" "$(uuid 901)|posted|1|null" \
        "$(qo "SELECT posting_uuid, status, receipt_id, coalesce(reason, 'null') FROM ml_posting_result")"
    qo "INSERT INTO ml_apply_posting (posting) VALUES ('$(reversal "$(uuid 902)" "$(uuid 901)" OP-001 C-1 USD 2500 "$(inv INV-1 2500)")')" \
        2>"$tmp/err" || fail "upgraded: a reversal of a version 1 posting" "$(cat "$tmp/err")"
    expect "upgraded: the reversal reopened the invoice" "2500|open|$(uuid 902)|posted|R-1" \
        "$(qo "SELECT balance_minor, status, (SELECT posting_uuid || '|' || status || '|' || receipt_id FROM ml_posting_result
               WHERE posting_uuid = '$(uuid 902)') FROM invoice")"
else
    echo "contract_sqlite: no git history with contract version 1 ($v1); upgrade checks skipped"
fi

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
ok_lines="$(inv "$inv_no" 100)"

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

# --- reversing postings --------------------------------------------------------------------------------
# A refund, void or chargeback is a posting of its own that names the posting it reverses and takes
# back part or all of it; the original receipt is never edited.
used=0
state() { q "SELECT balance_minor || '|' || status FROM invoice WHERE invoice_id = $1"; }

# A full reversal of a payment in full reopens the invoice; the core sees it come back.
fresh
nu; ua=$id
apply "$(posting "$ua" OP-001 "$c_no" USD "$i_total" "$(inv "$i_no" "$i_total")" | sed 's/"allocations"/"reverses":null,"allocations"/')" ||
    fail "payment in full (reverses null)" "$(cat "$tmp/err")"
expect "paid in full" "0|paid" "$(state "$i_id")"
expect "the paid invoice is a remove" "remove|null|null" "$(latest invoice "$i_id")"
receipt_a=$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$ua'")
nu; rv=$id
pa=$(reversal "$rv" "$ua" OP-001 "$c_no" USD "$i_total" "$(inv "$i_no" "$i_total")")
apply "$pa" || fail "full reversal" "$(cat "$tmp/err")"
expect "full reversal reopens the invoice" "$i_total|open" "$(state "$i_id")"
expect "the reopened invoice is an upsert again" "upsert|$i_total|open" "$(latest invoice "$i_id")"
rev_a=$(q "SELECT receipt_reversal_id FROM receipt_reversal WHERE posting_uuid = '$rv'")
expect "ml_posting_result of a reversal: posted, R- and its id" "$rv|posted|R-$rev_a|null" "$(result "$rv")"
expect "the reversal names the original receipt, the day, amount and transaction" \
    "$receipt_a|2026-11-22|$i_total|USD|Thank you|txn_$rv" \
    "$(q "SELECT receipt_id, reversed_on, amount_minor, currency, ar_message, processor_txn FROM receipt_reversal
          WHERE receipt_reversal_id = $rev_a")"
expect "its line names the original's allocation line" "1|$i_total" \
    "$(q "SELECT count(*), sum(l.amount_minor) FROM receipt_reversal_line AS l
          JOIN receipt_allocation AS ra USING (receipt_allocation_id)
          WHERE l.receipt_reversal_id = $rev_a AND ra.receipt_id = $receipt_a AND ra.invoice_id = $i_id")"
expect "the original receipt is not edited" "$ua|posted|$receipt_a|null|$i_total" \
    "$(result "$ua")|$(q "SELECT amount_minor FROM receipt WHERE receipt_id = $receipt_a")"
expect "an auditor reconciles: original, reversals, net" "$i_total|$i_total|0" \
    "$(q "SELECT r.amount_minor, sum(v.amount_minor), r.amount_minor - sum(v.amount_minor)
          FROM receipt AS r JOIN receipt_reversal AS v USING (receipt_id) WHERE r.receipt_id = $receipt_a")"
# A repeated reversal (same UUID) returns the stored result and writes nothing, even a changed copy.
fp=$(fingerprint)
apply "$pa" || fail "replay of a reversal raised an error" "$(cat "$tmp/err")"
apply "$(reversal "$rv" "$ua" OP-001 "$c_no" USD 1 "$(inv "$i_no" 1)")" || fail "changed replay of a reversal"
expect "a replayed reversal writes nothing" "$fp" "$(fingerprint)"
expect "a replayed reversal keeps its result" "$rv|posted|R-$rev_a|null" "$(result "$rv")"
q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$rv', 'ML001 bad_amount')
   ON CONFLICT (posting_uuid) DO NOTHING"
expect "a posted reversal cannot also be rejected" "$rv|posted|R-$rev_a|null" "$(result "$rv")"

# Partial reversals restore part; together they never take back more than the original gave.
fresh
nu; ub=$id
apply "$(posting "$ub" OP-001 "$c_no" USD 6000 "$(inv "$i_no" 6000)")" || fail "payment of 60.00" "$(cat "$tmp/err")"
nu; apply "$(reversal "$id" "$ub" OP-001 "$c_no" USD 2500 "$(inv "$i_no" 2500)")" || fail "partial reversal" "$(cat "$tmp/err")"
expect "a partial reversal restores part" "$((i_total - 3500))|open" "$(state "$i_id")"
expect "the core sees the restored balance" "upsert|$((i_total - 3500))|open" "$(latest invoice "$i_id")"
nu; reject reversal_exceeds_original "$(reversal "$id" "$ub" OP-001 "$c_no" USD 3501 "$(inv "$i_no" 3501)")"
nu; apply "$(reversal "$id" "$ub" OP-001 "$c_no" USD 3500 "$(inv "$i_no" 3500)")" || fail "second partial reversal" "$(cat "$tmp/err")"
expect "two partial reversals give back the whole payment" "$i_total|open" "$(state "$i_id")"
nu; reject reversal_exceeds_original "$(reversal "$id" "$ub" OP-001 "$c_no" USD 1 "$(inv "$i_no" 1)")"

# A partial reversal of a payment in full reopens the invoice with what was given back.
fresh
nu; uc=$id
apply "$(posting "$uc" OP-001 "$c_no" USD "$i_total" "$(inv "$i_no" "$i_total")")" || fail "payment in full" "$(cat "$tmp/err")"
nu; apply "$(reversal "$id" "$uc" OP-001 "$c_no" USD 1000 "$(inv "$i_no" 1000)")" || fail "partial reversal of a paid invoice" "$(cat "$tmp/err")"
expect "a partial reversal reopens a paid invoice" "1000|open" "$(state "$i_id")"

# Trust: a reversal withdraws from the ledger, never below zero.
row=$(q "SELECT c.client_number, m.matter_id, m.matter_number FROM matter AS m JOIN client AS c USING (client_id)
         WHERE NOT EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)
         ORDER BY m.matter_id DESC LIMIT 1")
IFS='|' read -r tc tm_id tm <<EOF2
$row
EOF2
nu; utr=$id
apply "$(posting "$utr" TR-001 "$tc" USD 10000 "$(trust "$tm" 10000)")" || fail "trust deposit to reverse" "$(cat "$tmp/err")"
receipt_t=$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$utr'")
nu; rt=$id
apply "$(reversal "$rt" "$utr" TR-001 "$tc" USD 4000 "$(trust "$tm" 4000)")" || fail "trust reversal" "$(cat "$tmp/err")"
expect "a trust reversal withdraws: a negative entry on the original's account and receipt" \
    "-4000|TR-001|USD|2026-11-22|reversal of $utr|$receipt_t" \
    "$(q "SELECT t.amount_minor, b.account_number, t.currency, t.entry_date, t.memo, t.receipt_id FROM trust_entry AS t
          JOIN bank_account AS b USING (bank_account_id) WHERE t.matter_id = $tm_id AND t.amount_minor < 0")"
expect "the core sees the trust balance go down" "upsert|6000|trust" "$(latest trust "$tm_id")"
expect "the receipt's trust entries net out to what stays" "6000" \
    "$(q "SELECT sum(amount_minor) FROM trust_entry WHERE receipt_id = $receipt_t")"
# The firm pays 50.00 out of the ledger; a reversal may then take back only what is left.
q "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
   VALUES ($tm_id, (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001'), '2026-11-23', -5000,
           'USD', 'Filing fees')"
nu; reject trust_balance_insufficient "$(reversal "$id" "$utr" TR-001 "$tc" USD 2000 "$(trust "$tm" 2000)")"
nu; apply "$(reversal "$id" "$utr" TR-001 "$tc" USD 1000 "$(trust "$tm" 1000)")" || fail "trust reversal to zero" "$(cat "$tmp/err")"
expect "a trust reversal may empty the ledger" "upsert|0|trust" "$(latest trust "$tm_id")"
nu; reject trust_balance_insufficient "$(reversal "$id" "$utr" TR-001 "$tc" USD 1 "$(trust "$tm" 1)")"

# Rejections of reversals, each writing nothing.
fresh
nu; ud=$id
apply "$(posting "$ud" OP-001 "$c_no" USD 5000 "$(inv "$i_no" 5000)")" || fail "payment to reverse" "$(cat "$tmp/err")"
q "INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('OP-002', 'Operating 2', 'OPERATING', 'USD')"
other_c=$(q "SELECT client_number FROM client WHERE client_number <> '$c_no' ORDER BY client_id LIMIT 1")
other_i=$(q "SELECT invoice_number FROM invoice WHERE invoice_id NOT IN ($used) AND status = 'open' ORDER BY invoice_id LIMIT 1")
ok_rev="$(inv "$i_no" 100)"
nu; reject bad_posting "$(reversal "$id" "$id" OP-001 "$c_no" USD 100 "$ok_rev")"
nu; reject bad_posting "$(reversal "$id" txn_123 OP-001 "$c_no" USD 100 "$ok_rev")"
nu; reject bad_posting "$(reversal "$id" 0F8FAD5B-D9CB-469F-A165-70867728950E OP-001 "$c_no" USD 100 "$ok_rev")"
nu; reject bad_posting "$(posting "$id" OP-001 "$c_no" USD 100 "$ok_rev" | sed 's/^{/{"reverses":17,/')"
nu; reject original_not_posted "$(reversal "$id" "$(uuid 4999)" OP-001 "$c_no" USD 100 "$ok_rev")"
nu; reject original_not_posted "$(reversal "$id" "$ur" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")"
nu; reject original_not_posted "$(reversal "$id" "$rv" OP-001 "$c_no" USD 100 "$ok_rev")"
nu; reject reversal_account_mismatch "$(reversal "$id" "$ud" OP-002 "$c_no" USD 100 "$ok_rev")"
nu; reject reversal_client_mismatch "$(reversal "$id" "$ud" OP-001 "$other_c" USD 100 "$ok_rev")"
nu; reject duplicate_line "$(reversal "$id" "$ud" OP-001 "$c_no" USD 200 "$ok_rev,$ok_rev")"
nu; reject reversal_line_not_in_original "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$(inv "$other_i" 100)")"
nu; reject reversal_line_not_in_original "$(reversal "$id" "$ud" OP-001 "$c_no" USD 200 "$ok_rev,$(inv INV-9999999 100)")"
nu; reject reversal_line_not_in_original "$(reversal "$id" "$utr" TR-001 "$tc" USD 100 "$(trust M-999999 100)")"
nu; reject operating_account_required "$(reversal "$id" "$ud" TR-001 "$c_no" USD 100 "$ok_rev")"
nu; reject allocation_sum_mismatch "$(reversal "$id" "$ud" OP-001 "$c_no" USD 101 "$ok_rev")"
nu; reject reversal_exceeds_original "$(reversal "$id" "$ud" OP-001 "$c_no" USD 5001 "$(inv "$i_no" 5001)")"
# The invoice changed since it was paid: a currency, a void, a total lowered below what would come back.
q "UPDATE invoice SET currency = 'CAD' WHERE invoice_id = $i_id"
nu; reject reversal_currency_mismatch "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$ok_rev")"
q "UPDATE invoice SET currency = 'USD', total_minor = balance_minor WHERE invoice_id = $i_id"
nu; reject reversal_exceeds_invoice_total "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$ok_rev")"
q "UPDATE invoice SET status = 'void' WHERE invoice_id = $i_id"
nu; reject reversal_invoice_closed "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$ok_rev")"
# As the agent answers a rejection: recorded, and a replay writes nothing.
nu; urj=$id
prj=$(reversal "$urj" "$(uuid 4999)" OP-001 "$c_no" USD 100 "$ok_rev")
apply "$prj" && fail "a reversal of an unknown posting was accepted"
q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$urj', 'ML001 original_not_posted')
   ON CONFLICT (posting_uuid) DO NOTHING"
fp=$(fingerprint)
apply "$prj" || fail "replay of a rejected reversal raised an error" "$(cat "$tmp/err")"
expect "a rejected reversal stays rejected and writes nothing" "$urj|rejected|null|ML001 original_not_posted|$fp" \
    "$(result "$urj")|$(fingerprint)"

# --- the agent's reads ---------------------------------------------------------------------------------
hw=$(q 'SELECT COALESCE(MAX(change_id), 0) FROM ml_change')
expect "changes_since pages up to the high-water mark" "3" \
    "$(q "SELECT count(*) FROM (SELECT change_id, op, $items FROM ml_changes
          WHERE change_id > $((hw - 5)) AND change_id <= $((hw - 2)) ORDER BY change_id LIMIT 1000)")"
expect "contract_version read" "4|$epoch" "$(q 'SELECT contract_version, db_epoch FROM ml_contract')"
expect "trust_balances page" "$(q 'SELECT count(*) FROM ml_trust_balances WHERE source_id > 0')" \
    "$(q "SELECT count(*) FROM (SELECT $items FROM ml_trust_balances WHERE source_id > 0 ORDER BY source_id LIMIT 100000)")"
expect "every ml_change row has one ml_changes row" "$(q 'SELECT count(*) FROM ml_change')" \
    "$(q 'SELECT count(*) FROM ml_changes')"

# --- the search index (version 4, docs/contract.md 5.8) -----------------------------------------------
expect "search views: one row per client, matter and invoice, keys lower-cased" \
    "$(q "SELECT (SELECT count(*) FROM client) || '|' || (SELECT count(*) FROM matter) || '|' || (SELECT count(*) FROM invoice)")" \
    "$(q "SELECT (SELECT count(*) FROM ml_search_clients WHERE client_number_key = lower(client_number)) || '|' ||
                 (SELECT count(*) FROM ml_search_matters WHERE matter_number_key = lower(matter_number)) || '|' ||
                 (SELECT count(*) FROM ml_search_invoices WHERE invoice_number_key = lower(invoice_number))")"
# A number search is a range of the key's expression index, not a scan (the plan says so).
plan=$(q "EXPLAIN QUERY PLAN SELECT source_id FROM ml_search_invoices
          WHERE invoice_number_key >= 'inv-00001' AND invoice_number_key < 'inv-00002'")
case $plan in *"USING INDEX ml_search_invoice_number"* | *"USING COVERING INDEX ml_search_invoice_number"*) checks=$((checks + 1)) ;;
    *) fail "an invoice number key range does not use ml_search_invoice_number" "$plan" ;; esac
plan=$(q "EXPLAIN QUERY PLAN SELECT client_id FROM ml_search_clients
          WHERE client_number_key >= 'c-0001' AND client_number_key < 'c-0002'")
case $plan in *"INDEX ml_search_client_number"*) checks=$((checks + 1)) ;;
    *) fail "a client number key range does not use ml_search_client_number" "$plan" ;; esac
# The keys follow a renumbering at once (SQLite keeps expression indexes itself); lower() folds
# ASCII letters only, so the agent bounds the key by the text's ASCII run (docs/contract.md 5.8).
q "UPDATE client SET client_number = 'ÄB-Xy' WHERE client_id = 1"
expect "a renumbered client's key" "Äb-xy|1" \
    "$(q "SELECT client_number_key, client_id FROM ml_search_clients WHERE client_id = 1")"

# ----------------------------------------------------------------------------------------------------
if [ "$failures" -ne 0 ]; then
    printf 'contract_sqlite: %d of %d checks failed\n' "$failures" "$checks"
    exit 1
fi
printf 'contract_sqlite: all %d checks passed\n' "$checks"
