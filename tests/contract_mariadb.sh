#!/bin/sh
# Tests the MariaDB SQL contract (sql/mariadb/contract.sql) against the reference schema and sample data,
# with nothing but the mariadb client: the same checks as tests/contract_sqlite.sh (install and re-run,
# the upgrade from version 1, the item procedures, exactly-once postings, reversing postings, every
# rejection code, change capture), plus change capture
# with concurrent sessions (a long transaction, a writer next to an open stamper, 1000 rows in one
# statement) and the result column types the ODBC driver will see.
#
#   tests/contract_mariadb.sh [REPO_ROOT]      (default: the directory above this script)
#
# Uses the servers of ML_SERVERS_DIR (tests/servers.sh start DIR) when it is set; otherwise starts its
# own in a temporary directory and stops them on exit. Works in its own database, contract_my_<pid>,
# and drops it at the end. Exit status 0 when every check passes, 1 otherwise; each failed check is
# printed.

set -u

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -f "$root/sql/mariadb/contract.sql" ] || { echo "contract_mariadb: no sql/mariadb/contract.sql under $root" >&2; exit 2; }
command -v mariadb >/dev/null 2>&1 || { echo "contract_mariadb: mariadb client not found" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
own_servers=
db=contract_my_$$
port=

cleanup() {
    if [ -n "$port" ]; then
        mariadb -h127.0.0.1 -P"$port" -uroot -e "DROP DATABASE IF EXISTS \`$db\`; DROP DATABASE IF EXISTS \`${db}_u\`" >/dev/null 2>&1
    fi
    [ -z "$own_servers" ] || sh "$root/tests/servers.sh" stop "$own_servers" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if [ -n "${ML_SERVERS_DIR:-}" ]; then
    [ -r "$ML_SERVERS_DIR/servers.env" ] || { echo "contract_mariadb: no $ML_SERVERS_DIR/servers.env" >&2; exit 2; }
    servers=$ML_SERVERS_DIR
else
    own_servers=$tmp/servers
    servers=$own_servers
    # The servers run as their service users (postgres, mysql), who must reach their directories.
    chmod 755 "$tmp"
    echo "contract_mariadb: starting database servers"
    sh "$root/tests/servers.sh" start "$servers" >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "FAIL: servers.sh start"; exit 1; }
fi
port=$(sed -n 's/^ML_MARIADB_PORT=//p' "$servers/servers.env")
[ -n "$port" ] || { echo "contract_mariadb: no ML_MARIADB_PORT in $servers/servers.env" >&2; exit 2; }
sh "$root/tests/servers.sh" createdb "$servers" mariadb "$db" >/dev/null || { echo "FAIL: createdb"; exit 1; }

# The checks, postings and rejections every dialect's script shares; a rejection's error
# starts with this (the driver's own words before ML001).
ml001_error='\(45001\).*'
. "$root/tests/lib_contract.sh"

# check NAME: passes when the command that ran just before succeeded ("cmd; check name").
check() {
    checks=$((checks + 1))
}

my() {
    mariadb -h127.0.0.1 -P"$port" -uroot --default-character-set=utf8mb4 "$@"
}

# Runs SQL in the test database; prints rows with columns joined by |, NULL as NULL. Fails when the
# client fails (a pipe would hide its status).
q() {
    my -N -B "$db" -e "$1" >"$tmp/q.out"
    q_status=$?
    tr '\t' '|' <"$tmp/q.out"
    return $q_status
}

# Text as an SQL string literal body: MariaDB reads backslash escapes in literals.
lit() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"
}

# Milliseconds since the epoch.
now_ms() {
    date +%s%3N
}

# wait_for SQL DEADLINE_S: polls until SQL returns a non-zero count; 1 when the deadline passes.
wait_for() {
    end=$(($(now_ms) + $2 * 1000))
    while [ "$(q "$1")" = 0 ]; do
        [ "$(now_ms)" -lt "$end" ] || return 1
        sleep 0.05
    done
    return 0
}

# Everything an apply may write, in one line: a rejected or replayed posting must leave it unchanged.
fingerprint() {
    q "SELECT CONCAT_WS('/', (SELECT COUNT(*) FROM receipt), (SELECT COUNT(*) FROM receipt_allocation),
                             (SELECT COUNT(*) FROM trust_entry), (SELECT COUNT(*) FROM ml_change),
                             (SELECT COUNT(*) FROM ml_posting_rejection),
                             (SELECT COUNT(*) FROM receipt_reversal), (SELECT COUNT(*) FROM receipt_reversal_line),
                             (SELECT SUM(invoice_id * (balance_minor + 1) * (1 + (status = 'paid'))) FROM invoice))"
}

# apply JSON: one transaction, as the agent does it (autocommit off, CALL, COMMIT); stderr goes to
# $tmp/err. On an error the client stops and disconnects, which rolls the transaction back.
apply() {
    my -N -B "$db" -e "SET autocommit = 0; CALL ml_apply_posting('$(lit "$1")'); COMMIT;" >/dev/null 2>"$tmp/err"
}

reject_posting() {
    q "SET autocommit = 0; CALL ml_reject_posting('$1', '$(lit "$2")'); COMMIT;"
}

result() {
    q "CALL ml_posting_result('$1')"
}

# The agent's high-water read, in its own transaction; prints the high-water.
stamp() {
    q "SET autocommit = 0; CALL ml_change_high_water(); COMMIT;"
}

# The newest change for an item, as op|balance_minor|status (after stamping what is committed).
latest() {
    stamp >/dev/null
    q "SELECT CONCAT_WS('|', op, COALESCE(balance_minor, 'null'), COALESCE(status, 'null')) FROM ml_changes
       WHERE item_kind = '$1' AND source_id = $2 ORDER BY change_id DESC LIMIT 1"
}

# The result columns of a statement, as "name TYPE, name TYPE, ...", types as the client reports them
# (LONGLONG is BIGINT, VAR_STRING is VARCHAR).
coltypes() {
    printf '%s;\n' "$1" | my --column-type-info -t "$db" |
        sed -n -e 's/^Field *[0-9]*: *`\(.*\)`$/\1/p' -e 's/^Type: *\([A-Z_]*\)$/\1/p' |
        paste -d ' ' - - | paste -s -d ',' - | sed 's/,/, /g'
}

items='item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name, matter_number, matter_description, currency, total_minor, balance_minor, status'
item_types='item_kind VAR_STRING, source_id LONGLONG, invoice_number VAR_STRING, invoice_date VAR_STRING, due_date VAR_STRING, client_number VAR_STRING, client_name VAR_STRING, matter_number VAR_STRING, matter_description VAR_STRING, currency VAR_STRING, total_minor LONGLONG, balance_minor LONGLONG, status VAR_STRING'

# ----------------------------------------------------------------------------------------------------
clients=40
invoices=1200
echo "contract_mariadb: building a sample database ($clients clients, $invoices invoices)"
install() {
    my "$db" <"$root/sql/mariadb/schema.sql" &&
        my "$db" <"$root/sql/mariadb/contract.sql" &&
        my -e "SET @clients = $clients, @invoices = $invoices; SOURCE $root/sql/mariadb/sample.sql;" "$db"
}
install >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "FAIL: installing schema, contract and sample"; exit 1; }

# --- contract version, epoch, idempotent install ----------------------------------------------------
expect "one ml_contract row, version 4" "1|4" "$(q 'SELECT COUNT(*), MAX(contract_version) FROM ml_contract')"
epoch=$(q 'SELECT db_epoch FROM ml_contract')
expect "db_epoch is a lower-case version 4 UUID" 1 \
    "$(q "SELECT BINARY '$epoch' REGEXP '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\$'")"
if q "INSERT INTO ml_contract VALUES (1, '$epoch', UTC_TIMESTAMP())" 2>/dev/null; then
    fail "ml_contract accepted a second row"
fi
check

q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$(uuid 999)', 'ML001 bad_amount')"
before=$(q 'SELECT CONCAT_WS(",", COUNT(*), COUNT(change_id), MAX(change_id)) FROM ml_change')
stamp_before=$(q 'SELECT last_change_id FROM ml_change_stamp')
q "UPDATE ml_contract SET contract_version = 1"
my "$db" <"$root/sql/mariadb/schema.sql" || fail "schema.sql re-run"
my "$db" <"$root/sql/mariadb/contract.sql" || fail "contract.sql re-run"
my "$db" <"$root/sql/mariadb/contract.sql" || fail "contract.sql second re-run"
expect "re-run keeps db_epoch" "$epoch" "$(q 'SELECT db_epoch FROM ml_contract')"
expect "re-run over version 1 sets contract_version 4" "1|4" "$(q 'SELECT COUNT(*), contract_version FROM ml_contract')"
expect "re-run keeps ml_change rows and their change ids" "$before" \
    "$(q 'SELECT CONCAT_WS(",", COUNT(*), COUNT(change_id), MAX(change_id)) FROM ml_change')"
expect "re-run keeps the stamp counter" "$stamp_before" "$(q 'SELECT last_change_id FROM ml_change_stamp')"
expect "re-run keeps ml_posting_rejection rows" 1 "$(q 'SELECT COUNT(*) FROM ml_posting_rejection')"
expect "the migration helper is gone" 0 \
    "$(q "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME = 'ml_contract_migrate'")"
q "DELETE FROM ml_posting_rejection"
my -e "SET @clients = $clients, @invoices = $invoices; SOURCE $root/sql/mariadb/sample.sql;" "$db" >"$tmp/out" 2>&1 ||
    fail "sample.sql re-run" "$(cat "$tmp/out")"
expect "sample.sql re-run says so" 1 "$(grep -c 'already has data; nothing inserted' "$tmp/out")"
expect "sample.sql re-run adds no data" "$invoices" "$(q 'SELECT COUNT(*) FROM invoice')"
expect "the sample's change rows are stamped" "0|$stamp_before" \
    "$(q 'SELECT COUNT(*) - COUNT(change_id), MAX(change_id) FROM ml_change')"

# --- upgrade from contract version 1 -----------------------------------------------------------------
# A database installed with version 1's scripts (from the last commit that had them), with a posting
# applied, becomes version 4 when this release's contract.sql runs over it, after schema.sql: epoch,
# change rows and posting results stay, and reversals work. contract.sql alone refuses to install
# while the reversal tables are missing, before it changes anything.
v1=9450a9b
if command -v git >/dev/null 2>&1 && git -C "$root" cat-file -e "$v1:sql/mariadb/contract.sql" 2>/dev/null; then
    qu() {
        my -N -B "${db}_u" -e "$1" | tr '\t' '|'
    }
    sh "$root/tests/servers.sh" createdb "$servers" mariadb "${db}_u" >/dev/null || fail "createdb for the upgrade"
    { git -C "$root" show "$v1:sql/mariadb/schema.sql" | my "${db}_u" &&
        git -C "$root" show "$v1:sql/mariadb/contract.sql" | my "${db}_u"; } >"$tmp/out" 2>&1 ||
        fail "installing contract version 1" "$(cat "$tmp/out")"
    qu "INSERT INTO client (client_number, name) VALUES ('C-1', 'Old Client');
        INSERT INTO matter (matter_number, client_id, description) VALUES ('M-1', 1, 'Old matter');
        INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('OP-001', 'Operating', 'OPERATING', 'USD');
        INSERT INTO invoice (invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor)
        VALUES ('INV-1', 1, '2026-01-05', 'USD', 10000, 10000);
        CALL ml_apply_posting('$(lit "$(posting "$(uuid 901)" OP-001 C-1 USD 10000 "$(inv INV-1 10000)")")');
        CALL ml_change_high_water();" >/dev/null
    expect "version 1 installed and posting" "1|paid" "$(qu "SELECT contract_version, (SELECT status FROM invoice) FROM ml_contract")"
    old_epoch=$(qu 'SELECT db_epoch FROM ml_contract')
    old_changes=$(qu "SELECT CONCAT(COUNT(*), '/', MAX(change_id)) FROM ml_change")
    checks=$((checks + 1))
    if my "${db}_u" <"$root/sql/mariadb/contract.sql" >"$tmp/out" 2>&1; then
        fail "contract.sql installed without receipt_reversal"
    elif ! grep -q 'receipt_reversal tables are missing: run sql/mariadb/schema.sql first' "$tmp/out"; then
        fail "contract.sql without receipt_reversal: wrong message" "$(cat "$tmp/out")"
    fi
    expect "a refused install changes nothing" "1|0" \
        "$(qu "SELECT contract_version, (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()
               AND TABLE_NAME = 'ml_posting_result' AND VIEW_DEFINITION LIKE '%receipt_reversal%') FROM ml_contract")"
    { my "${db}_u" <"$root/sql/mariadb/schema.sql" && my "${db}_u" <"$root/sql/mariadb/contract.sql"; } >"$tmp/out" 2>&1 ||
        fail "upgrading to version 4" "$(cat "$tmp/out")"
    expect "upgraded: version 4, same epoch, same change rows" "4|$old_epoch|$old_changes" \
        "$(qu "SELECT contract_version, db_epoch, (SELECT CONCAT(COUNT(*), '/', MAX(change_id)) FROM ml_change) FROM ml_contract")"
    expect "upgraded: the search index is filled" "c-1|m-1|inv-1" \
        "$(qu "SELECT CONCAT_WS('|', (SELECT client_number_key FROM ml_search_client), (SELECT matter_number_key FROM ml_search_matter),
                                    (SELECT invoice_number_key FROM ml_search_invoice))")"
    expect "upgraded: the version 1 posting's result stands" "$(uuid 901)|posted|1|NULL" "$(qu "CALL ml_posting_result('$(uuid 901)')")"
    my -N -B "${db}_u" -e "CALL ml_apply_posting('$(lit "$(reversal "$(uuid 902)" "$(uuid 901)" OP-001 C-1 USD 2500 "$(inv INV-1 2500)")")')" \
        >/dev/null 2>"$tmp/err" || fail "upgraded: a reversal of a version 1 posting" "$(cat "$tmp/err")"
    expect "upgraded: the reversal reopened the invoice" "2500|open|$(uuid 902)|posted|R-1|NULL" \
        "$(qu "SELECT balance_minor, status FROM invoice")|$(qu "CALL ml_posting_result('$(uuid 902)')")"
    my -e "DROP DATABASE \`${db}_u\`"
else
    echo "contract_mariadb: no git history with contract version 1 ($v1); upgrade checks skipped"
fi

# --- the sample is the same firm as SQLite's ----------------------------------------------------------
if command -v sqlite3 >/dev/null 2>&1 && [ -f "$root/sql/sqlite/sample.sql" ]; then
    lite=$tmp/firm.db
    { sqlite3 -bail "$lite" <"$root/sql/sqlite/schema.sql" && sqlite3 -bail "$lite" <"$root/sql/sqlite/contract.sql" &&
        printf '.parameter init\n.parameter set @clients %s\n.parameter set @invoices %s\n.read %s\n' \
            "$clients" "$invoices" "$root/sql/sqlite/sample.sql" | sqlite3 -bail "$lite"; } >"$tmp/out" 2>&1 ||
        fail "SQLite sample for comparison" "$(cat "$tmp/out")"
    for t in "client|client_id, client_number, name, COALESCE(email, 'NULL'), created_on" \
        "matter|matter_id, matter_number, client_id, description, status, opened_on" \
        "invoice|invoice_id, invoice_number, matter_id, invoice_date, COALESCE(due_date, 'NULL'), currency, total_minor, balance_minor, status" \
        "trust_entry|trust_entry_id, matter_id, bank_account_id, entry_date, amount_minor, currency, memo" \
        "bank_account|bank_account_id, account_number, name, account_type, currency"; do
        table=${t%%|*}
        columns=${t#*|}
        sqlite3 -separator '|' "$lite" "SELECT $columns FROM $table ORDER BY 1" >"$tmp/lite.txt"
        q "SELECT CONCAT_WS('|', $columns) FROM $table ORDER BY ${columns%%,*}" >"$tmp/my.txt"
        checks=$((checks + 1))
        cmp -s "$tmp/lite.txt" "$tmp/my.txt" || fail "sample $table rows equal SQLite's" "$(diff "$tmp/lite.txt" "$tmp/my.txt" | head -4)"
    done
fi

# --- interface: procedures, columns and types ---------------------------------------------------------
expect "the seven procedures and their parameters" \
    "ml_apply_posting(p_posting longtext) ml_change_high_water() ml_changes_since(p_since bigint,p_upto bigint,p_limit bigint) ml_open_items(p_after bigint,p_limit bigint) ml_posting_result(p_uuid varchar) ml_reject_posting(p_uuid varchar,p_reason varchar) ml_trust_balances(p_after bigint,p_limit bigint)" \
    "$(q "SELECT GROUP_CONCAT(CONCAT(r.ROUTINE_NAME, '(',
                 COALESCE((SELECT GROUP_CONCAT(CONCAT(p.PARAMETER_NAME, ' ', p.DATA_TYPE) ORDER BY p.ORDINAL_POSITION)
                           FROM information_schema.PARAMETERS AS p
                           WHERE p.SPECIFIC_SCHEMA = r.ROUTINE_SCHEMA AND p.SPECIFIC_NAME = r.ROUTINE_NAME
                             AND p.PARAMETER_MODE = 'IN'), ''), ')') ORDER BY BINARY r.ROUTINE_NAME SEPARATOR ' ')
          FROM information_schema.ROUTINES AS r
          WHERE r.ROUTINE_SCHEMA = DATABASE() AND r.ROUTINE_NAME LIKE 'ml\\_%'")"
expect "ml_open_items columns and types" "$item_types" "$(coltypes 'CALL ml_open_items(0, 1)')"
expect "ml_trust_balances columns and types" "$item_types" "$(coltypes 'CALL ml_trust_balances(0, 1)')"
expect "ml_changes_since columns and types" "change_id LONGLONG, op VAR_STRING, $item_types" \
    "$(coltypes 'CALL ml_changes_since(0, 1000000000, 1)')"
expect "ml_change_high_water column and type" "high_water LONGLONG" "$(coltypes 'CALL ml_change_high_water()')"
expect "ml_posting_result columns and types" \
    "posting_uuid VAR_STRING, status VAR_STRING, receipt_id VAR_STRING, reason VAR_STRING" \
    "$(coltypes "CALL ml_posting_result('x')")"
expect "ml_contract columns" "contract_version, db_epoch, installed_at" \
    "$(q "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ml_contract' AND EXTRA NOT LIKE '%INVISIBLE%'")"
expect "ml_changes view columns" "change_id, op, $items" \
    "$(q "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ml_changes'")"
expect "money columns are BIGINT, never DECIMAL or float" 0 \
    "$(q "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
          AND COLUMN_NAME LIKE '%\\_minor' AND DATA_TYPE <> 'bigint'")"

# --- sample data and the item procedures -------------------------------------------------------------
expect "sample has open, partly paid and paid invoices" "1|1|1" \
    "$(q "SELECT MAX(status = 'open' AND balance_minor = total_minor),
                 MAX(status = 'open' AND balance_minor BETWEEN 1 AND total_minor - 1),
                 MAX(status = 'paid' AND balance_minor = 0) FROM invoice")"
my -N -B "$db" -e "CALL ml_open_items(0, 100000)" | tr '\t' '|' >"$tmp/open.txt"
expect "open items = open invoices with a balance" \
    "$(q "SELECT COUNT(*) FROM invoice WHERE status = 'open' AND balance_minor > 0")" "$(wc -l <"$tmp/open.txt" | tr -d ' ')"
expect "open items are all open, positive, kind invoice, dated" 0 \
    "$(awk -F'|' '$1 != "invoice" || $13 != "open" || $12 <= 0 || $6 == "NULL" || $8 == "NULL" ||
                  $4 !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$/ || $5 !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$/' \
        "$tmp/open.txt" | wc -l | tr -d ' ')"
expect "open items come in source_id order" "$(cut -d'|' -f2 "$tmp/open.txt" | sort -n | tr '\n' ',')" \
    "$(cut -d'|' -f2 "$tmp/open.txt" | tr '\n' ',')"
my -N -B "$db" -e "CALL ml_trust_balances(0, 100000)" | tr '\t' '|' >"$tmp/trust.txt"
expect "one trust row per matter with entries" \
    "$(q 'SELECT COUNT(DISTINCT matter_id), SUM(amount_minor) FROM trust_entry')" \
    "$(awk -F'|' '{ n++; s += $12 } END { print n "|" s }' "$tmp/trust.txt")"
expect "trust rows are shaped as trust" 0 \
    "$(awk -F'|' '$1 != "trust" || $13 != "trust" || $3 != "NULL" || $11 != "NULL" || $10 != "USD"' "$tmp/trust.txt" | wc -l | tr -d ' ')"
after=$(sed -n 5p "$tmp/open.txt" | cut -d'|' -f2)
expect "paging by source_id returns the next page" "$(sed -n 6,8p "$tmp/open.txt")" \
    "$(q "CALL ml_open_items($after, 3)")"
expect "a page of 0 rows is empty" "" "$(q "CALL ml_open_items(0, 0)")"

# --- apply a posting ---------------------------------------------------------------------------------
# A client with two open, unpaid invoices over $300 and a matter; another client's invoice; a paid one.
row=$(q "SELECT c.client_number, i.invoice_id, i.invoice_number, i.balance_minor, m.matter_number, m.matter_id
         FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
         WHERE i.status = 'open' AND i.balance_minor = i.total_minor AND i.balance_minor > 30000
           AND (SELECT COUNT(*) FROM invoice AS j JOIN matter AS n USING (matter_id)
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
             WHERE c.client_number = '$client' AND i.status = 'paid' ORDER BY i.invoice_id LIMIT 1")
other=$(q "SELECT i.invoice_number, m.matter_number
           FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
           WHERE c.client_number <> '$client' AND i.status = 'open' AND i.balance_minor > 0 ORDER BY i.invoice_id LIMIT 1")
IFS='|' read -r other_inv other_matter <<EOF
$other
EOF

changes0=$(stamp)
u1=$(uuid 1)
p1=$(posting "$u1" OP-001 "$client" USD 25000 "$(inv "$inv_no" 10000),$(inv "$inv2_no" 15000)")
apply "$p1" || fail "apply posting 1" "$(cat "$tmp/err")"
receipt1=$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$u1'")
expect "posting 1 wrote one receipt" "1|25000|USD" \
    "$(q "SELECT COUNT(*), SUM(amount_minor), MIN(currency) FROM receipt WHERE posting_uuid = '$u1'")"
expect "posting 1 allocations sum to the amount, in order" "2|25000|$inv_id,$inv2_id" \
    "$(q "SELECT COUNT(*), SUM(amount_minor), GROUP_CONCAT(invoice_id ORDER BY receipt_allocation_id)
          FROM receipt_allocation WHERE receipt_id = $receipt1")"
expect "posting 1 receipt fields" "2026-11-22|Pat Payer|pat@example.com|Thank you|txn_$u1|OP-001|$client" \
    "$(q "SELECT r.received_on, r.payer_name, r.payer_email, r.ar_message, r.processor_txn, b.account_number,
                 c.client_number FROM receipt AS r JOIN bank_account AS b USING (bank_account_id)
          JOIN client AS c USING (client_id) WHERE r.receipt_id = $receipt1")"
expect "posted_at is UTC now" 1 \
    "$(q "SELECT ABS(TIMESTAMPDIFF(SECOND, posted_at, UTC_TIMESTAMP())) < 60 FROM receipt WHERE receipt_id = $receipt1")"
expect "invoice balance decreased" "$((inv_bal - 10000))|open" \
    "$(q "SELECT balance_minor, status FROM invoice WHERE invoice_id = $inv_id")"
expect "second invoice balance decreased" "$((inv2_bal - 15000))" \
    "$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $inv2_id")"
expect "the posting's changes are not numbered before a high-water read" "2" \
    "$(q "SELECT COUNT(*) FROM ml_change WHERE change_id IS NULL AND entity = 'invoice' AND entity_id IN ($inv_id, $inv2_id)")"
hw1=$(stamp)
expect "ml_change rows for both invoices" "2" \
    "$(q "SELECT COUNT(DISTINCT entity_id) FROM ml_change WHERE change_id > $changes0 AND change_id <= $hw1
          AND entity = 'invoice' AND entity_id IN ($inv_id, $inv2_id)")"
expect "ml_changes shows the new balance" "upsert|$((inv_bal - 10000))|open" "$(latest invoice "$inv_id")"
expect "ml_posting_result: posted" "$u1|posted|$receipt1|NULL" "$(result "$u1")"

# In the agent's order: apply, result and high-water in one transaction; the high-water covers the
# posting's own changes.
uo=$(uuid 2)
out=$(q "SET autocommit = 0; CALL ml_apply_posting('$(lit "$(posting "$uo" OP-001 "$client" USD 100 "$(inv "$inv_no" 100)")")');
         CALL ml_posting_result('$uo'); CALL ml_change_high_water(); COMMIT;")
hw2=$(printf '%s\n' "$out" | tail -1)
expect "apply, result and high-water in one transaction" "$uo|posted" "$(printf '%s\n' "$out" | head -1 | cut -d'|' -f1,2)"
expect "that high-water covers the posting's change" 1 \
    "$(q "SELECT COUNT(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $inv_id AND change_id > $hw1 AND change_id <= $hw2")"
inv_bal=$((inv_bal - 100))

# --- replay ------------------------------------------------------------------------------------------
fp=$(fingerprint)
apply "$p1" || fail "replay of posting 1 raised an error" "$(cat "$tmp/err")"
expect "replay writes nothing" "$fp" "$(fingerprint)"
expect "replay: still one receipt" 1 "$(q "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$u1'")"
# A replay is answered from the first outcome even if this copy of the posting differs.
apply "$(posting "$u1" OP-001 "$client" USD 1 "$(inv "$inv_no" 1)")" || fail "changed replay raised an error"
expect "changed replay writes nothing" "$fp" "$(fingerprint)"
reject_posting "$u1" "ML001 bad_amount"
expect "a posted uuid cannot also be rejected" "$u1|posted|$receipt1|NULL" "$(result "$u1")"
if q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$u1', 'ML001 bad_amount')" 2>/dev/null; then
    fail "ml_posting_rejection accepted a posted uuid"
fi
check

# --- rejections --------------------------------------------------------------------------------------
q "INSERT INTO bank_account (account_number, name, account_type, currency)
   VALUES ('OP-CAD', 'Operating CAD', 'OPERATING', 'CAD')"
n=100
ok_lines="$(inv "$inv_no" 100)"

reject bad_posting 'not json'
reject bad_posting '[1,2]'
reject bad_posting '{"posting_uuid": 7}'
reject bad_posting "$(posting ABCDEF00-0000-4000-8000-000000000001 OP-001 "$client" USD 100 "$ok_lines")"
reject bad_posting "$(posting 00000000-0000-4000-8000-00000000001 OP-001 "$client" USD 100 "$ok_lines")"
reject bad_posting "$(posting '00000000-0000-4000-8000-000000000001\n' OP-001 "$client" USD 100 "$ok_lines")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/2026-11-22/2026-02-30/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/2026-11-22/2026-11-2/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" usd 100 "$ok_lines")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/"payer_name":"Pat Payer"/"payer_name":5/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"refund","amount_minor":100}')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"invoice","amount_minor":100}')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "{\"kind\":\"INVOICE\",\"invoice_number\":\"$inv_no\",\"amount_minor\":100}")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "{\"kind\":\"invoice\",\"invoice_number\":117,\"amount_minor\":100}")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '7')"
nu; reject unknown_account "$(posting "$id" OP-999 "$client" USD 100 "$ok_lines")"
nu; reject client_not_found "$(posting "$id" OP-001 C-99999 USD 100 "$ok_lines")"
nu; reject client_not_found "$(posting "$id" OP-001 "$(printf '%s' "$client" | tr 'C' 'c')" USD 100 "$ok_lines")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 0 "$(inv "$inv_no" 0)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100.00 "$(inv "$inv_no" 100)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 1e2 "$(inv "$inv_no" 100)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD '"100"' "$(inv "$inv_no" 100)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 1000000000000000 "$(inv "$inv_no" 1000000000000000)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$inv_no" 150),$(inv "$inv2_no" -50)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"invoice","invoice_number":"'"$inv_no"'"}')"
nu; reject allocation_sum_mismatch "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$inv_no" 60),$(inv "$inv2_no" 30)")"
nu; reject currency_mismatch "$(posting "$id" OP-001 "$client" CAD 100 "$ok_lines")"
nu; reject currency_mismatch "$(posting "$id" OP-CAD "$client" CAD 100 "$ok_lines")"
nu; reject operating_account_required "$(posting "$id" TR-001 "$client" USD 100 "$ok_lines")"
nu; reject trust_account_required "$(posting "$id" OP-001 "$client" USD 100 "$(trust "$matter" 100)")"
nu; reject trust_account_required "$(posting "$id" OP-001 "$client" USD 200 "$ok_lines,$(trust "$matter" 100)")"
nu; reject invoice_not_found "$(posting "$id" OP-001 "$client" USD 100 "$(inv INV-9999999 100)")"
nu; reject invoice_not_found "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$(printf '%s' "$inv_no" | tr 'INV' 'inv')" 100)")"
nu; reject invoice_not_found "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$inv_no " 100)")"
nu; reject matter_not_found "$(posting "$id" TR-001 "$client" USD 100 "$(trust M-999999 100)")"
nu; reject duplicate_line "$(posting "$id" OP-001 "$client" USD 200 "$ok_lines,$ok_lines")"
nu; reject duplicate_line "$(posting "$id" TR-001 "$client" USD 200 "$(trust "$matter" 100),$(trust "$matter" 100)")"
nu; reject invoice_client_mismatch "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$other_inv" 100)")"
nu; reject matter_client_mismatch "$(posting "$id" TR-001 "$client" USD 100 "$(trust "$other_matter" 100)")"
nu; reject invoice_not_open "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")"
nu; reject amount_over_balance "$(posting "$id" OP-001 "$client" USD $((inv_bal - 9999)) "$(inv "$inv_no" $((inv_bal - 9999)))")"
# The first failing check wins: a bad line amount (4) before an unknown invoice (9).
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 100 "$(inv INV-9999999 0)")"
# A matter whose trust ledger is in another currency.
cad_matter=$(q "SELECT m.matter_number FROM matter AS m JOIN client AS c USING (client_id) WHERE c.client_number = '$client'
                AND m.matter_id <> $matter_id
                AND NOT EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id LIMIT 1")
checks=$((checks + 1))
if [ -z "$cad_matter" ]; then
    fail "sample data has no second matter without trust entries for $client"
else
    q "INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('TR-CAD', 'Trust CAD', 'TRUST', 'CAD');
       INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
       SELECT m.matter_id, b.bank_account_id, '2026-11-01', 5000, 'CAD', 'Retainer deposit'
       FROM matter AS m, bank_account AS b WHERE m.matter_number = '$cad_matter' AND b.account_number = 'TR-CAD'"
    nu; reject currency_mismatch "$(posting "$id" TR-001 "$client" USD 100 "$(trust "$cad_matter" 100)")"
fi
# With autocommit on the procedure makes its own transaction, and a rejection still writes nothing.
checks=$((checks + 1))
fp=$(fingerprint)
nu
if my -N -B "$db" -e "CALL ml_apply_posting('$(lit "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")")')" 2>"$tmp/err"; then
    fail "autocommit apply of a bad posting was accepted"
fi
expect "autocommit rejection writes nothing" "$fp" "$(fingerprint)"

# With autocommit on, a good posting is applied in a transaction of its own.
nu; ua=$id
my -N -B "$db" -e "CALL ml_apply_posting('$(lit "$(posting "$ua" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")")')" 2>"$tmp/err" ||
    fail "autocommit apply" "$(cat "$tmp/err")"
expect "autocommit apply posted" "$ua|posted" "$(result "$ua" | cut -d'|' -f1,2)"

# The agent records a rejection after rolling back; a replay then writes nothing and the result stands.
nu; ur=$id
pr=$(posting "$ur" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")
apply "$pr" && fail "rejected posting was accepted"
reject_posting "$ur" "ML001 invoice_not_open"
reject_posting "$ur" "ML001 something_else"
expect "ml_posting_result: rejected" "$ur|rejected|NULL|ML001 invoice_not_open" "$(result "$ur")"
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
    "$(q "SELECT COUNT(*) FROM ml_changes WHERE item_kind = 'invoice' AND source_id = $inv_id AND op = 'remove'
          AND COALESCE(invoice_number, invoice_date, due_date, client_number, client_name, matter_number,
                       matter_description, currency, total_minor, balance_minor, status) IS NULL
          AND change_id = (SELECT MAX(change_id) FROM ml_change WHERE entity = 'invoice' AND entity_id = $inv_id)")"
expect "paid-off invoice left ml_open_items" 0 "$(q "SELECT COUNT(*) FROM ml_open_items WHERE source_id = $inv_id")"

# --- trust deposit through a posting ------------------------------------------------------------------
tbal=$(q "SELECT COALESCE(SUM(amount_minor), 0) FROM trust_entry WHERE matter_id = $matter_id")
nu; ut=$id
apply "$(posting "$ut" TR-001 "$client" USD 50000 "$(trust "$matter" 50000)")" || fail "trust posting" "$(cat "$tmp/err")"
expect "trust posting wrote a deposit" "1|50000|matterlink receipt|TR-001|2026-11-22" \
    "$(q "SELECT COUNT(*), SUM(t.amount_minor), MIN(t.memo), MIN(b.account_number), MIN(t.entry_date) FROM trust_entry AS t
          JOIN bank_account AS b USING (bank_account_id)
          WHERE t.receipt_id = (SELECT receipt_id FROM receipt WHERE posting_uuid = '$ut')")"
expect "trust posting shows in ml_changes" "upsert|$((tbal + 50000))|trust" "$(latest trust "$matter_id")"
expect "trust posting shows in ml_trust_balances" "$((tbal + 50000))" \
    "$(q "CALL ml_trust_balances($((matter_id - 1)), 1)" | cut -d'|' -f12)"

# --- direct edits by the billing system ----------------------------------------------------------------
# A new trust entry on a matter that had none.
new_matter=$(q "SELECT m.matter_id FROM matter AS m WHERE NOT EXISTS
                (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id LIMIT 1")
q "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
   VALUES ($new_matter, (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001'),
           '2026-11-20', 120000, 'USD', 'Retainer deposit')"
expect "new trust entry is a trust upsert" "upsert|120000|trust" "$(latest trust "$new_matter")"
# Moving an entry to another matter changes both.
entry=$(q "SELECT MAX(trust_entry_id) FROM trust_entry WHERE matter_id = $new_matter")
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

# Voiding and closing invoices.
void=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id DESC LIMIT 1")
q "UPDATE invoice SET status = 'void' WHERE invoice_id = $void"
expect "voided invoice is a remove" "remove|null|null" "$(latest invoice "$void")"
closed=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id DESC LIMIT 1")
q "UPDATE invoice SET status = 'closed' WHERE invoice_id = $closed"
expect "closed invoice is a remove" "remove|null|null" "$(latest invoice "$closed")"

# A new matter, a new invoice on it and a first trust entry: upserts with the new matter's number.
q "INSERT INTO matter (matter_number, client_id, description, status, opened_on)
   SELECT 'M-NEW-1', client_id, 'New engagement', 'open', '2026-11-21' FROM client WHERE client_number = '$client';
   INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status)
   SELECT 'INV-NEW-1', matter_id, '2026-11-21', '2026-12-21', 'USD', 77700, 77700, 'open' FROM matter WHERE matter_number = 'M-NEW-1';
   INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
   SELECT m.matter_id, b.bank_account_id, '2026-11-21', 30000, 'USD', 'Retainer deposit'
   FROM matter AS m, bank_account AS b WHERE m.matter_number = 'M-NEW-1' AND b.account_number = 'TR-001'"
new_inv=$(q "SELECT invoice_id FROM invoice WHERE invoice_number = 'INV-NEW-1'")
new_m=$(q "SELECT matter_id FROM matter WHERE matter_number = 'M-NEW-1'")
expect "new invoice is an upsert" "upsert|77700|open" "$(latest invoice "$new_inv")"
expect "new invoice carries its row" "INV-NEW-1|2026-11-21|2026-12-21|$client|M-NEW-1|New engagement|USD|77700" \
    "$(q "SELECT CONCAT_WS('|', invoice_number, invoice_date, due_date, client_number, matter_number, matter_description,
                          currency, total_minor)
          FROM ml_changes WHERE item_kind = 'invoice' AND source_id = $new_inv ORDER BY change_id DESC LIMIT 1")"
expect "new matter's trust ledger is an upsert" "upsert|30000|trust" "$(latest trust "$new_m")"

# Renaming a client: one change row per open invoice, one per matter with trust entries.
open_n=$(q "SELECT COUNT(*) FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
            WHERE c.client_number = '$client' AND i.status = 'open' AND i.balance_minor > 0")
trust_n=$(q "SELECT COUNT(*) FROM matter AS m JOIN client AS c USING (client_id) WHERE c.client_number = '$client'
             AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)")
mark=$(stamp)
q "UPDATE client SET name = 'Renamed Client LLC' WHERE client_number = '$client'"
hw=$(stamp)
expect "client rename: change rows" "$open_n|$trust_n" \
    "$(q "SELECT SUM(entity = 'invoice'), SUM(entity = 'trust') FROM ml_change WHERE change_id > $mark")"
expect "client rename: ml_changes_since carries the new name" "$((open_n + trust_n))" \
    "$(q "CALL ml_changes_since($mark, $hw, 100000)" | awk -F'|' '$2 == "upsert" && $9 == "Renamed Client LLC"' | wc -l | tr -d ' ')"
q "UPDATE client SET name = 'renamed client llc' WHERE client_number = '$client'"
expect "a change of case is a change" "$((hw + open_n + trust_n))" "$(stamp)"
mark=$(stamp)
q "UPDATE client SET email = 'new@example.com' WHERE client_number = '$client'"
expect "client e-mail change adds no change rows" "$mark" "$(stamp)"

# Renaming a matter.
mark=$(stamp)
q "UPDATE matter SET description = 'Renamed matter' WHERE matter_id = $matter_id"
stamp >/dev/null
expect "matter update: change rows" \
    "$(q "SELECT COUNT(*) + 1 FROM invoice WHERE matter_id = $matter_id AND status = 'open' AND balance_minor > 0")" \
    "$(q "SELECT COUNT(*) FROM ml_changes WHERE change_id > $mark AND matter_description = 'Renamed matter'")"

# --- reversing postings --------------------------------------------------------------------------------
# A refund, void or chargeback is a posting of its own that names the posting it reverses and takes
# back part or all of it; the original receipt is never edited.
used=0
state() { q "SELECT CONCAT_WS('|', balance_minor, status) FROM invoice WHERE invoice_id = $1"; }

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
expect "ml_posting_result of a reversal: posted, R- and its id" "$rv|posted|R-$rev_a|NULL" "$(result "$rv")"
expect "ml_posting_result view of a reversal" "$rv|posted|R-$rev_a" \
    "$(q "SELECT posting_uuid, status, receipt_id FROM ml_posting_result WHERE posting_uuid = '$rv'")"
expect "the reversal names the original receipt, the day, amount and transaction" \
    "$receipt_a|2026-11-22|$i_total|USD|Thank you|txn_$rv" \
    "$(q "SELECT receipt_id, reversed_on, amount_minor, currency, ar_message, processor_txn
          FROM receipt_reversal WHERE receipt_reversal_id = $rev_a")"
expect "its line names the original's allocation line" "1|$i_total" \
    "$(q "SELECT count(*), sum(l.amount_minor) FROM receipt_reversal_line AS l
          JOIN receipt_allocation AS ra USING (receipt_allocation_id)
          WHERE l.receipt_reversal_id = $rev_a AND ra.receipt_id = $receipt_a AND ra.invoice_id = $i_id")"
expect "the original receipt is not edited" "$ua|posted|$receipt_a|NULL|$i_total" \
    "$(result "$ua")|$(q "SELECT amount_minor FROM receipt WHERE receipt_id = $receipt_a")"
expect "an auditor reconciles: original, reversals, net" "$i_total|$i_total|0" \
    "$(q "SELECT r.amount_minor, sum(v.amount_minor), r.amount_minor - sum(v.amount_minor)
          FROM receipt AS r JOIN receipt_reversal AS v USING (receipt_id) WHERE r.receipt_id = $receipt_a
          GROUP BY r.receipt_id")"
# A repeated reversal (same UUID) returns the stored result and writes nothing, even a changed copy.
fp=$(fingerprint)
apply "$pa" || fail "replay of a reversal raised an error" "$(cat "$tmp/err")"
apply "$(reversal "$rv" "$ua" OP-001 "$c_no" USD 1 "$(inv "$i_no" 1)")" || fail "changed replay of a reversal"
expect "a replayed reversal writes nothing" "$fp" "$(fingerprint)"
expect "a replayed reversal keeps its result" "$rv|posted|R-$rev_a|NULL" "$(result "$rv")"
reject_posting "$rv" 'ML001 bad_amount' || fail "reject_posting of a posted reversal raised an error"
expect "a posted reversal cannot also be rejected" "$rv|posted|R-$rev_a|NULL|0" \
    "$(result "$rv")|$(q "SELECT count(*) FROM ml_posting_rejection WHERE posting_uuid = '$rv'")"

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

# Two reversals of one posting at once, each within it, together over it: the second waits for the
# first (the original receipt is locked), then sees what the first took back, and is refused.
fresh
nu; ue=$id
apply "$(posting "$ue" OP-001 "$c_no" USD 5000 "$(inv "$i_no" 5000)")" || fail "payment to reverse twice at once" "$(cat "$tmp/err")"
nu; re1=$(reversal "$id" "$ue" OP-001 "$c_no" USD 3000 "$(inv "$i_no" 3000)")
nu; re2=$(reversal "$id" "$ue" OP-001 "$c_no" USD 3000 "$(inv "$i_no" 3000)")
my -N -B "$db" -e "SET autocommit = 0; CALL ml_apply_posting('$(lit "$re1")'); DO SLEEP(3); COMMIT;" >"$tmp/rv1.out" 2>&1 &
pid_rv1=$!
wait_for "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND DB = DATABASE() AND STATE = 'User sleep' AND INFO LIKE '%SLEEP(3)%'" 10 ||
    fail "the first reversal's session did not start"
t0=$(now_ms)
apply "$re2"
rc=$?
elapsed=$(($(now_ms) - t0))
wait "$pid_rv1" || fail "the first reversal's session failed" "$(cat "$tmp/rv1.out")"
expect "the second reversal waited for the first" 1 "$((elapsed > 1000))"
checks=$((checks + 1))
if [ "$rc" -eq 0 ] || ! grep -Eq "\\(45001\\).*ML001 reversal_exceeds_original" "$tmp/err"; then
    fail "a concurrent second reversal over the original is refused" "rc $rc: $(cat "$tmp/err")"
fi
expect "concurrent reversals: only the first gave money back" "$((i_total - 2000))|open|1" \
    "$(state "$i_id")|$(q "SELECT count(*) FROM receipt_reversal AS v JOIN receipt AS r USING (receipt_id) WHERE r.posting_uuid = '$ue'")"

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
    "$(q "SELECT t.amount_minor, b.account_number, t.currency, t.entry_date, t.memo, t.receipt_id
          FROM trust_entry AS t JOIN bank_account AS b USING (bank_account_id) WHERE t.matter_id = $tm_id AND t.amount_minor < 0")"
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
# The invoice changed since it was paid: a currency, a total lowered below what would come back, a void.
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
reject_posting "$urj" 'ML001 original_not_posted' || fail "reject_posting of a reversal"
fp=$(fingerprint)
apply "$prj" || fail "replay of a rejected reversal raised an error" "$(cat "$tmp/err")"
expect "a rejected reversal stays rejected and writes nothing" "$urj|rejected|NULL|ML001 original_not_posted|$fp" \
    "$(result "$urj")|$(fingerprint)"
# --- the agent's reads ---------------------------------------------------------------------------------
hw=$(stamp)
expect "changes_since pages up to the high-water mark" "3" \
    "$(q "CALL ml_changes_since($((hw - 5)), $((hw - 2)), 1000)" | wc -l | tr -d ' ')"
expect "changes_since stops at the page limit" "$((hw - 3)),$((hw - 2))," \
    "$(q "CALL ml_changes_since($((hw - 4)), $hw, 2)" | cut -d'|' -f1 | tr '\n' ',')"
expect "contract_version read" "4|$epoch" "$(q 'SELECT contract_version, db_epoch FROM ml_contract')"
expect "trust_balances page" "$(q 'SELECT COUNT(*) FROM ml_trust_balances WHERE source_id > 0')" \
    "$(q "CALL ml_trust_balances(0, 100000)" | wc -l | tr -d ' ')"
expect "every stamped ml_change row has one ml_changes row" "$(q 'SELECT COUNT(*) FROM ml_change WHERE change_id IS NOT NULL')" \
    "$(q 'SELECT COUNT(*) FROM ml_changes')"
expect "nothing is left unstamped" 0 "$(q 'SELECT COUNT(*) FROM ml_change WHERE change_id IS NULL')"
# Deleting acknowledged rows (docs/contract.md 6.5) never brings a number round again.
q "DELETE FROM ml_change WHERE change_id <= $hw"
expect "the high-water survives pruning" "$hw" "$(stamp)"
q "UPDATE invoice SET due_date = DATE_ADD(due_date, INTERVAL 1 DAY) WHERE invoice_id = $inv2_id"
expect "a change after pruning is numbered above it" "$((hw + 1))" "$(stamp)"

# --- change capture with concurrent sessions ------------------------------------------------------------
echo "contract_mariadb: concurrent sessions"
x=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id LIMIT 1 OFFSET 10")
y=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id LIMIT 1 OFFSET 11")
z=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id LIMIT 1 OFFSET 12")
w=$(q "SELECT source_id FROM ml_open_items ORDER BY source_id LIMIT 1 OFFSET 13")
h0=$(stamp)

# A call that waited for another session would take the rest of that session's sleep (3 or 4 s); the
# checks allow 2 s, room for a slow machine.

# (a) A long transaction: session A changes invoice X and stays open for 4 s.
my -N -B "$db" -e "SET innodb_lock_wait_timeout = 10; START TRANSACTION;
                   UPDATE invoice SET due_date = DATE_ADD(due_date, INTERVAL 1 DAY) WHERE invoice_id = $x;
                   DO SLEEP(4); COMMIT;" >"$tmp/a.out" 2>&1 &
pid_a=$!
# sleeping SECONDS: how many other sessions of this database sit in DO SLEEP(SECONDS).
sleeping() {
    q "SELECT COUNT(*) FROM information_schema.PROCESSLIST
       WHERE ID <> CONNECTION_ID() AND DB = DATABASE() AND STATE = 'User sleep' AND INFO LIKE '%SLEEP($1)%'"
}
wait_for "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND DB = DATABASE() AND STATE = 'User sleep' AND INFO LIKE '%SLEEP(4)%'" 10 ||
    fail "session A did not start"
checks=$((checks + 1))
expect "A's change row exists, uncommitted" 1 \
    "$(q "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;
          SELECT COUNT(*) FROM ml_change WHERE change_id IS NULL AND entity = 'invoice' AND entity_id = $x")"
# SKIP LOCKED really skips an uncommitted insert on this server: the locking read returns at once,
# without A's row.
t0=$(now_ms)
expect "FOR UPDATE SKIP LOCKED skips A's uncommitted row" 0 \
    "$(q "SET SESSION innodb_lock_wait_timeout = 2;
          START TRANSACTION;
          SELECT COUNT(*) FROM (SELECT seq_id FROM ml_change WHERE change_id IS NULL ORDER BY seq_id LIMIT 100000
                                FOR UPDATE SKIP LOCKED) AS s;
          COMMIT;" 2>&1)"
expect "... without waiting" 1 "$(($(now_ms) - t0 < 2000))"
# Session B changes invoice Y and commits; the high-water returns at once, covers Y and not X.
t0=$(now_ms)
q "SET SESSION innodb_lock_wait_timeout = 2; UPDATE invoice SET due_date = DATE_ADD(due_date, INTERVAL 1 DAY) WHERE invoice_id = $y" ||
    fail "B's update failed"
h1=$(stamp)
elapsed=$(($(now_ms) - t0))
expect "B's write and the high-water do not wait for A" 1 "$((elapsed < 2000))"
expect "A is still open at that point" 1 "$(sleeping 4)"
expect "the high-water covers Y" 1 \
    "$(q "SELECT COUNT(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $y AND change_id > $h0 AND change_id <= $h1")"
expect "the high-water does not cover X" 0 \
    "$(q "SELECT COUNT(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $x AND change_id IS NOT NULL AND change_id > $h0")"
expect "changes_since(h0, h1) is Y alone" "$y" "$(q "CALL ml_changes_since($h0, $h1, 1000)" | cut -d'|' -f4 | tr '\n' ' ' | sed 's/ $//')"

# An agent transaction that stamped and has not committed yet (G) holds its rows: a writer (C) is not
# held up by it, and a second stamper returns at once with what is committed.
q "UPDATE invoice SET due_date = DATE_ADD(due_date, INTERVAL 1 DAY) WHERE invoice_id = $z"
my -N -B "$db" -e "SET autocommit = 0; CALL ml_change_high_water(); DO SLEEP(3); COMMIT;" >"$tmp/g.out" 2>&1 &
pid_g=$!
wait_for "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND DB = DATABASE() AND STATE = 'User sleep' AND INFO LIKE '%SLEEP(3)%'" 10 ||
    fail "session G did not start"
t0=$(now_ms)
q "SET SESSION innodb_lock_wait_timeout = 5; UPDATE invoice SET due_date = DATE_ADD(due_date, INTERVAL 1 DAY) WHERE invoice_id = $w" ||
    fail "C's update failed"
expect "a writer is not held up by an open stamping transaction" 1 "$(($(now_ms) - t0 < 2000))"
t0=$(now_ms)
expect "a second stamper returns what is committed" "$h1" "$(q "SET SESSION innodb_lock_wait_timeout = 5; CALL ml_change_high_water()")"
expect "... without waiting" 1 "$(($(now_ms) - t0 < 2000))"

wait "$pid_a" || fail "session A failed" "$(cat "$tmp/a.out")"
wait "$pid_g" || fail "session G failed" "$(cat "$tmp/g.out")"
g=$(tail -1 "$tmp/g.out")
expect "G stamped Z" 1 \
    "$(q "SELECT COUNT(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $z AND change_id > $h1 AND change_id <= $g")"
h2=$(stamp)
expect "after A commits, X is stamped above the earlier high-water" 1 \
    "$(q "SELECT COUNT(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $x AND change_id > $h1 AND change_id <= $h2")"
expect "changes_since(h1, h2) returns X" 1 \
    "$(q "CALL ml_changes_since($h1, $h2, 1000)" | awk -F'|' -v x="$x" '$4 == x' | wc -l | tr -d ' ')"
expect "this pass numbered X, Y, Z and W once each, and nothing is left" "$(printf '%s\n' "$x" "$y" "$z" "$w" | sort -n | tr '\n' ' ')0" \
    "$(q "SELECT entity_id FROM ml_change WHERE change_id > $h0 ORDER BY entity_id" | tr '\n' ' ')$(q 'SELECT COUNT(*) FROM ml_change WHERE change_id IS NULL')"

# (b) 1000 invoices changed by one statement: exactly 1000 new changes, each invoice once, in pages.
h0=$(stamp)
q "UPDATE invoice SET due_date = DATE_ADD(due_date, INTERVAL 1 DAY) ORDER BY invoice_id LIMIT 1000"
h1=$(stamp)
expect "1000 rows changed: the high-water moves by 1000" "$((h0 + 1000))" "$h1"
: >"$tmp/pages.txt"
since=$h0
pages=0
while :; do
    q "CALL ml_changes_since($since, $h1, 300)" >"$tmp/page.txt"
    rows=$(wc -l <"$tmp/page.txt" | tr -d ' ')
    [ "$rows" -gt 0 ] || break
    cat "$tmp/page.txt" >>"$tmp/pages.txt"
    since=$(tail -1 "$tmp/page.txt" | cut -d'|' -f1)
    pages=$((pages + 1))
    [ "$rows" -eq 300 ] && [ $pages -lt 10 ] || break
done
expect "1000 changes in 4 pages of at most 300" "4|1000|1000|1000" \
    "$pages|$(wc -l <"$tmp/pages.txt" | tr -d ' ')|$(cut -d'|' -f1 "$tmp/pages.txt" | sort -u | wc -l | tr -d ' ')|$(cut -d'|' -f4 "$tmp/pages.txt" | sort -u | wc -l | tr -d ' ')"
expect "change ids strictly increase across pages" "$(cut -d'|' -f1 "$tmp/pages.txt" | sort -n | tr '\n' ',')" \
    "$(cut -d'|' -f1 "$tmp/pages.txt" | tr '\n' ',')"
expect "the 1000 are the first 1000 invoices" "$(q "SELECT GROUP_CONCAT(invoice_id ORDER BY invoice_id) FROM (SELECT invoice_id FROM invoice ORDER BY invoice_id LIMIT 1000) AS f")" \
    "$(cut -d'|' -f4 "$tmp/pages.txt" | sort -n | tr '\n' ',' | sed 's/,$//')"
expect "open ones are upserts, the others removes" \
    "$(q "SELECT CONCAT_WS('|', SUM(status = 'open' AND balance_minor > 0), SUM(NOT (status = 'open' AND balance_minor > 0)))
          FROM (SELECT status, balance_minor FROM invoice ORDER BY invoice_id LIMIT 1000) AS f")" \
    "$(awk -F'|' '$2 == "upsert" { u++ } $2 == "remove" { r++ } END { print u + 0 "|" r + 0 }' "$tmp/pages.txt")"

# --- the search index (version 4, docs/contract.md 5.8) -----------------------------------------------
keys_exact() {
    q "SELECT CONCAT_WS('|',
        (SELECT COUNT(*) FROM client) - (SELECT COUNT(*) FROM ml_search_clients WHERE BINARY client_number_key = BINARY LOWER(client_number)),
        (SELECT COUNT(*) FROM matter) - (SELECT COUNT(*) FROM ml_search_matters WHERE BINARY matter_number_key = BINARY LOWER(matter_number)),
        (SELECT COUNT(*) FROM invoice) - (SELECT COUNT(*) FROM ml_search_invoices WHERE BINARY invoice_number_key = BINARY LOWER(invoice_number)),
        (SELECT COUNT(*) FROM ml_search_client) - (SELECT COUNT(*) FROM client),
        (SELECT COUNT(*) FROM ml_search_invoice) - (SELECT COUNT(*) FROM invoice))"
}
expect "search keys: one per client, matter and invoice, each LOWER() of its number" "0|0|0|0|0" "$(keys_exact)"
# The triggers keep them exact through inserts, renumbering, a changed id and deletes.
q "INSERT INTO client (client_number, name) VALUES ('ÄB-Xy', 'Key Test');
   INSERT INTO matter (matter_number, client_id, description) SELECT 'MÄ-1', client_id, 'k' FROM client WHERE client_number = 'ÄB-Xy';
   INSERT INTO invoice (invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor)
       SELECT 'INV-ÄÖ', matter_id, '2026-01-05', 'USD', 100, 100 FROM matter WHERE matter_number = 'MÄ-1';
   UPDATE client SET client_number = 'ÖB-Z' WHERE client_number = 'ÄB-Xy';
   UPDATE invoice SET invoice_id = invoice_id + 1000000, invoice_number = 'INV-Ü' WHERE invoice_number = 'INV-ÄÖ';" >/dev/null
expect "keys after inserts, renumbering and a new id" "öb-z|mä-1|inv-ü" \
    "$(q "SELECT CONCAT_WS('|', (SELECT client_number_key FROM ml_search_clients WHERE client_number = 'ÖB-Z'),
                                (SELECT matter_number_key FROM ml_search_matters WHERE matter_number = 'MÄ-1'),
                                (SELECT invoice_number_key FROM ml_search_invoices WHERE invoice_number = 'INV-Ü'))")"
expect "keys still exact" "0|0|0|0|0" "$(keys_exact)"
q "DELETE FROM invoice WHERE invoice_number = 'INV-Ü'; DELETE FROM matter WHERE matter_number = 'MÄ-1';
   DELETE FROM client WHERE client_number = 'ÖB-Z';" >/dev/null
expect "keys after deletes" "0|0|0|0|0" "$(keys_exact)"
# A lost or stale key is repaired by running contract.sql again.
q "DELETE FROM ml_search_invoice ORDER BY invoice_id LIMIT 3; UPDATE ml_search_client SET client_number_key = 'stale' ORDER BY client_id LIMIT 2;
   INSERT INTO ml_search_matter (matter_id, matter_number_key) VALUES (999999999, 'left-over');" >/dev/null
my "$db" <"$root/sql/mariadb/contract.sql" >"$tmp/out" 2>&1 || fail "contract.sql re-run to repair" "$(cat "$tmp/out")"
expect "a re-run repairs the keys" "0|0|0|0|0|0" "$(keys_exact)|$(q 'SELECT COUNT(*) FROM ml_search_matter WHERE matter_id = 999999999')"
# Exact and prefix number patterns are ranges of the key's index.
plan=$(q "EXPLAIN SELECT source_id FROM ml_search_invoices WHERE invoice_number_key LIKE LOWER('INV-00001%') ESCAPE '!'")
case $plan in *ml_search_invoice_number*) checks=$((checks + 1)) ;;
    *) fail "an invoice number prefix does not use ml_search_invoice_number" "$plan" ;; esac

# ----------------------------------------------------------------------------------------------------
if [ "$failures" -ne 0 ]; then
    printf 'contract_mariadb: %d of %d checks failed\n' "$failures" "$checks"
    exit 1
fi
printf 'contract_mariadb: all %d checks passed\n' "$checks"
