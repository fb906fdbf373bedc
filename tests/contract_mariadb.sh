#!/bin/sh
# Tests the MariaDB SQL contract (sql/mariadb/contract.sql) against the reference schema and sample data,
# with nothing but the mariadb client: the same checks as tests/contract_sqlite.sh (install and re-run,
# the item procedures, exactly-once postings, every rejection code, change capture), plus change capture
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
        mariadb -h127.0.0.1 -P"$port" -uroot -e "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1
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
                             (SELECT SUM(invoice_id * (balance_minor + 1) * (1 + (status = 'paid'))) FROM invoice))"
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
expect "one ml_contract row, version 1" "1|1" "$(q 'SELECT COUNT(*), MAX(contract_version) FROM ml_contract')"
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
q "UPDATE ml_contract SET contract_version = 2"
my "$db" <"$root/sql/mariadb/schema.sql" || fail "schema.sql re-run"
my "$db" <"$root/sql/mariadb/contract.sql" || fail "contract.sql re-run"
my "$db" <"$root/sql/mariadb/contract.sql" || fail "contract.sql second re-run"
expect "re-run keeps db_epoch" "$epoch" "$(q 'SELECT db_epoch FROM ml_contract')"
expect "re-run sets contract_version 1" "1|1" "$(q 'SELECT COUNT(*), contract_version FROM ml_contract')"
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
# reject CODE JSON: the apply must fail with "ML001 CODE" (SQLSTATE 45001) and leave everything as it was.
reject() {
    checks=$((checks + 1))
    before=$(fingerprint)
    if apply "$2"; then
        fail "ML001 $1: posting was accepted"
    elif ! grep -Eq "\\(45001\\).*ML001 $1([^a-z_]|\$)" "$tmp/err"; then
        fail "ML001 $1: wrong error" "$(cat "$tmp/err")"
    fi
    expect "ML001 $1 writes nothing" "$before" "$(fingerprint)"
}
ok_lines="$(inv "$inv_no" 100)"
# Sets $id to a fresh posting UUID (a function called as $(...) could not advance the counter).
nu() { n=$((n + 1)); id=$(uuid $n); }

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

# --- the agent's reads ---------------------------------------------------------------------------------
hw=$(stamp)
expect "changes_since pages up to the high-water mark" "3" \
    "$(q "CALL ml_changes_since($((hw - 5)), $((hw - 2)), 1000)" | wc -l | tr -d ' ')"
expect "changes_since stops at the page limit" "$((hw - 3)),$((hw - 2))," \
    "$(q "CALL ml_changes_since($((hw - 4)), $hw, 2)" | cut -d'|' -f1 | tr '\n' ',')"
expect "contract_version read" "1|$epoch" "$(q 'SELECT contract_version, db_epoch FROM ml_contract')"
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

# ----------------------------------------------------------------------------------------------------
if [ "$failures" -ne 0 ]; then
    printf 'contract_mariadb: %d of %d checks failed\n' "$failures" "$checks"
    exit 1
fi
printf 'contract_mariadb: all %d checks passed\n' "$checks"
