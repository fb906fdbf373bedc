#!/bin/sh
# Tests the PostgreSQL SQL contract (sql/postgresql/contract.sql) against the reference schema and sample
# data, through psql: the checks of tests/contract_sqlite.sh (item shapes, exactly-once postings, every
# rejection code, change capture, reversing postings, the upgrade from version 1), plus what concurrency adds: a late commit is never missed, one
# statement's thousand changes are each stamped once, the stamper never blocks or is blocked by a
# writer, concurrent deliveries of one posting land once, and the privileges work as documented; and
# the set-based batch (ml_apply_postings, ml_posting_results) against one-by-one application.
#
#   tests/contract_postgresql.sh [REPO_ROOT]      (default: the directory above this script)
#
# Uses the servers of tests/servers.sh in $ML_SERVERS_DIR; when that is unset it starts its own in a
# temporary directory and stops them on exit. It creates the database contract_pg_<pid> (and copies of
# it) and two roles, and drops them at the end. Exit status 0 when every check passes, 1 otherwise (each failed check is
# printed), 2 when it cannot run.

set -u

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
sql=$root/sql/postgresql
[ -f "$sql/contract.sql" ] || { echo "contract_postgresql: no sql/postgresql/contract.sql under $root" >&2; exit 2; }
command -v psql >/dev/null 2>&1 || { echo "contract_postgresql: psql not found" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
db=contract_pg_$$
agent_role=ml_test_agent_$$
firm_role=ml_test_firm_$$
own_servers=
servers=${ML_SERVERS_DIR:-}

cleanup() {
    # Background sessions first: the database cannot be dropped while they hold it.
    for pidfile in "$tmp"/*.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    done
    if [ -n "${ML_PG_PORT:-}" ]; then
        psql -X -q -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d postgres \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${db}_e WITH (FORCE)" \
            -c "DROP DATABASE IF EXISTS ${db}_b WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${db}_u WITH (FORCE)" \
            -c "DROP ROLE IF EXISTS $agent_role" -c "DROP ROLE IF EXISTS $firm_role" >/dev/null 2>&1
    fi
    if [ -n "$own_servers" ]; then
        sh "$root/tests/servers.sh" stop "$servers" >/dev/null 2>&1
        rm -rf "$servers"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if [ -z "$servers" ]; then
    # A directory of its own: the servers run as their service users, who cannot enter $tmp (mode 700).
    servers=$(mktemp -d) || exit 2
    own_servers=1
    sh "$root/tests/servers.sh" start "$servers" >"$tmp/servers.out" 2>&1 ||
        { cat "$tmp/servers.out"; echo "contract_postgresql: could not start the servers" >&2; exit 2; }
fi
[ -f "$servers/servers.env" ] || { echo "contract_postgresql: no $servers/servers.env" >&2; exit 2; }
. "$servers/servers.env"

# The checks, postings and rejections every dialect's script shares; a rejection's error
# starts with this (the driver's own words before ML001).
ml001_error='ERROR: +ML001: '
. "$root/tests/lib_contract.sh"

# check NAME COMMAND...: the command must succeed.
check() {
    checks=$((checks + 1))
    name=$1
    shift
    "$@" || fail "$name"
}

psql_db() {
    psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$ML_PG_PORT" "$@"
}

# Runs one SQL string (one implicit transaction) as postgres; prints rows as a|b|c.
q() {
    psql_db -U postgres -d "$db" -c "$1"
}

# Runs SQL from stdin as postgres, with psql variables: qv -v name=value ... <<EOF
qv() {
    psql_db -U postgres -d "$db" "$@"
}

high_water() {
    q 'SELECT ml_change_high_water()'
}

# Everything an apply may write, in one line: a rejected or replayed posting must leave it unchanged.
fingerprint() {
    q "SELECT (SELECT count(*) FROM receipt) || '/' || (SELECT count(*) FROM receipt_allocation) || '/'
        || (SELECT count(*) FROM trust_entry) || '/' || (SELECT count(*) FROM ml_change) || '/'
        || (SELECT count(*) FROM ml_posting_rejection) || '/'
        || (SELECT count(*) FROM receipt_reversal) || '/' || (SELECT count(*) FROM receipt_reversal_line) || '/'
        || (SELECT sum(invoice_id * (balance_minor + 1) * (1 + (status = 'paid')::int)) FROM invoice)"
}

# How far the search index (ml_search_item, docs/contract.md 5.8) is from what it must hold, one row per
# open invoice with its matter, client, and their description and name in lower case:
# "<rows too many or wrong>/<rows missing or wrong>/<rows>". Exact is 0/0/N.
search_index_drift() {
    psql_db -U postgres -d "${1:-$db}" -c "
        WITH truth AS (SELECT i.invoice_id AS source_id, m.client_id, m.matter_id, lower(c.name),
                              lower(m.description)
                       FROM invoice AS i
                       JOIN matter AS m ON m.matter_id = i.matter_id JOIN client AS c ON c.client_id = m.client_id
                       WHERE i.status = 'open' AND i.balance_minor > 0),
             held AS (SELECT source_id, client_id, matter_id, client_name_lower, matter_description_lower
                      FROM ml_search_item)
        SELECT (SELECT count(*) FROM (SELECT * FROM held EXCEPT SELECT * FROM truth) AS extra) || '/'
            || (SELECT count(*) FROM (SELECT * FROM truth EXCEPT SELECT * FROM held) AS missing) || '/'
            || (SELECT count(*) FROM ml_search_item)"
}

# expect_search_index NAME [DATABASE]: the search index is exact.
expect_search_index() {
    drift=$(search_index_drift "${2:-}")
    expect "search index exact: $1" "0/0" "${drift%/*}"
}

# apply JSON [ROLE]: one transaction, as the agent does it; stderr goes to $tmp/err. VERBOSITY verbose
# puts the SQLSTATE in the message ("ERROR:  ML001: ML001 invoice_not_open").
apply() {
    printf '%s\n' '\set VERBOSITY verbose' 'BEGIN;' "CALL ml_apply_posting(:'posting');" 'COMMIT;' |
        psql_db -U "${2:-postgres}" -d "$db" -v posting="$1" >/dev/null 2>"$tmp/err"
}

# reject_posting UUID REASON [ROLE]
reject_posting() {
    printf '%s\n' 'BEGIN;' "CALL ml_reject_posting(:'uuid', :'reason');" 'COMMIT;' |
        psql_db -U "${3:-postgres}" -d "$db" -v uuid="$1" -v reason="$2" >/dev/null
}

result() {
    q "SELECT posting_uuid, status, coalesce(receipt_id, 'null'), coalesce(reason, 'null')
       FROM ml_posting_result('$1')"
}

# The newest change row for an item, as op|balance_minor|status (stamping first, as the agent does).
latest() {
    high_water >/dev/null
    q "SELECT op || '|' || coalesce(balance_minor::text, 'null') || '|' || coalesce(status, 'null') FROM ml_changes
       WHERE item_kind = '$1' AND source_id = $2 ORDER BY change_id DESC LIMIT 1"
}

# Result columns and types of a query, as "name type, name type, ..." (psql \gdesc; nothing is run).
describe() {
    printf '%s \\gdesc\n' "$1" | qv | tr '|' ' ' | paste -s -d, - | sed 's/,/, /g'
}

# Background sessions fed through a fifo, to hold a transaction open while others run.
# open_session NAME FD: starts psql reading NAME's fifo; the caller then runs "exec FD>fifo".
open_session() {
    mkfifo "$tmp/$1.fifo"
    PGAPPNAME=ml_test_$1_$$ psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$db" \
        <"$tmp/$1.fifo" >"$tmp/$1.out" 2>&1 &
    echo $! >"$tmp/$1.pid"
}

# wait_state NAME STATE|lock: until the session is in that pg_stat_activity state (or waits on a lock).
wait_state() {
    if [ "$2" = lock ]; then
        cond="wait_event_type = 'Lock'"
    else
        cond="state = '$2'"
    fi
    tries=0
    while [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ml_test_$1_$$' AND $cond")" != 1 ]; do
        tries=$((tries + 1))
        [ $tries -lt 200 ] || { fail "session $1 never reached '$2'" "$(cat "$tmp/$1.out")"; return 1; }
        sleep 0.05
    done
}

# close_session NAME: waits for the session's psql to end; fails the check if it failed.
close_session() {
    pid=$(cat "$tmp/$1.pid")
    wait "$pid"
    rc=$?
    rm -f "$tmp/$1.pid"
    checks=$((checks + 1))
    [ $rc -eq 0 ] || fail "session $1 failed" "$(cat "$tmp/$1.out")"
}

items='item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name, matter_number, matter_description, currency, total_minor, balance_minor, status'
item_types='item_kind text, source_id bigint, invoice_number text, invoice_date text, due_date text, client_number text, client_name text, matter_number text, matter_description text, currency text, total_minor bigint, balance_minor bigint, status text'

# install [-v clients=N -v invoices=M]: the documented installation, all three scripts.
install() {
    psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 -q "$@" \
        -f "$sql/schema.sql" -f "$sql/contract.sql" -f "$sql/sample.sql"
}

# ----------------------------------------------------------------------------------------------------
echo "contract_postgresql: building a sample database ($db on port $ML_PG_PORT)"
sh "$root/tests/servers.sh" createdb "$servers" postgresql "$db" >/dev/null 2>"$tmp/out" ||
    { cat "$tmp/out"; echo "FAIL: createdb"; exit 1; }
install -v clients=40 -v invoices=1500 >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "FAIL: installing"; exit 1; }
expect "installation prints nothing" "" "$(cat "$tmp/out")"
expect_search_index "after the install"
expect "search index: one row per open invoice" "$(q "SELECT count(*) FROM ml_open_items")" \
    "$(search_index_drift | cut -d/ -f3)"

# --- contract version, epoch, idempotent install ----------------------------------------------------
expect "one ml_contract row, version 4" "1|4" "$(q 'SELECT count(*), max(contract_version) FROM ml_contract')"
epoch=$(q 'SELECT db_epoch FROM ml_contract')
expect "db_epoch is a lower-case 8-4-4-4-12 UUID" t \
    "$(q "SELECT '$epoch' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\$'")"
if q "INSERT INTO ml_contract VALUES (1, '$epoch', now())" 2>/dev/null; then
    fail "ml_contract accepted a second row"
fi
checks=$((checks + 1))

reject_posting "$(uuid 999)" 'ML001 bad_amount'
high_water >/dev/null
before=$(q 'SELECT count(*), count(change_id), max(change_id) FROM ml_change')
q "UPDATE ml_contract SET contract_version = 1"
psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 -q \
    -f "$sql/schema.sql" -f "$sql/contract.sql" >"$tmp/out" 2>&1 || fail "schema.sql and contract.sql re-run" "$(cat "$tmp/out")"
install >"$tmp/out" 2>&1 || fail "second re-run of all three scripts" "$(cat "$tmp/out")"
expect "re-run over another version keeps db_epoch" "$epoch" "$(q 'SELECT db_epoch FROM ml_contract')"
expect "re-run over version 1 sets contract_version 4" "1|4" "$(q 'SELECT count(*), max(contract_version) FROM ml_contract')"
expect "re-run keeps ml_change rows and stamps" "$before" "$(q 'SELECT count(*), count(change_id), max(change_id) FROM ml_change')"
expect "re-run keeps ml_posting_rejection rows" 1 "$(q 'SELECT count(*) FROM ml_posting_rejection')"
expect "sample.sql re-run says it added nothing" "sample.sql: the database already has data; nothing inserted" \
    "$(cat "$tmp/out")"
expect "sample.sql re-run adds no data" "1500" "$(q 'SELECT count(*) FROM invoice')"
q "DELETE FROM ml_posting_rejection" >/dev/null

# Bad parameters stop the installation before sample.sql inserts anything (an empty database of its own).
sh "$root/tests/servers.sh" createdb "$servers" postgresql "${db}_e" >/dev/null 2>&1
for bad in 'clients=0' 'clients=1000001' 'invoices=-1' 'clients=abc'; do
    checks=$((checks + 1))
    if psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "${db}_e" -v ON_ERROR_STOP=1 -q -v "$bad" \
        -f "$sql/schema.sql" -f "$sql/contract.sql" -f "$sql/sample.sql" >"$tmp/out" 2>&1; then
        fail "sample.sql accepted $bad"
    fi
done
expect "a refused sample.sql inserts nothing" "0|0" \
    "$(psql_db -U postgres -d "${db}_e" -c 'SELECT (SELECT count(*) FROM client), (SELECT count(*) FROM bank_account)')"
psql_db -U postgres -d postgres -c "DROP DATABASE ${db}_e" >/dev/null

# --- upgrade from contract version 1 -----------------------------------------------------------------
# A database installed with version 1's scripts (from the last commit that had them), with a posting
# applied, becomes version 4 when this release's contract.sql runs over it, after schema.sql: epoch,
# change rows and posting results stay, reversals work, and the search index is built. contract.sql alone refuses to install
# while the reversal tables are missing, and changes nothing.
v1=9450a9b
if command -v git >/dev/null 2>&1 && git -C "$root" cat-file -e "$v1:sql/postgresql/contract.sql" 2>/dev/null; then
    qu() {
        psql_db -U postgres -d "${db}_u" -c "$1"
    }
    sh "$root/tests/servers.sh" createdb "$servers" postgresql "${db}_u" >/dev/null 2>&1
    git -C "$root" show "$v1:sql/postgresql/schema.sql" >"$tmp/v1_schema.sql"
    git -C "$root" show "$v1:sql/postgresql/contract.sql" >"$tmp/v1_contract.sql"
    psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "${db}_u" -v ON_ERROR_STOP=1 -q \
        -f "$tmp/v1_schema.sql" -f "$tmp/v1_contract.sql" >"$tmp/out" 2>&1 || fail "installing contract version 1" "$(cat "$tmp/out")"
    qu "INSERT INTO client (client_number, name) VALUES ('C-1', 'Old Client');
        INSERT INTO matter (matter_number, client_id, description) VALUES ('M-1', 1, 'Old matter');
        INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('OP-001', 'Operating', 'OPERATING', 'USD');
        INSERT INTO invoice (invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor)
        VALUES ('INV-1', 1, '2026-01-05', 'USD', 10000, 10000);
        CALL ml_apply_posting('$(posting "$(uuid 901)" OP-001 C-1 USD 10000 "$(inv INV-1 10000)")');
        SELECT ml_change_high_water();" >/dev/null
    expect "version 1 installed and posting" "1|paid" "$(qu "SELECT contract_version, (SELECT status FROM invoice) FROM ml_contract")"
    old_epoch=$(qu 'SELECT db_epoch FROM ml_contract')
    old_changes=$(qu "SELECT count(*) || '/' || max(change_id) FROM ml_change")
    checks=$((checks + 1))
    if psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "${db}_u" -v ON_ERROR_STOP=1 -q -f "$sql/contract.sql" \
        >"$tmp/out" 2>&1; then
        fail "contract.sql installed without receipt_reversal"
    elif ! grep -q 'receipt_reversal and receipt_reversal_line are missing: run sql/postgresql/schema.sql first' "$tmp/out"; then
        fail "contract.sql without receipt_reversal: wrong message" "$(cat "$tmp/out")"
    fi
    expect "a refused install changes nothing" "1|0" \
        "$(qu "SELECT contract_version, (SELECT count(*) FROM pg_views WHERE viewname = 'ml_posting_result'
               AND definition LIKE '%receipt_reversal%') FROM ml_contract")"
    psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "${db}_u" -v ON_ERROR_STOP=1 -q \
        -f "$sql/schema.sql" -f "$sql/contract.sql" >"$tmp/out" 2>&1 || fail "upgrading to version 4" "$(cat "$tmp/out")"
    expect "upgrading prints nothing" "" "$(cat "$tmp/out")"
    expect "upgraded: version 4, same epoch, same change rows" "4|$old_epoch|$old_changes" \
        "$(qu "SELECT contract_version, db_epoch, (SELECT count(*) || '/' || max(change_id) FROM ml_change) FROM ml_contract")"
    expect_search_index "after the upgrade" "${db}_u"
    expect "upgraded: the version 1 posting's result stands" "$(uuid 901)|posted|1|null" \
        "$(qu "SELECT posting_uuid, status, receipt_id, coalesce(reason, 'null') FROM ml_posting_result('$(uuid 901)')")"
    qu "CALL ml_apply_posting('$(reversal "$(uuid 902)" "$(uuid 901)" OP-001 C-1 USD 2500 "$(inv INV-1 2500)")')" \
        >/dev/null 2>"$tmp/err" || fail "upgraded: a reversal of a version 1 posting" "$(cat "$tmp/err")"
    expect "upgraded: the reversal reopened the invoice" "2500|open|$(uuid 902)|posted|R-1" \
        "$(qu "SELECT balance_minor, status, (SELECT posting_uuid || '|' || status || '|' || receipt_id
               FROM ml_posting_result('$(uuid 902)')) FROM invoice")"
    expect "upgraded: the reopened invoice is in the search index" "1" \
        "$(qu "SELECT count(*) FROM ml_search_item AS s JOIN invoice AS i ON i.invoice_id = s.source_id")"
    psql_db -U postgres -d postgres -c "DROP DATABASE ${db}_u" >/dev/null
else
    echo "contract_postgresql: no git history with contract version 1 ($v1); upgrade checks skipped"
fi

# --- interface: names, column order and types, inlining ---------------------------------------------
expect "ml_open_items columns" "$item_types" "$(describe 'SELECT * FROM ml_open_items(0, 1)')"
expect "ml_trust_balances columns" "$item_types" "$(describe 'SELECT * FROM ml_trust_balances(0, 1)')"
expect "ml_changes_since columns" "change_id bigint, op text, $item_types" \
    "$(describe 'SELECT * FROM ml_changes_since(0, 1, 1)')"
expect "ml_posting_result columns" "posting_uuid text, status text, receipt_id text, reason text" \
    "$(describe "SELECT * FROM ml_posting_result('x')")"
expect "ml_posting_results columns" "posting_uuid text, status text, receipt_id text, reason text" \
    "$(describe "SELECT * FROM ml_posting_results('[]')")"
expect "ml_change_high_water column" "ml_change_high_water bigint" "$(describe 'SELECT ml_change_high_water()')"
expect "contract_version columns" "contract_version integer, db_epoch text" \
    "$(describe 'SELECT contract_version, db_epoch FROM ml_contract')"
expect "ml_contract columns" "contract_version integer, db_epoch text, installed_at timestamp with time zone" \
    "$(describe 'SELECT * FROM ml_contract')"
expect "views have the item columns (ml_changes, ml_open_items, ml_trust_balances)" "change_id, op, $items|$items|$items" \
    "$(q "SELECT string_agg(cols, '|' ORDER BY v) FROM (SELECT c.table_name AS v, string_agg(c.column_name, ', '
          ORDER BY c.ordinal_position) AS cols FROM information_schema.columns AS c WHERE c.table_schema = current_schema()
          AND c.table_name IN ('ml_open_items', 'ml_trust_balances', 'ml_changes') GROUP BY c.table_name) AS s")"
expect "the write operations are procedures" "ml_apply_posting(IN posting text)|ml_apply_postings(IN postings text)|ml_reject_posting(IN rejected_uuid text, IN rejection_reason text)" \
    "$(q "SELECT string_agg(proname || '(' || pg_get_function_arguments(oid) || ')', '|' ORDER BY proname)
          FROM pg_proc WHERE prokind = 'p' AND proname LIKE 'ml\\_%'")"
# Inlined functions stream through a cursor; a "Function Scan" would build the whole result first.
for call in 'ml_open_items(0, 5000)' 'ml_trust_balances(0, 5000)' 'ml_changes_since(0, 100, 5000)' "ml_posting_result('x')" \
            "ml_posting_results('[\"x\"]')"; do
    checks=$((checks + 1))
    if q "EXPLAIN SELECT * FROM $call" | grep -q 'Function Scan'; then
        fail "$call is not inlined" "$(q "EXPLAIN SELECT * FROM $call")"
    fi
done

# --- sample data and the item functions --------------------------------------------------------------
expect "sample has open, partly paid and paid invoices" "t|t|t" \
    "$(q "SELECT bool_or(status = 'open' AND balance_minor = total_minor),
                 bool_or(status = 'open' AND balance_minor BETWEEN 1 AND total_minor - 1),
                 bool_or(status = 'paid' AND balance_minor = 0) FROM invoice")"
expect "open items = open invoices with a balance" \
    "$(q "SELECT count(*) FROM invoice WHERE status = 'open' AND balance_minor > 0")" \
    "$(q 'SELECT count(*) FROM ml_open_items(0, 1000000)')"
expect "open items are all open, positive, kind invoice" 0 \
    "$(q "SELECT count(*) FROM ml_open_items(0, 1000000) WHERE status <> 'open' OR balance_minor <= 0
          OR item_kind <> 'invoice' OR client_number IS NULL OR matter_number IS NULL")"
expect "open items carry dates as YYYY-MM-DD text" 0 \
    "$(q "SELECT count(*) FROM ml_open_items(0, 1000000) WHERE invoice_date !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}\$'
          OR due_date !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}\$'")"
first_open=$(q 'SELECT min(source_id) FROM ml_open_items(0, 1000000)')
expect "dates do not follow the session's DateStyle" \
    "$(q "SELECT to_char(invoice_date, 'YYYY-MM-DD') FROM invoice WHERE invoice_id = $first_open")" \
    "$(printf '%s\n' "SET DateStyle = 'SQL, DMY';" "SELECT invoice_date FROM ml_open_items($((first_open - 1)), 1);" | qv)"
expect "one trust row per matter with entries" \
    "$(q 'SELECT count(DISTINCT matter_id), sum(amount_minor) FROM trust_entry')" \
    "$(q 'SELECT count(*), sum(balance_minor) FROM ml_trust_balances(0, 1000000)')"
expect "trust rows are shaped as trust" 0 \
    "$(q "SELECT count(*) FROM ml_trust_balances(0, 1000000) WHERE item_kind <> 'trust' OR status <> 'trust'
          OR invoice_number IS NOT NULL OR invoice_date IS NOT NULL OR total_minor IS NOT NULL OR currency <> 'USD'")"
expect "a zero trust balance is still an item" t \
    "$(q "SELECT bool_or(balance_minor = 0) FROM ml_trust_balances(0, 1000000)")"
expect "paging by source_id returns the next page" \
    "$(q "SELECT string_agg(source_id::text, ',') FROM (SELECT source_id FROM ml_open_items(0, 1000000) LIMIT 3 OFFSET 5) AS s")" \
    "$(q "SELECT string_agg(source_id::text, ',') FROM ml_open_items(
          (SELECT source_id FROM ml_open_items(0, 1000000) LIMIT 1 OFFSET 4), 3)")"
expect "the sample's change rows are all stamped, one per invoice and trust entry" "0|1500|$(q 'SELECT count(*) FROM trust_entry')" \
    "$(q "SELECT count(*) FILTER (WHERE change_id IS NULL), count(*) FILTER (WHERE entity = 'invoice'),
                 count(*) FILTER (WHERE entity = 'trust') FROM ml_change")"

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
             WHERE c.client_number = '$client' AND i.status = 'paid' ORDER BY i.invoice_id LIMIT 1")
other=$(q "SELECT i.invoice_number || '|' || m.matter_number
           FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
           WHERE c.client_number <> '$client' AND i.status = 'open' AND i.balance_minor > 0 ORDER BY i.invoice_id LIMIT 1")
IFS='|' read -r other_inv other_matter <<EOF
$other
EOF

seq0=$(q 'SELECT max(seq_id) FROM ml_change')
u1=$(uuid 1)
p1=$(posting "$u1" OP-001 "$client" USD 25000 "$(inv "$inv_no" 10000),$(inv "$inv2_no" 15000)")
apply "$p1" || fail "apply posting 1" "$(cat "$tmp/err")"
receipt1=$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$u1'")
expect "posting 1 wrote one receipt" "1|25000|USD" \
    "$(q "SELECT count(*), sum(amount_minor), min(currency) FROM receipt WHERE posting_uuid = '$u1'")"
expect "posting 1 allocations sum to the amount, in the posting's order" "2|25000|$inv_id,$inv2_id" \
    "$(q "SELECT count(*), sum(amount_minor), string_agg(invoice_id::text, ',' ORDER BY receipt_allocation_id)
          FROM receipt_allocation WHERE receipt_id = $receipt1")"
expect "posting 1 receipt fields" "2026-11-22|Pat Payer|pat@example.com|Thank you|txn_$u1|OP-001|$client" \
    "$(q "SELECT to_char(r.received_on, 'YYYY-MM-DD'), r.payer_name, r.payer_email, r.ar_message, r.processor_txn,
                 b.account_number, c.client_number FROM receipt AS r JOIN bank_account AS b USING (bank_account_id)
          JOIN client AS c USING (client_id) WHERE r.receipt_id = $receipt1")"
expect "invoice balance decreased" "$((inv_bal - 10000))|open" \
    "$(q "SELECT balance_minor, status FROM invoice WHERE invoice_id = $inv_id")"
expect "second invoice balance decreased" "$((inv2_bal - 15000))" \
    "$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $inv2_id")"
expect "ml_change rows for both invoices, not yet stamped" "2|0" \
    "$(q "SELECT count(DISTINCT entity_id), count(change_id) FROM ml_change WHERE seq_id > $seq0 AND entity = 'invoice'
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
reject_posting "$u1" 'ML001 bad_amount' || fail "reject_posting of a posted uuid raised an error"
q "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES ('$u1', 'ML001 bad_amount')
   ON CONFLICT (posting_uuid) DO NOTHING" >/dev/null
expect "a posted uuid cannot also be rejected" "$u1|posted|$receipt1|null" "$(result "$u1")"
expect "nothing was recorded as rejected" 0 "$(q "SELECT count(*) FROM ml_posting_rejection WHERE posting_uuid = '$u1'")"

# --- rejections --------------------------------------------------------------------------------------
q "INSERT INTO bank_account (account_number, name, account_type, currency)
   VALUES ('OP-CAD', 'Operating CAD', 'OPERATING', 'CAD')" >/dev/null
n=100
ok_lines="$(inv "$inv_no" 100)"
lines1001=$(i=0; while [ $i -lt 1001 ]; do [ $i -gt 0 ] && printf ','; inv "$inv_no" 1; i=$((i + 1)); done)

reject bad_posting 'not json'
reject bad_posting '[1,2]'
reject bad_posting '{"posting_uuid": 7}'
reject bad_posting ''
reject bad_posting "$(posting ABCDEF00-0000-4000-8000-000000000001 OP-001 "$client" USD 100 "$ok_lines")"
reject bad_posting "$(posting 00000000-0000-4000-8000-00000000001 OP-001 "$client" USD 100 "$ok_lines")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/2026-11-22/2026-02-30/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/2026-11-22/2026-1-22/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" usd 100 "$ok_lines")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 "$ok_lines" | sed 's/"Pat Payer"/17/')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 1001 "$lines1001")"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '"INV-1"')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"refund","amount_minor":100}')"
nu; reject bad_posting "$(posting "$id" OP-001 "$client" USD 100 '{"kind":"invoice","amount_minor":100}')"
nu; reject unknown_account "$(posting "$id" OP-999 "$client" USD 100 "$ok_lines")"
nu; reject client_not_found "$(posting "$id" OP-001 C-99999 USD 100 "$ok_lines")"
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
nu; reject matter_not_found "$(posting "$id" TR-001 "$client" USD 100 "$(trust M-999999 100)")"
nu; reject duplicate_line "$(posting "$id" OP-001 "$client" USD 200 "$ok_lines,$ok_lines")"
nu; reject duplicate_line "$(posting "$id" TR-001 "$client" USD 200 "$(trust "$matter" 100),$(trust "$matter" 100)")"
nu; reject invoice_client_mismatch "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$other_inv" 100)")"
nu; reject matter_client_mismatch "$(posting "$id" TR-001 "$client" USD 100 "$(trust "$other_matter" 100)")"
nu; reject invoice_not_open "$(posting "$id" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")"
nu; reject amount_over_balance "$(posting "$id" OP-001 "$client" USD $((inv_bal - 9999)) "$(inv "$inv_no" $((inv_bal - 9999)))")"
# The first failing check wins: an unknown account beats a bad amount, a bad amount beats a missing invoice.
nu; reject unknown_account "$(posting "$id" OP-999 "$client" USD 0 "$(inv INV-9999999 0)")"
nu; reject bad_amount "$(posting "$id" OP-001 "$client" USD 0 "$(inv INV-9999999 0)")"

# The agent records a rejection after rolling back; a replay then writes nothing and the result stands.
nu; ur=$id
pr=$(posting "$ur" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")
apply "$pr" && fail "rejected posting was accepted"
reject_posting "$ur" 'ML001 invoice_not_open' || fail "reject_posting failed"
reject_posting "$ur" 'ML001 something_else' || fail "second reject_posting failed"
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
          AND num_nulls(invoice_number, invoice_date, due_date, client_number, client_name, matter_number,
                        matter_description, currency, total_minor, balance_minor, status) = 11
          AND change_id = (SELECT max(change_id) FROM ml_change WHERE entity = 'invoice' AND entity_id = $inv_id)")"
expect "paid-off invoice left ml_open_items" 0 "$(q "SELECT count(*) FROM ml_open_items($((inv_id - 1)), 1) WHERE source_id = $inv_id")"
expect "paid-off invoice left the search index" 0 "$(q "SELECT count(*) FROM ml_search_item WHERE source_id = $inv_id")"
expect_search_index "after postings"

# --- trust deposit through a posting ------------------------------------------------------------------
tbal=$(q "SELECT coalesce(sum(amount_minor), 0) FROM trust_entry WHERE matter_id = $matter_id")
nu; ut=$id
apply "$(posting "$ut" TR-001 "$client" USD 50000 "$(trust "$matter" 50000)")" || fail "trust posting" "$(cat "$tmp/err")"
expect "trust posting wrote a deposit" "1|50000|matterlink receipt|TR-001|2026-11-22" \
    "$(q "SELECT count(*), sum(t.amount_minor), min(t.memo), min(b.account_number), min(t.entry_date)
          FROM trust_entry AS t JOIN bank_account AS b USING (bank_account_id)
          WHERE t.receipt_id = (SELECT receipt_id FROM receipt WHERE posting_uuid = '$ut')")"
expect "trust posting shows in ml_changes" "upsert|$((tbal + 50000))|trust" "$(latest trust "$matter_id")"
expect "trust posting shows in ml_trust_balances" "$((tbal + 50000))" \
    "$(q "SELECT balance_minor FROM ml_trust_balances($((matter_id - 1)), 1) WHERE source_id = $matter_id")"

# --- direct edits by the billing system ----------------------------------------------------------------
# A new trust entry on a matter that had none.
new_matter=$(q "SELECT m.matter_id FROM matter AS m WHERE NOT EXISTS
                (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id LIMIT 1")
q "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
   VALUES ($new_matter, (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001'),
           '2026-11-20', 120000, 'USD', 'Retainer deposit')" >/dev/null
expect "new trust entry is a trust upsert" "upsert|120000|trust" "$(latest trust "$new_matter")"
# Moving an entry to another matter changes both.
entry=$(q "SELECT max(trust_entry_id) FROM trust_entry WHERE matter_id = $new_matter")
q "UPDATE trust_entry SET matter_id = $matter_id WHERE trust_entry_id = $entry" >/dev/null
expect "moved entry: old matter removed" "remove|null|null" "$(latest trust "$new_matter")"
expect "moved entry: new matter updated" "upsert|$((tbal + 50000 + 120000))|trust" "$(latest trust "$matter_id")"
q "DELETE FROM trust_entry WHERE trust_entry_id = $entry" >/dev/null
expect "deleted entry: matter updated" "upsert|$((tbal + 50000))|trust" "$(latest trust "$matter_id")"
if q "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency)
      VALUES ($matter_id, (SELECT bank_account_id FROM bank_account WHERE account_number = 'OP-001'),
              '2026-11-20', 100, 'USD')" >/dev/null 2>&1; then
    fail "schema: a trust entry went into an OPERATING account"
fi
checks=$((checks + 1))

# Deleting an invoice.
del=$(q "SELECT i.invoice_id FROM invoice AS i WHERE i.status = 'open' AND NOT EXISTS
         (SELECT 1 FROM receipt_allocation AS a WHERE a.invoice_id = i.invoice_id) ORDER BY i.invoice_id DESC LIMIT 1")
q "DELETE FROM invoice WHERE invoice_id = $del" >/dev/null
expect "deleted invoice is a remove" "remove|null|null" "$(latest invoice "$del")"

# Voiding and closing invoices; paying one off by hand.
void=$(q "SELECT max(source_id) FROM ml_open_items(0, 1000000)")
q "UPDATE invoice SET status = 'void' WHERE invoice_id = $void" >/dev/null
expect "voided invoice is a remove" "remove|null|null" "$(latest invoice "$void")"
closed=$(q "SELECT max(source_id) FROM ml_open_items(0, 1000000)")
q "UPDATE invoice SET status = 'closed' WHERE invoice_id = $closed" >/dev/null
expect "closed invoice is a remove" "remove|null|null" "$(latest invoice "$closed")"
zero=$(q "SELECT max(source_id) FROM ml_open_items(0, 1000000)")
q "UPDATE invoice SET balance_minor = 0, status = 'paid' WHERE invoice_id = $zero" >/dev/null
expect "invoice paid off by hand is a remove" "remove|null|null" "$(latest invoice "$zero")"

# New invoices: on an existing matter, and on a new matter of a new client.
q "INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor)
   VALUES ('INV-NEW-1', $matter_id, '2026-11-21', '2026-12-21', 'USD', 77700, 77700)" >/dev/null
new_inv=$(q "SELECT invoice_id FROM invoice WHERE invoice_number = 'INV-NEW-1'")
expect "new invoice is an upsert" "upsert|77700|open" "$(latest invoice "$new_inv")"
expect "new invoice carries its item fields" "INV-NEW-1|2026-11-21|2026-12-21|$matter|USD|77700" \
    "$(q "SELECT invoice_number, invoice_date, due_date, matter_number, currency, total_minor FROM ml_changes
          WHERE item_kind = 'invoice' AND source_id = $new_inv ORDER BY change_id DESC LIMIT 1")"
q "INSERT INTO client (client_number, name) VALUES ('C-NEW', 'New Client LLC');
   INSERT INTO matter (matter_number, client_id, description)
   VALUES ('M-NEW', (SELECT client_id FROM client WHERE client_number = 'C-NEW'), 'New matter');
   INSERT INTO invoice (invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor)
   VALUES ('INV-NEW-2', (SELECT matter_id FROM matter WHERE matter_number = 'M-NEW'), '2026-11-21', 'USD', 5000, 5000)" >/dev/null
new_inv2=$(q "SELECT invoice_id FROM invoice WHERE invoice_number = 'INV-NEW-2'")
expect "new matter's invoice is an upsert" "upsert|C-NEW|New Client LLC|M-NEW|New matter|null" \
    "$(high_water >/dev/null; q "SELECT op, client_number, client_name, matter_number, matter_description,
          coalesce(due_date, 'null') FROM ml_changes WHERE item_kind = 'invoice' AND source_id = $new_inv2
          ORDER BY change_id DESC LIMIT 1")"

# Renaming a client: one change row per open invoice, one per matter with trust entries.
open_n=$(q "SELECT count(*) FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
            WHERE c.client_number = '$client' AND i.status = 'open' AND i.balance_minor > 0")
trust_n=$(q "SELECT count(*) FROM matter AS m JOIN client AS c USING (client_id) WHERE c.client_number = '$client'
             AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)")
mark=$(high_water)
q "UPDATE client SET name = 'Renamed Client LLC' WHERE client_number = '$client'" >/dev/null
hw=$(high_water)
expect "client rename: change rows" "$open_n|$trust_n" \
    "$(q "SELECT count(*) FILTER (WHERE entity = 'invoice'), count(*) FILTER (WHERE entity = 'trust')
          FROM ml_change WHERE change_id > $mark")"
expect "client rename: ml_changes carries the new name" "$((open_n + trust_n))" \
    "$(q "SELECT count(*) FROM ml_changes_since($mark, $hw, 5000) WHERE op = 'upsert'
          AND client_name = 'Renamed Client LLC' AND client_number = '$client'")"
mark=$(high_water)
q "UPDATE client SET email = 'new@example.com' WHERE client_number = '$client'" >/dev/null
expect "client e-mail change adds no change rows" "$mark" "$(high_water)"

# Renaming a matter.
mark=$(high_water)
q "UPDATE matter SET description = 'Renamed matter' WHERE matter_id = $matter_id" >/dev/null
hw=$(high_water)
expect "matter update: change rows" \
    "$(q "SELECT count(*) + 1 FROM invoice WHERE matter_id = $matter_id AND status = 'open' AND balance_minor > 0")" \
    "$(q "SELECT count(*) FROM ml_changes_since($mark, $hw, 5000) WHERE matter_description = 'Renamed matter'")"
expect_search_index "after deletes, voids, closes, pay-offs, new invoices, clients and matters, renames"

# The search index follows an invoice to another matter, and a matter to another client; a second
# matter of the new client keeps its own rows.
other=$(q "SELECT matter_id FROM matter WHERE matter_id <> $matter_id AND client_id <> (SELECT client_id FROM matter
           WHERE matter_id = $matter_id) ORDER BY matter_id LIMIT 1")
q "UPDATE invoice SET matter_id = $other WHERE invoice_id = $new_inv" >/dev/null
expect "search index: an invoice moved to another matter" "$other|$(q "SELECT client_id FROM matter WHERE matter_id = $other")" \
    "$(q "SELECT matter_id, client_id FROM ml_search_item WHERE source_id = $new_inv")"
q "UPDATE matter SET client_id = (SELECT client_id FROM client WHERE client_number = 'C-NEW') WHERE matter_id = $other" >/dev/null
expect "search index: a matter moved to another client" "$(q "SELECT count(*) FROM invoice WHERE matter_id = $other
          AND status = 'open' AND balance_minor > 0")" \
    "$(q "SELECT count(*) FROM ml_search_item WHERE matter_id = $other
          AND client_id = (SELECT client_id FROM client WHERE client_number = 'C-NEW')")"
expect_search_index "after moves"
q "UPDATE client SET name = 'Search Renamed ÄÖ Co' WHERE client_number = 'C-NEW';
   UPDATE matter SET description = 'Search Redescribed Ärger' WHERE matter_id = $other" >/dev/null
expect "search index: a renamed client and a redescribed matter, in lower case" \
    "search renamed äö co|search redescribed ärger" \
    "$(q "SELECT DISTINCT client_name_lower || '|' || matter_description_lower FROM ml_search_item WHERE matter_id = $other")"
expect_search_index "after renames"

# A rerun of contract.sql repairs a damaged search index: rows missing, a stray row, a wrong client.
q "DELETE FROM ml_search_item WHERE source_id IN (SELECT source_id FROM ml_search_item ORDER BY source_id LIMIT 3);
   INSERT INTO ml_search_item VALUES ($zero, 1, 1);
   UPDATE ml_search_item SET client_id = client_id + 1
   WHERE source_id = (SELECT max(source_id) FROM ml_search_item);
   UPDATE ml_search_item SET client_name_lower = 'stale'
   WHERE source_id = (SELECT min(source_id) FROM ml_search_item)" >/dev/null
expect "search index: damaged" "3/5" "$(search_index_drift | cut -d/ -f1,2)"
psql -X -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 -q -f "$sql/contract.sql" \
    >"$tmp/out" 2>&1 || fail "contract.sql re-run over a damaged search index" "$(cat "$tmp/out")"
expect_search_index "repaired by a rerun"

# Concurrent writers: a copy of a name or description waits for an uncommitted change of it, and a
# change waits for an uncommitted copy; either way the index ends with the value committed last.
conc_matter=$(q "SELECT max(matter_id) FROM matter")
conc_client=$(q "SELECT client_id FROM matter WHERE matter_id = $conc_matter")
conc_invoice() { # NUMBER
    printf "INSERT INTO invoice (invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor)
            VALUES ('%s', %s, '2026-11-22', 'USD', 100, 100);" "$1" "$conc_matter"
}
# waits_for NAME FIRST SECOND: FIRST runs in session NAME and stays uncommitted; SECOND, in a session
# of its own, must wait on a lock FIRST holds; then FIRST commits, and both sessions end.
waits_for() {
    open_session "$1"
    exec 3>"$tmp/$1.fifo"
    printf 'BEGIN;\n%s\n' "$2" >&3
    wait_state "$1" 'idle in transaction'
    open_session "$1_w"
    exec 4>"$tmp/$1_w.fifo"
    printf 'BEGIN;\n%s\nCOMMIT;\n' "$3" >&4
    wait_state "$1_w" lock
    printf 'COMMIT;\n' >&3
    # Both writers first: the waiting session's psql inherited the first one's fifo, so the first
    # ends only after the second.
    exec 3>&- 4>&-
    close_session "$1"
    close_session "$1_w"
}
waits_for sa "UPDATE client SET name = 'Concurrent Rename' WHERE client_id = $conc_client;" \
    "$(conc_invoice INV-CONC-1)"
expect "concurrent: an invoice opened during a rename carries the new name" "concurrent rename" \
    "$(q "SELECT s.client_name_lower FROM ml_search_item AS s JOIN invoice AS i ON i.invoice_id = s.source_id
          WHERE i.invoice_number = 'INV-CONC-1'")"
waits_for sc "$(conc_invoice INV-CONC-2)" \
    "UPDATE matter SET description = 'Concurrent Description' WHERE matter_id = $conc_matter;"
expect "concurrent: a description changed while an invoice opened reaches that invoice" "concurrent description" \
    "$(q "SELECT s.matter_description_lower FROM ml_search_item AS s JOIN invoice AS i ON i.invoice_id = s.source_id
          WHERE i.invoice_number = 'INV-CONC-2'")"
expect_search_index "after concurrent writers"

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
expect "ml_posting_results of a reversal" "$rv|posted|R-$rev_a" \
    "$(q "SELECT posting_uuid, status, receipt_id FROM ml_posting_results('[\"$rv\"]')")"
expect "the reversal names the original receipt, the day, amount and transaction" \
    "$receipt_a|2026-11-22|$i_total|USD|Thank you|txn_$rv" \
    "$(q "SELECT receipt_id, to_char(reversed_on, 'YYYY-MM-DD'), amount_minor, currency, ar_message, processor_txn
          FROM receipt_reversal WHERE receipt_reversal_id = $rev_a")"
expect "its line names the original's allocation line" "1|$i_total" \
    "$(q "SELECT count(*), sum(l.amount_minor) FROM receipt_reversal_line AS l
          JOIN receipt_allocation AS ra USING (receipt_allocation_id)
          WHERE l.receipt_reversal_id = $rev_a AND ra.receipt_id = $receipt_a AND ra.invoice_id = $i_id")"
expect "the original receipt is not edited" "$ua|posted|$receipt_a|null|$i_total" \
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
expect "a replayed reversal keeps its result" "$rv|posted|R-$rev_a|null" "$(result "$rv")"
reject_posting "$rv" 'ML001 bad_amount' || fail "reject_posting of a posted reversal raised an error"
expect "a posted reversal cannot also be rejected" "$rv|posted|R-$rev_a|null|0" \
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
open_session rv1
exec 3>"$tmp/rv1.fifo"
printf '%s\n' 'BEGIN;' "CALL ml_apply_posting('$re1');" >&3
wait_state rv1 'idle in transaction'
(PGAPPNAME=ml_test_rv2_$$; export PGAPPNAME; apply "$re2") &
second=$!
echo $second >"$tmp/rv2.pid"
wait_state rv2 lock
printf 'COMMIT;\n' >&3
exec 3>&-
close_session rv1
wait $second
rc=$?
rm -f "$tmp/rv2.pid"
checks=$((checks + 1))
if [ "$rc" -eq 0 ] || ! grep -Eq "ERROR: +ML001: ML001 reversal_exceeds_original" "$tmp/err"; then
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
    "$(q "SELECT t.amount_minor, b.account_number, t.currency, to_char(t.entry_date, 'YYYY-MM-DD'), t.memo, t.receipt_id
          FROM trust_entry AS t JOIN bank_account AS b USING (bank_account_id) WHERE t.matter_id = $tm_id AND t.amount_minor < 0")"
expect "the core sees the trust balance go down" "upsert|6000|trust" "$(latest trust "$tm_id")"
expect "the receipt's trust entries net out to what stays" "6000" \
    "$(q "SELECT sum(amount_minor) FROM trust_entry WHERE receipt_id = $receipt_t")"
# The firm pays 50.00 out of the ledger; a reversal may then take back only what is left.
q "INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
   VALUES ($tm_id, (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001'), '2026-11-23', -5000,
           'USD', 'Filing fees')" >/dev/null
nu; reject trust_balance_insufficient "$(reversal "$id" "$utr" TR-001 "$tc" USD 2000 "$(trust "$tm" 2000)")"
nu; apply "$(reversal "$id" "$utr" TR-001 "$tc" USD 1000 "$(trust "$tm" 1000)")" || fail "trust reversal to zero" "$(cat "$tmp/err")"
expect "a trust reversal may empty the ledger" "upsert|0|trust" "$(latest trust "$tm_id")"
nu; reject trust_balance_insufficient "$(reversal "$id" "$utr" TR-001 "$tc" USD 1 "$(trust "$tm" 1)")"

# Rejections of reversals, each writing nothing.
fresh
nu; ud=$id
apply "$(posting "$ud" OP-001 "$c_no" USD 5000 "$(inv "$i_no" 5000)")" || fail "payment to reverse" "$(cat "$tmp/err")"
q "INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('OP-002', 'Operating 2', 'OPERATING', 'USD')" >/dev/null
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
q "UPDATE invoice SET currency = 'CAD' WHERE invoice_id = $i_id" >/dev/null
nu; reject reversal_currency_mismatch "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$ok_rev")"
q "UPDATE invoice SET currency = 'USD', total_minor = balance_minor WHERE invoice_id = $i_id" >/dev/null
nu; reject reversal_exceeds_invoice_total "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$ok_rev")"
q "UPDATE invoice SET status = 'void' WHERE invoice_id = $i_id" >/dev/null
nu; reject reversal_invoice_closed "$(reversal "$id" "$ud" OP-001 "$c_no" USD 100 "$ok_rev")"
# As the agent answers a rejection: recorded, and a replay writes nothing.
nu; urj=$id
prj=$(reversal "$urj" "$(uuid 4999)" OP-001 "$c_no" USD 100 "$ok_rev")
apply "$prj" && fail "a reversal of an unknown posting was accepted"
reject_posting "$urj" 'ML001 original_not_posted' || fail "reject_posting of a reversal"
fp=$(fingerprint)
apply "$prj" || fail "replay of a rejected reversal raised an error" "$(cat "$tmp/err")"
expect "a rejected reversal stays rejected and writes nothing" "$urj|rejected|null|ML001 original_not_posted|$fp" \
    "$(result "$urj")|$(fingerprint)"
# A payment kept for the batch and privilege checks below.
fresh
nu; uk=$id; uk_c=$c_no; uk_i=$i_no; uk_id=$i_id
apply "$(posting "$uk" OP-001 "$c_no" USD 3000 "$(inv "$i_no" 3000)")" || fail "payment kept to reverse" "$(cat "$tmp/err")"

# --- the agent's reads ---------------------------------------------------------------------------------
hw=$(high_water)
expect "changes_since pages up to the high-water mark" "3" \
    "$(q "SELECT count(*) FROM ml_changes_since($((hw - 5)), $((hw - 2)), 1000)")"
expect "changes_since honours the page limit, in change_id order" "$((hw - 4)),$((hw - 3))" \
    "$(q "SELECT string_agg(change_id::text, ',') FROM ml_changes_since($((hw - 5)), $hw, 2)")"
expect "contract_version read" "4|$epoch" "$(q 'SELECT contract_version, db_epoch FROM ml_contract')"
expect "every stamped ml_change row has one ml_changes row" "$(q 'SELECT count(change_id) FROM ml_change')" \
    "$(q 'SELECT count(*) FROM ml_changes')"

# ======================================================================================================
# Change capture under concurrency.
# ======================================================================================================

# --- (a) a long transaction commits after a later one: nothing is missed ------------------------------
x=$(q "SELECT min(source_id) FROM ml_open_items(0, 1000000)")
y=$(q "SELECT max(source_id) FROM ml_open_items(0, 1000000)")
mark=$(high_water)
open_session a
exec 3>"$tmp/a.fifo"
printf 'BEGIN;\nUPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = %s;\n' "$x" >&3
wait_state a 'idle in transaction'
q "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = $y" >/dev/null
hw1=$(high_water)
expect "high-water covers the committed change (Y)" "1" \
    "$(q "SELECT count(*) FROM ml_changes_since($mark, $hw1, 5000) WHERE item_kind = 'invoice' AND source_id = $y")"
expect "high-water does not cover the open transaction's change (X)" "0|0" \
    "$(q "SELECT (SELECT count(*) FROM ml_changes_since($mark, $hw1, 5000) WHERE source_id = $x),
                 (SELECT count(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $x AND change_id > $mark)")"
printf 'COMMIT;\n' >&3
exec 3>&-
close_session a
hw2=$(high_water)
expect "after the late commit, X is stamped above the earlier high-water" "1" \
    "$(q "SELECT count(*) FROM ml_change WHERE entity = 'invoice' AND entity_id = $x AND change_id > $hw1 AND change_id <= $hw2")"
expect "changes_since(earlier high-water) returns X with its new balance" \
    "upsert|$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $x")" \
    "$(q "SELECT op, balance_minor FROM ml_changes_since($hw1, $hw2, 5000) WHERE source_id = $x")"

# --- (b) 1000 invoices in one statement (one timestamp): 1000 stamped changes, each once ---------------
mark=$(high_water)
q "UPDATE invoice SET due_date = due_date + 1 WHERE invoice_id IN
   (SELECT invoice_id FROM invoice ORDER BY invoice_id LIMIT 1000)" >/dev/null
hw=$(high_water)
expect "one statement, 1000 invoices: 1000 changes, 1000 invoices, one timestamp" "1000|1000|1" \
    "$(q "SELECT count(*), count(DISTINCT entity_id), count(DISTINCT written_at) FROM ml_change
          WHERE change_id > $mark AND change_id <= $hw")"
expect "changes_since returns each of them once" "1000|1000" \
    "$(q "SELECT count(*), count(DISTINCT source_id) FROM ml_changes_since($mark, $hw, 5000)")"
expect "stamps rise with seq_id within a call" "0" \
    "$(q "SELECT count(*) FROM (SELECT change_id, lag(change_id) OVER (ORDER BY seq_id) AS prev FROM ml_change
          WHERE change_id > $mark AND change_id <= $hw) AS s WHERE change_id < prev")"

# One call stamps at most 100,000 rows; the next stamps the rest. (Rows for invoices that do not exist
# are removes, which the agent applies harmlessly.)
mark=$(high_water)
q "INSERT INTO ml_change (entity, entity_id) SELECT 'invoice', 10000000 + g FROM generate_series(1, 100050) AS g" >/dev/null
hw1=$(high_water)
hw2=$(high_water)
expect "a call stamps at most 100,000 rows, the next one the rest" "$((mark + 100000))|$((mark + 100050))|0" \
    "$hw1|$hw2|$(q 'SELECT count(*) FROM ml_change WHERE change_id IS NULL')"
q "DELETE FROM ml_change WHERE entity_id > 10000000" >/dev/null

# --- (d) the stamper never blocks: not on writers, not on another stamper ------------------------------
# The writer below changes Y, renames the client and adds a trust entry: its change rows will be Y,
# one per open invoice of the client, one per matter of the client with trust entries, and the entry.
w_rows=$(q "SELECT 1 + (SELECT count(*) FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
                        WHERE c.client_number = '$client' AND i.status = 'open' AND i.balance_minor > 0)
                 + (SELECT count(*) FROM matter AS m JOIN client AS c USING (client_id) WHERE c.client_number = '$client'
                    AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)) + 1")
open_session w
exec 3>"$tmp/w.fifo"
printf 'BEGIN;\nUPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = %s;\n' "$y" >&3
printf "UPDATE client SET name = name || ' (pending)' WHERE client_number = '%s';\n" "$client" >&3
printf 'INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency) VALUES (%s, (SELECT bank_account_id FROM bank_account WHERE account_number = %s), %s, 100, %s);\n' \
    "$matter_id" "'TR-001'" "'2026-11-23'" "'USD'" >&3
wait_state w 'idle in transaction'
before=$(high_water)
out=$(printf '%s\n' "SET statement_timeout = '2s';" 'SELECT ml_change_high_water();' | qv 2>&1)
expect "high-water returns promptly while a writer holds uncommitted changes" "$before" "$out"
# Another stamper holds the stamping lock with uncommitted stamps: this call must not wait for it, and
# must not return anything of it; after it commits, new changes are stamped above its stamps.
open_session s
exec 4>"$tmp/s.fifo"
q "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = $x" >/dev/null
printf 'BEGIN;\nSELECT ml_change_high_water();\n' >&4
wait_state s 'idle in transaction'
q "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = $x" >/dev/null
out=$(printf '%s\n' "SET statement_timeout = '2s';" 'SELECT ml_change_high_water();' | qv 2>&1)
expect "high-water returns promptly, and only committed stamps, while another stamper is open" "$before" "$out"
printf 'COMMIT;\n' >&4
exec 4>&-
close_session s
hw_s=$(high_water)
expect "the other stamper's stamps are then visible, and the later change is above them" "2|1" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE change_id = $hw_s) FROM ml_change
          WHERE entity = 'invoice' AND entity_id = $x AND change_id > $before")"
printf 'COMMIT;\n' >&3
exec 3>&-
close_session w
hw_w=$(high_water)
expect "the writer's changes are stamped after its commit, above everything before" "$w_rows|0" \
    "$(q "SELECT count(*) FILTER (WHERE change_id > $hw_s AND change_id <= $hw_w), count(*) FILTER (WHERE change_id IS NULL)
          FROM ml_change")"

# --- concurrent deliveries of one posting land once ----------------------------------------------------
bal=$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $inv2_id")
nu; uc=$id
pc=$(posting "$uc" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")
open_session p1
exec 3>"$tmp/p1.fifo"
printf '%s\n' 'BEGIN;' "CALL ml_apply_posting('$pc');" >&3
wait_state p1 'idle in transaction'
(PGAPPNAME=ml_test_p2_$$; export PGAPPNAME; apply "$pc") &
second=$!
echo $second >"$tmp/p2.pid"
# The second delivery queues behind the first (on the posting's advisory lock).
wait_state p2 lock
printf 'COMMIT;\n' >&3
exec 3>&-
close_session p1
wait $second
rc=$?
rm -f "$tmp/p2.pid"
expect "concurrent second delivery succeeds as a replay" "0" "$rc"
expect "concurrent deliveries: one receipt, one payment" "1|$((bal - 100))" \
    "$(q "SELECT (SELECT count(*) FROM receipt WHERE posting_uuid = '$uc'), balance_minor FROM invoice WHERE invoice_id = $inv2_id")"

# ======================================================================================================
# Batches: CALL ml_apply_postings(JSON array) writes what ml_apply_posting would write for each posting
# in turn, or raises ML002 and writes nothing; ml_posting_results(JSON array of uuids) reads them back.
# ======================================================================================================

# apply_batch JSON [ROLE]: one transaction, as the agent does it; stderr goes to $tmp/err.
apply_batch() {
    printf '%s\n' '\set VERBOSITY verbose' 'BEGIN;' "CALL ml_apply_postings(:'postings');" 'COMMIT;' |
        psql_db -U "${2:-postgres}" -d "$db" -v postings="$1" >/dev/null 2>"$tmp/err"
}

# results JSON_UUIDS: the batch's results, one line each, in posting_uuid order.
results() {
    printf '%s\n' "SELECT posting_uuid, status, coalesce(receipt_id, 'null'), coalesce(reason, 'null')
                   FROM ml_posting_results(:'uuids') ORDER BY posting_uuid;" | qv -v uuids="$1"
}

# json_list FILE: the lines of FILE as one JSON array.
json_list() {
    printf '['; paste -s -d, "$1" | tr -d '\n'; printf ']'
}

# batch_refused NAME JSON: the batch must fail with ML002 and leave everything as it was.
batch_refused() {
    checks=$((checks + 1))
    before=$(fingerprint)
    if apply_batch "$2"; then
        fail "batch $1: was accepted"
    elif ! grep -Eq 'ERROR: +ML002: ML002 batch_needs_one_by_one' "$tmp/err"; then
        fail "batch $1: wrong error" "$(cat "$tmp/err")"
    fi
    expect "batch $1 writes nothing" "$before" "$(fingerprint)"
}

b=5000
# Sets $id to a fresh batch posting UUID.
bu() { b=$((b + 1)); id=$(uuid $b); }

# --- 200 postings: the batch gives exactly what one by one gives -------------------------------------
# Trust deposits (to ledgers that exist and to new ones, two to each new one), two-line invoice
# postings, and one-line ones: some invoices paid by two postings of the batch, some paid off.
: >"$tmp/docs"
q "SELECT c.client_number, m.matter_number FROM matter AS m JOIN client AS c USING (client_id)
   WHERE EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id LIMIT 10" >"$tmp/rows"
while IFS='|' read -r c m; do
    bu; posting "$id" TR-001 "$c" USD 12345 "$(trust "$m" 12345)" >>"$tmp/docs"; echo >>"$tmp/docs"
done <"$tmp/rows"
q "SELECT c.client_number, m.matter_number FROM matter AS m JOIN client AS c USING (client_id)
   WHERE NOT EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id DESC LIMIT 5" >"$tmp/rows"
while IFS='|' read -r c m; do
    bu; posting "$id" TR-001 "$c" USD 500 "$(trust "$m" 500)" >>"$tmp/docs"; echo >>"$tmp/docs"
    bu; posting "$id" TR-001 "$c" USD 700 "$(trust "$m" 700)" >>"$tmp/docs"; echo >>"$tmp/docs"
done <"$tmp/rows"
q "SELECT c.client_number, min(i.invoice_number), max(i.invoice_number)
   FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
   WHERE i.status = 'open' AND i.balance_minor >= 1000 AND i.invoice_id % 2 = 1
   GROUP BY c.client_number HAVING count(*) >= 2 ORDER BY 1 LIMIT 15" >"$tmp/rows"
while IFS='|' read -r c i1 i2; do
    bu; posting "$id" OP-001 "$c" USD 150 "$(inv "$i1" 50),$(inv "$i2" 100)" >>"$tmp/docs"; echo >>"$tmp/docs"
done <"$tmp/rows"
q "SELECT c.client_number, i.invoice_number, i.balance_minor
   FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
   WHERE i.status = 'open' AND i.balance_minor >= 1000 AND i.invoice_id % 2 = 0 ORDER BY i.invoice_id DESC" >"$tmp/rows"
j=0
while IFS='|' read -r c i bal && [ "$(wc -l <"$tmp/docs")" -lt 200 ]; do
    j=$((j + 1))
    case $((j % 15)) in
        0) bu; posting "$id" OP-001 "$c" USD "$bal" "$(inv "$i" "$bal")" >>"$tmp/docs" ;;
        1) bu; posting "$id" OP-001 "$c" USD 100 "$(inv "$i" 100)" >>"$tmp/docs"; echo >>"$tmp/docs"
           bu; posting "$id" OP-001 "$c" USD $((bal - 100)) "$(inv "$i" $((bal - 100)))" >>"$tmp/docs" ;;
        *) bu; posting "$id" OP-001 "$c" USD $((100 + j)) "$(inv "$i" $((100 + j)))" >>"$tmp/docs" ;;
    esac
    echo >>"$tmp/docs"
done <"$tmp/rows"
expect "the batch has 200 postings, 20 of them trust deposits" "200|20" \
    "$(wc -l <"$tmp/docs" | tr -d ' ')|$(grep -c '"kind":"trust"' "$tmp/docs")"
batch200=$(json_list "$tmp/docs")
uuids200=$(printf '['; sed 's/^{"posting_uuid":\("[^"]*"\).*/\1/' "$tmp/docs" | paste -s -d, - | tr -d '\n'; printf ']')

# A copy of the database as it is now, to apply the same postings one by one.
high_water >/dev/null
psql_db -U postgres -d postgres -c "CREATE DATABASE ${db}_b TEMPLATE $db" >/dev/null ||
    { echo "FAIL: copying the database"; exit 1; }
qb() {
    psql_db -U postgres -d "${db}_b" -c "$1"
}
seq_b=$(q 'SELECT max(seq_id) FROM ml_change')
apply_batch "$batch200" || fail "batch of 200" "$(cat "$tmp/err")"
sed "s/'/''/g; s/^/BEGIN; CALL ml_apply_posting('/; s/\$/'); COMMIT;/" "$tmp/docs" |
    psql_db -U postgres -d "${db}_b" >/dev/null 2>"$tmp/err" || fail "one by one on the copy" "$(cat "$tmp/err")"
# Rows, ids and all, as one text per table (posted_at is the transaction's time, so it differs).
for table in \
    "receipt|receipt_id, posting_uuid, received_on, bank_account_id, client_id, payer_name, payer_email, amount_minor, currency, ar_message, processor_txn" \
    "receipt_allocation|receipt_allocation_id, receipt_id, kind, invoice_id, matter_id, amount_minor" \
    "trust_entry|trust_entry_id, matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id" \
    "invoice|invoice_id, balance_minor, status"; do
    name=${table%%|*}
    cols=${table#*|}
    sqlt="SELECT count(*) || ' ' || md5(string_agg(row($cols)::text, ';' ORDER BY ${cols%%,*})) FROM $name"
    expect "batch = one by one: $name" "$(qb "$sqlt")" "$(q "$sqlt")"
done
expect "batch = one by one: the postings' receipts, allocations and trust entries" "200|215|20" \
    "$(q "SELECT (SELECT count(*) FROM receipt AS r WHERE r.posting_uuid IN (SELECT jsonb_array_elements_text('$uuids200'))),
                 (SELECT count(*) FROM receipt_allocation AS a JOIN receipt AS r USING (receipt_id)
                  WHERE r.posting_uuid IN (SELECT jsonb_array_elements_text('$uuids200'))),
                 (SELECT count(*) FROM trust_entry AS t JOIN receipt AS r USING (receipt_id)
                  WHERE r.posting_uuid IN (SELECT jsonb_array_elements_text('$uuids200')))")"
expect "receipt ids follow the batch's order" "t" \
    "$(q "SELECT bool_and(r.receipt_id > coalesce(p.receipt_id, 0)) FROM (SELECT receipt_id, lag(receipt_id) OVER (ORDER BY n) AS receipt_id_before
          FROM jsonb_array_elements_text('$uuids200') WITH ORDINALITY AS u(uuid, n) JOIN receipt ON posting_uuid = u.uuid) AS r
          CROSS JOIN LATERAL (SELECT r.receipt_id_before AS receipt_id) AS p")"
expect "the batch paid some invoices off" "t" \
    "$(q "SELECT count(*) >= 20 FROM invoice AS i WHERE i.status = 'paid' AND i.balance_minor = 0 AND EXISTS
          (SELECT 1 FROM receipt_allocation AS a JOIN receipt AS r USING (receipt_id) WHERE a.invoice_id = i.invoice_id
           AND r.posting_uuid IN (SELECT jsonb_array_elements_text('$uuids200')))")"
# Change rows: the same invoices and ledgers (one row per invoice where one by one has one per payment),
# and the same items as the payment core reads them.
changes="SELECT entity || ' ' || entity_id FROM ml_change WHERE seq_id > $seq_b GROUP BY entity, entity_id ORDER BY 1"
expect "batch = one by one: the invoices and ledgers in ml_change" "$(qb "$changes" | md5sum)" "$(q "$changes" | md5sum)"
expect "batch: one change row per invoice, one per trust deposit" "0|20" \
    "$(q "SELECT (SELECT count(*) - count(DISTINCT entity_id) FROM ml_change WHERE seq_id > $seq_b AND entity = 'invoice'),
                 (SELECT count(*) FROM ml_change WHERE seq_id > $seq_b AND entity = 'trust')")"
high_water >/dev/null
qb 'SELECT ml_change_high_water()' >/dev/null
seen="SELECT DISTINCT item_kind, source_id, op, balance_minor, status FROM ml_changes
      WHERE change_id IN (SELECT change_id FROM ml_change WHERE seq_id > $seq_b) ORDER BY 1, 2"
expect "batch = one by one: ml_changes" "$(qb "$seen" | md5sum)" "$(q "$seen" | md5sum)"
psql_db -U postgres -d postgres -c "DROP DATABASE ${db}_b" >/dev/null

expect_search_index "after the batches"

# --- results, replays -----------------------------------------------------------------------------------
res200=$(results "$uuids200")
expect "ml_posting_results: 200 posted, each with its receipt" "200|200" \
    "$(printf '%s\n' "$res200" | grep -c '|posted|[0-9][0-9]*|null$')|$(q "SELECT count(*) FROM ml_posting_results('$uuids200') AS p
          JOIN receipt AS r ON r.posting_uuid = p.posting_uuid AND r.receipt_id::text = p.receipt_id")"
expect "ml_posting_results = ml_posting_result for each" "$res200" \
    "$(q "SELECT r.posting_uuid, r.status, coalesce(r.receipt_id, 'null'), coalesce(r.reason, 'null')
          FROM jsonb_array_elements_text('$uuids200') AS u(uuid) CROSS JOIN LATERAL ml_posting_result(u.uuid) AS r
          ORDER BY 1")"
expect "ml_posting_results: rejected, posted and unknown" "$u1|posted|$receipt1|null
$ur|rejected|null|ML001 invoice_not_open" "$(results "[\"$ur\", \"$(uuid 4999)\", \"$u1\", \"$u1\"]")"
expect "ml_posting_results of an empty array" "" "$(results '[]')"
fp=$(fingerprint)
apply_batch "$batch200" || fail "replayed batch raised an error" "$(cat "$tmp/err")"
expect "a replayed batch writes nothing" "$fp" "$(fingerprint)"
expect "a replayed batch keeps the first results" "$res200" "$(results "$uuids200")"
apply_batch '[]' || fail "an empty batch raised an error" "$(cat "$tmp/err")"
expect "an empty batch writes nothing" "$fp" "$(fingerprint)"

# A batch mixing replays (posted, rejected, and changed copies that would now be refused) with new
# postings applies only the new ones, and leaves the replays' results as they were.
first=$(sed -n 1p "$tmp/docs")
bu; n1=$id; bu; n2=$id
mix=$(printf '[%s,%s,%s,%s,%s]' \
    "$(posting "$n1" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")" \
    "$first" \
    "$(posting "$ur" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")" \
    "$(posting "$u1" OP-001 "$client" USD 999999 "$(inv INV-9999999 999999)")" \
    "$(posting "$n2" TR-001 "$client" USD 300 "$(trust "$matter" 300)")")
bal2=$(q "SELECT balance_minor FROM invoice WHERE invoice_number = '$inv2_no'")
tbal=$(q "SELECT sum(amount_minor) FROM trust_entry WHERE matter_id = $matter_id")
receipts=$(q 'SELECT count(*) FROM receipt')
apply_batch "$mix" || fail "mixed batch" "$(cat "$tmp/err")"
expect "mixed batch: only the new postings land" "$((receipts + 2))|$((bal2 - 100))|$((tbal + 300))" \
    "$(q "SELECT (SELECT count(*) FROM receipt), balance_minor,
                 (SELECT sum(amount_minor) FROM trust_entry WHERE matter_id = $matter_id)
          FROM invoice WHERE invoice_number = '$inv2_no'")"
expect "mixed batch: results" \
    "$(printf '%s\n' "$u1|posted|$receipt1|null" "$ur|rejected|null|ML001 invoice_not_open" \
        "$(printf '%s\n' "$res200" | grep "^$(uuid 5001)|")" \
        "$n1|posted|$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$n1'")|null" \
        "$n2|posted|$(q "SELECT receipt_id FROM receipt WHERE posting_uuid = '$n2'")|null" | sort)" \
    "$(results "[\"$n1\", \"$(uuid 5001)\", \"$ur\", \"$u1\", \"$n2\"]")"

# --- refused batches: ML002, nothing written ------------------------------------------------------------
# Each is a good posting followed by one that ml_apply_posting would reject (or a malformed batch).
row=$(q "SELECT c.client_number, i.invoice_number, i.balance_minor
         FROM invoice AS i JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
         WHERE i.status = 'open' AND i.balance_minor BETWEEN 1000 AND 100000 AND c.client_number <> '$client'
           AND NOT EXISTS (SELECT 1 FROM receipt_allocation AS a WHERE a.invoice_id = i.invoice_id)
         ORDER BY i.invoice_id LIMIT 1")
IFS='|' read -r bc binv bbal <<EOF
$row
EOF
bu; good=$(posting "$id" OP-001 "$bc" USD 100 "$(inv "$binv" 100)")
bu; batch_refused "with an unknown invoice" "[$good,$(posting "$id" OP-001 "$bc" USD 100 "$(inv INV-9999999 100)")]"
bu; batch_refused "over an invoice's balance" \
    "[$good,$(posting "$id" OP-001 "$bc" USD $((bbal + 1)) "$(inv "$binv" $((bbal + 1)))")]"
bu; batch_refused "over a balance that an earlier posting of the batch took" \
    "[$good,$(posting "$id" OP-001 "$bc" USD $((bbal - 99)) "$(inv "$binv" $((bbal - 99)))")]"
batch_refused "with a posting_uuid twice" "[$good,$good]"
bu; batch_refused "with an amount written 1e2" "[$good,$(posting "$id" OP-001 "$bc" USD 1e2 "$(inv "$binv" 100)")]"
bu; batch_refused "with a line amount written 1E+2" \
    "[$good,$(posting "$id" OP-001 "$bc" USD 100 '{"kind":"invoice","invoice_number":"'"$binv"'","amount_minor":1E+2}')]"
bu; batch_refused "with an amount written 100.0" "[$good,$(posting "$id" OP-001 "$bc" USD 100.0 "$(inv "$binv" 100)")]"
bu; batch_refused "with an amount written \"100\"" "[$good,$(posting "$id" OP-001 "$bc" USD '"100"' "$(inv "$binv" 100)")]"
bu; batch_refused "with a duplicate line" "[$good,$(posting "$id" OP-001 "$bc" USD 2 "$(inv "$binv" 1),$(inv "$binv" 1)")]"
bu; batch_refused "with another client's invoice" "[$good,$(posting "$id" OP-001 "$client" USD 100 "$(inv "$binv" 100)")]"
bu; batch_refused "with a paid invoice" "[$good,$(posting "$id" OP-001 "$client" USD 100 "$(inv "$paid_no" 100)")]"
bu; batch_refused "with a sum mismatch" "[$good,$(posting "$id" OP-001 "$bc" USD 101 "$(inv "$binv" 100)")]"
bu; batch_refused "with an unknown account" "[$good,$(posting "$id" OP-999 "$bc" USD 100 "$(inv "$binv" 100)")]"
bu; batch_refused "with an unknown client" "[$good,$(posting "$id" OP-001 C-99999 USD 100 "$(inv "$binv" 100)")]"
bu; batch_refused "with a trust line in an operating account" \
    "[$good,$(posting "$id" OP-001 "$client" USD 100 "$(trust "$matter" 100)")]"
bu; batch_refused "with a bad date" \
    "[$good,$(posting "$id" OP-001 "$bc" USD 100 "$(inv "$binv" 100)" | sed 's/2026-11-22/2026-02-30/')]"
batch_refused "with a posting that is not an object" "[$good,17]"
batch_refused "that is not JSON" "[$good,"
batch_refused "that is not an array" "$good"
# A matter's trust ledger keeps one currency: a new ledger cannot get USD and then CAD in one batch.
q "INSERT INTO bank_account (account_number, name, account_type, currency) VALUES ('TR-CAD', 'Trust CAD', 'TRUST', 'CAD')" >/dev/null
row=$(q "SELECT c.client_number, m.matter_number FROM matter AS m JOIN client AS c USING (client_id)
         WHERE NOT EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id) ORDER BY m.matter_id LIMIT 1")
IFS='|' read -r tc tm <<EOF
$row
EOF
bu; t1=$(posting "$id" TR-001 "$tc" USD 100 "$(trust "$tm" 100)")
bu; batch_refused "with two currencies for one new trust ledger" "[$t1,$(posting "$id" TR-CAD "$tc" CAD 100 "$(trust "$tm" 100)")]"
bu; t2=$(posting "$id" TR-CAD "$tc" CAD 100 "$(trust "$tm" 100)")
apply_batch "[$t2]" || fail "a CAD deposit to a new ledger" "$(cat "$tmp/err")"
expect "a CAD deposit to a new ledger" "CAD|100" \
    "$(q "SELECT min(t.currency), sum(t.amount_minor) FROM trust_entry AS t JOIN matter AS m USING (matter_id)
          WHERE m.matter_number = '$tm'")"
bu; batch_refused "with a USD deposit to a CAD ledger" "[$(posting "$id" TR-001 "$tc" USD 100 "$(trust "$tm" 100)")]"
# The agent's answer to ML002: one at a time applies the good posting and names the rejection.
bu; bad=$(posting "$id" OP-001 "$bc" USD $((bbal - 99)) "$(inv "$binv" $((bbal - 99)))")
apply "$good" || fail "after ML002, the good posting one by one" "$(cat "$tmp/err")"
checks=$((checks + 1))
if apply "$bad" || ! grep -Eq "ERROR: +ML001: ML001 amount_over_balance" "$tmp/err"; then
    fail "after ML002, one by one names the rejection" "$(cat "$tmp/err")"
fi
# A batch with a reversal goes to one by one (ML002, nothing written), which applies both. A reversal
# already applied is a replay in a batch, skipped like any other.
uk_bal=$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $uk_id")
bu; g2=$(posting "$id" OP-001 "$bc" USD 100 "$(inv "$binv" 100)")
bu; rf=$(reversal "$id" "$uk" OP-001 "$uk_c" USD 1000 "$(inv "$uk_i" 1000)")
batch_refused "with a reversal" "[$g2,$rf]"
apply "$g2" || fail "after ML002, the posting next to the reversal one by one" "$(cat "$tmp/err")"
apply "$rf" || fail "after ML002, the reversal one by one" "$(cat "$tmp/err")"
expect "after ML002, one by one gave the reversal's amount back" "$((uk_bal + 1000))" \
    "$(q "SELECT balance_minor FROM invoice WHERE invoice_id = $uk_id")"
fp=$(fingerprint)
apply_batch "[$rf,$pa]" || fail "a batch of reversals already applied" "$(cat "$tmp/err")"
expect "a batch of reversals already applied writes nothing" "$fp" "$(fingerprint)"

# --- a batch and a single delivery of one of its postings: it lands once, the batch waits --------------
bu; uc=$id
pc=$(posting "$uc" OP-001 "$bc" USD 10 "$(inv "$binv" 10)")
bu; uo=$id
po=$(posting "$uo" OP-001 "$bc" USD 20 "$(inv "$binv" 20)")
bal=$(q "SELECT balance_minor FROM invoice WHERE invoice_number = '$binv'")
open_session s1
exec 3>"$tmp/s1.fifo"
printf '%s\n' 'BEGIN;' "CALL ml_apply_posting('$pc');" >&3
wait_state s1 'idle in transaction'
(PGAPPNAME=ml_test_b2_$$; export PGAPPNAME; apply_batch "[$po,$pc]") &
second=$!
echo $second >"$tmp/b2.pid"
# The batch queues behind the single delivery (on that posting's advisory lock).
wait_state b2 lock
printf 'COMMIT;\n' >&3
exec 3>&-
close_session s1
wait $second
rc=$?
rm -f "$tmp/b2.pid"
expect "a batch that waited on a single delivery of one of its postings succeeds" "0" "$rc"
expect "that posting landed once, the batch's other one too" "1|1|$((bal - 30))" \
    "$(q "SELECT (SELECT count(*) FROM receipt WHERE posting_uuid = '$uc'),
                 (SELECT count(*) FROM receipt WHERE posting_uuid = '$uo'),
                 balance_minor FROM invoice WHERE invoice_number = '$binv'")"

# ======================================================================================================
# Privileges: the firm's applications need no rights on ml_ objects; the agent needs only the grants
# listed in contract.sql.
# ======================================================================================================
q "CREATE ROLE $firm_role LOGIN; CREATE ROLE $agent_role LOGIN;
   GRANT SELECT, INSERT, UPDATE, DELETE ON client, matter, invoice, trust_entry, bank_account TO $firm_role;
   GRANT SELECT ON ml_contract, ml_open_items, ml_trust_balances, ml_changes, ml_posting_result,
       ml_search_keys, ml_search_clients, ml_search_matters, ml_search_invoices TO $agent_role;
   GRANT EXECUTE ON FUNCTION ml_change_high_water() TO $agent_role;
   GRANT EXECUTE ON PROCEDURE ml_apply_posting(text), ml_apply_postings(text), ml_reject_posting(text, text) TO $agent_role;" >/dev/null
as_role() {
    role=$1
    shift
    psql_db -U "$role" -d "$db" -c "$1"
}
mark=$(high_water)
check "a firm role without ml_ rights can update an invoice" \
    as_role "$firm_role" "UPDATE invoice SET balance_minor = balance_minor - 1 WHERE invoice_id = $x"
check "a firm role without ml_ rights can rename a client" \
    as_role "$firm_role" "UPDATE client SET name = 'Firm Role Rename' WHERE client_number = '$client'"
expect "the firm role's changes were captured" "t" "$(q "SELECT count(*) > 1 FROM ml_change WHERE change_id IS NULL")"
if as_role "$firm_role" 'SELECT ml_change_high_water()' >/dev/null 2>&1; then
    fail "a role without the grant could run ml_change_high_water"
fi
checks=$((checks + 1))
nu; uf=$id
if apply "$(posting "$uf" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")" "$firm_role"; then
    fail "a role without the grant could apply a posting"
fi
checks=$((checks + 1))
ahw=$(as_role "$agent_role" 'SELECT ml_change_high_water()')
expect "agent role: high-water stamps" "$ahw" "$(high_water)"
expect "agent role: contract_version" "4|$epoch" "$(as_role "$agent_role" 'SELECT contract_version, db_epoch FROM ml_contract')"
expect "agent role: open_items" "$(q 'SELECT count(*) FROM ml_open_items(0, 1000000)')" \
    "$(as_role "$agent_role" 'SELECT count(*) FROM ml_open_items(0, 1000000)')"
expect "agent role: the search views" "$(q 'SELECT count(*) FROM ml_search_item')|$(q 'SELECT count(*) FROM client')|$(q 'SELECT count(*) FROM matter')|$(q 'SELECT count(*) FROM invoice')" \
    "$(as_role "$agent_role" 'SELECT (SELECT count(*) FROM ml_search_keys WHERE invoice_date IS NOT NULL) || chr(124) || (SELECT count(*) FROM ml_search_clients) || chr(124) || (SELECT count(*) FROM ml_search_matters) || chr(124) || (SELECT count(*) FROM ml_search_invoices)')"
if as_role "$agent_role" 'SELECT count(*) FROM ml_search_item' >/dev/null 2>&1; then
    fail "the agent role can read the search index table itself"
fi
checks=$((checks + 1))
expect "agent role: trust_balances" "$(q 'SELECT count(*) FROM ml_trust_balances(0, 1000000)')" \
    "$(as_role "$agent_role" 'SELECT count(*) FROM ml_trust_balances(0, 1000000)')"
expect "agent role: changes_since" "$(q "SELECT count(*) FROM ml_changes_since($mark, $ahw, 5000)")" \
    "$(as_role "$agent_role" "SELECT count(*) FROM ml_changes_since($mark, $ahw, 5000)")"
apply "$(posting "$uf" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")" "$agent_role" ||
    fail "agent role: apply_posting" "$(cat "$tmp/err")"
expect "agent role: posting_result" "$uf|posted" "$(as_role "$agent_role" "SELECT posting_uuid, status FROM ml_posting_result('$uf')")"
bu; ub=$id
if apply_batch "[$(posting "$ub" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")]" "$firm_role"; then
    fail "a role without the grant could apply a batch"
fi
checks=$((checks + 1))
apply_batch "[$(posting "$ub" OP-001 "$client" USD 100 "$(inv "$inv2_no" 100)")]" "$agent_role" ||
    fail "agent role: apply_postings" "$(cat "$tmp/err")"
expect "agent role: posting_results" "$ub|posted" \
    "$(as_role "$agent_role" "SELECT posting_uuid, status FROM ml_posting_results('[\"$ub\"]')")"
bu
apply "$(reversal "$id" "$uk" OP-001 "$uk_c" USD 500 "$(inv "$uk_i" 500)")" "$agent_role" ||
    fail "agent role: apply_posting of a reversal" "$(cat "$tmp/err")"
expect "agent role: the reversal's result" "$id|posted" \
    "$(as_role "$agent_role" "SELECT posting_uuid, status FROM ml_posting_result('$id')")"
nu
reject_posting "$id" 'ML001 invoice_not_open' "$agent_role" || fail "agent role: reject_posting"
expect "agent role: rejection recorded" "rejected" "$(as_role "$agent_role" "SELECT status FROM ml_posting_result('$id')")"
if as_role "$agent_role" "UPDATE invoice SET balance_minor = 0 WHERE invoice_id = $x" >/dev/null 2>&1 ||
   as_role "$agent_role" "INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', 1)" >/dev/null 2>&1; then
    fail "the agent role can write outside the contract"
fi
checks=$((checks + 1))

# ----------------------------------------------------------------------------------------------------
if [ "$failures" -ne 0 ]; then
    printf 'contract_postgresql: %d of %d checks failed\n' "$failures" "$checks"
    exit 1
fi
printf 'contract_postgresql: all %d checks passed\n' "$checks"
