#!/bin/bash
# dialects: sqlite postgresql mariadb
# A matter database is outside input too. Rows no careful schema would hold (the reference
# schema's checks are off while they are written, as in a firm's own schema without them):
# names and numbers too long or empty, control characters and odd Unicode, dates that are no
# dates (SQLite: any text; PostgreSQL: years past 9999 and before Christ; MariaDB: zero and
# invalid dates), currencies that are not ISO codes, amounts that are text, fractions,
# negative or at the ends of 64 bits, a balance above its total, in the snapshot and then as
# changes. The agent and the core stay up; each such row is skipped or refused with a log
# line, not carried; every good row reaches the replica; a payment still posts once, and the
# books balance. Rows that break only the link's own rules (a lower-case currency, a 13th
# month) once made the core refuse the whole snapshot batch, and the agent start the
# snapshot again and again: they are now skipped by the agent. A good invoice changed into
# one the link cannot carry leaves the replica (it could be paid against its last good
# balance) and comes back once fixed.
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_books.sh"
setup 5 60
SEED=${ML_DATABASE_FUZZ_SEED:-$(date +%s)}
log "seed $SEED (ML_DATABASE_FUZZ_SEED=$SEED repeats this run)"
# Writes COUNT hostile invoices (and their clients and matters) with ids from FIRST; prints
# the SQL for the dialect's client. Each dialect gets what its column types can hold.
hostile_rows() {
    python3 - "$SEED" "$1" "$2" "$ML_DIALECT" <<'PY'
import random, sys
rng = random.Random(int(sys.argv[1]) + int(sys.argv[2]))
first, count, dialect = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def q(value):
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    text = value.replace("'", "''")
    if dialect == "mariadb":  # a backslash escapes there
        text = text.replace("\\", "\\\\")
    return "'" + text + "'"
texts = ["", "x" * 64, "y" * 300, "z" * 10000, "\t\r\n", "\u202eabc", "é" * 40, "a\u0001b",
         "'; DROP TABLE invoice; --", "4242424242424242", "%s%n", "\\", "🙂" * 20]
currencies = ["", "usd", "EU", "EURO", "U$D", "€€€", "USD"]
if dialect == "sqlite":
    dates = ["", "2026-13-45", "abc", "2026-02-30", "99999-01-01", "2026/01/01", None, "2026-01-01"]
    amounts = ["abc", 1.5, -1, 2 ** 63 - 1, 2 ** 64, 9.9e30, "", None, 0, 100]
    currencies.append(None)
    print("PRAGMA ignore_check_constraints = ON; PRAGMA foreign_keys = OFF; BEGIN;")
    insert, ignore = "INSERT OR IGNORE INTO", ""
elif dialect == "postgresql":
    dates = ["0001-01-01", "9999-12-31", "10000-01-01", "5874897-12-31", "4713-01-01 BC",
             "2026-02-28", None, "2026-01-01"]
    amounts = [-1, 2 ** 63 - 1, -2 ** 63, 0, 100, None]
    currencies.append(None)
    insert, ignore = "INSERT INTO", " ON CONFLICT DO NOTHING"
else:
    dates = ["0000-00-00", "2026-00-10", "2026-02-30", "1000-01-01", "9999-12-31", "0001-01-01",
             "2026-01-01"]
    amounts = [-1, 2 ** 63 - 1, -2 ** 63, 0, 100]
    print("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; SET SESSION check_constraint_checks = OFF;"
          " SET SESSION foreign_key_checks = 0;")
    insert, ignore = "INSERT IGNORE INTO", ""
for n in range(first, first + count):
    number = rng.choice(texts + ["FZ-%d" % n] * 4)
    print("%s client (client_id, client_number, name) VALUES (%d, %s, %s)%s;"
          % (insert, n, q(rng.choice(texts + ["CF-%d" % n] * 4)), q(rng.choice(texts)), ignore))
    print("%s matter (matter_id, matter_number, client_id, description) VALUES (%d, %s, %d, %s)%s;"
          % (insert, n, q(rng.choice(texts + ["MF-%d" % n] * 4)), n, q(rng.choice(texts)), ignore))
    total = rng.choice(amounts)
    print("%s invoice (invoice_id, invoice_number, matter_id, invoice_date, due_date,"
          " currency, total_minor, balance_minor, status) VALUES (%d, %s, %d, %s, %s, %s, %s, %s, %s)%s;"
          % (insert, n, q(number), n, q(rng.choice(dates)), q(rng.choice(dates)), q(rng.choice(currencies)),
             q(total), q(rng.choice(amounts)), q(rng.choice(["open", "open", "weird", "", None])), ignore))
if dialect == "sqlite":
    print("COMMIT;")
PY
}
# Run SQL of hostile_rows in the matter database: statements that the database itself
# refuses (a value its column type cannot hold) are skipped.
write_rows() {
    case $ML_DIALECT in
        sqlite) sqlite3 -batch -cmd ".timeout 10000" "$W/matter.db" >/dev/null ;;
        postgresql) psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -d "$MATTER_DATABASE" -q -X >/dev/null 2>&1 ;;
        mariadb) mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot --force "$MATTER_DATABASE" >/dev/null 2>&1 ;;
    esac
}
# What the firm's own schema would not check: the reference schema's checks come off.
case $ML_DIALECT in
    sqlite) relax="PRAGMA ignore_check_constraints = ON;" ;;
    postgresql)
        matter_sql "DO \$\$ DECLARE r record; BEGIN
            FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint WHERE contype IN ('c', 'f')
                AND conrelid IN ('client'::regclass, 'matter'::regclass, 'invoice'::regclass) LOOP
                EXECUTE format ('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
            END LOOP; END \$\$;
            ALTER TABLE invoice ALTER COLUMN invoice_date DROP NOT NULL, ALTER COLUMN currency DROP NOT NULL,
                ALTER COLUMN total_minor DROP NOT NULL, ALTER COLUMN balance_minor DROP NOT NULL,
                ALTER COLUMN status DROP NOT NULL;" >/dev/null || fail "dropping the checks"
        relax="" ;;
    mariadb)
        relax="SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; SET SESSION check_constraint_checks = OFF;
            SET SESSION foreign_key_checks = 0;" ;;
esac
# Rows that break only the link's rules (its dates and currencies), in what each engine holds.
case $ML_DIALECT in
    sqlite) bad_date1=2026-13-45 bad_date2=abc ;;
    postgresql) bad_date1=294277-01-01 bad_date2="4713-01-01 BC" ;;
    mariadb) bad_date1=0000-00-00 bad_date2=2026-00-10 ;;
esac
matter_sql "$relax
INSERT INTO client (client_id, client_number, name) VALUES (90001, 'CX-1', 'Link rules');
INSERT INTO matter (matter_id, matter_number, client_id, description) VALUES (90001, 'MX-1', 90001, 'm');
INSERT INTO invoice (invoice_id, invoice_number, matter_id, invoice_date, currency, total_minor, balance_minor, status)
    VALUES (90001, 'FX-1', 90001, '2026-01-01', 'usd', 100, 100, 'open'),
           (90002, 'FX-2', 90001, '$bad_date1', 'USD', 100, 100, 'open'),
           (90003, 'FX-3', 90001, '$bad_date2', 'USD', 100, 100, 'open');" >/dev/null || fail "writing the link-rule rows"
hostile_rows 100000 150 | write_rows
[ "$(matter_sql "SELECT COUNT(*) FROM invoice WHERE invoice_id >= 100000")" -gt 10 ] ||
    fail "too few hostile rows were written: $(matter_sql "SELECT COUNT(*) FROM invoice WHERE invoice_id >= 100000")"
start_core
start_agent
snapshot_complete() { [ "$(status_field complete)" = 1 ]; }
wait_for 60 "the snapshot to complete" snapshot_complete
# Changes: more hostile rows, and hostile updates of good ones.
hostile_rows 200000 150 | write_rows
if [ "$ML_DIALECT" = sqlite ]; then unreadable="'abc'"; else unreadable="-5"; fi
first_invoice=$(matter_sql "SELECT MIN(invoice_id) FROM invoice")
matter_sql "$relax UPDATE invoice SET balance_minor = $unreadable WHERE invoice_id = $first_invoice;" >/dev/null
# A good invoice changed into one the link cannot carry leaves the replica; fixed, it is back.
victim=$(matter_sql "SELECT invoice_number FROM invoice WHERE invoice_id < 90000 AND status = 'open' AND balance_minor > 0 ORDER BY invoice_id DESC LIMIT 1")
in_replica() { [ "$(core_sql "SELECT COUNT(*) FROM open_item WHERE firm_id = 'acme' AND invoice_number = '$victim'")" = "$1" ]; }
in_replica 1 || fail "invoice $victim is not in the replica"
matter_sql "$relax UPDATE invoice SET currency = 'usd' WHERE invoice_number = '$victim';" >/dev/null
wait_for 20 "invoice $victim with a lower-case currency to leave the replica" in_replica 0
grep -q "a changed matter-database row the link cannot carry (invoice id [0-9]*: item currency is not three upper-case letters) is removed" "$W/agent.log" ||
    fail "the agent did not say why the changed row left the replica"
matter_sql "UPDATE invoice SET currency = 'USD' WHERE invoice_number = '$victim';" >/dev/null
wait_for 20 "invoice $victim, fixed, to be back in the replica" in_replica 1
[ "$(grep -c "core asked for a snapshot" "$W/agent.log")" = 1 ] ||
    fail "the snapshot was asked for more than once: $(grep -c "core asked for a snapshot" "$W/agent.log")"
# What reached the replica is what the link may carry: ISO dates, ISO currencies, integers.
replica_rows() {
    # (A PostgreSQL store's column holds integers only.)
    local balance_type="typeof(balance_minor)"
    [ -z "$STORE_DATABASE" ] || balance_type="'integer'"
    core_sql "SELECT kind, length(invoice_number), invoice_date, COALESCE(due_date, ''), currency, $balance_type, length(client_number), length(matter_number) FROM open_item WHERE firm_id = 'acme'"
}
sleep 3
# The link-rule rows are not there at all: PostgreSQL's 4713 BC once came as 4713 AD, a valid
# date the check below would pass.
[ "$(core_sql "SELECT COUNT(*) FROM open_item WHERE firm_id = 'acme' AND source_id IN (90001, 90002, 90003)")" = 0 ] ||
    fail "a link-rule row reached the replica: $(core_sql "SELECT source_id, invoice_date, currency FROM open_item WHERE firm_id = 'acme' AND source_id IN (90001, 90002, 90003)")"
# No open invoice in the replica owes nothing or less.
[ "$(core_sql "SELECT COUNT(*) FROM open_item WHERE firm_id = 'acme' AND kind = 'I' AND balance_minor < 1")" = 0 ] ||
    fail "the replica holds an open invoice owing nothing: $(core_sql "SELECT source_id, balance_minor FROM open_item WHERE firm_id = 'acme' AND kind = 'I' AND balance_minor < 1")"
replica_rows >"$W/replica.txt" || fail "reading the replica"
python3 - "$W/replica.txt" <<'PY' || fail "the replica holds a row the link should not carry"
import datetime, re, sys
bad = []
for line in open(sys.argv[1]):
    # (Lengths, not the numbers: a number may hold a line break, which the firm's data may.)
    kind, number, date, due, currency, balance_type, client, matter = line.rstrip("\n").split("|")
    def iso(text):
        try:
            return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) and datetime.date.fromisoformat(text)
        except ValueError:
            return False
    # (An invoice without a date is carried: the contract orders it after the dated ones.)
    if kind == "I" and ((date and not iso(date)) or (due and not iso(due))):
        bad.append(("date", line))
    if not re.fullmatch(r"[A-Z]{3}", currency) or balance_type != "integer":
        bad.append(("currency or balance", line))
    if not (1 <= int(client) <= 63 and 1 <= int(matter) <= 63):
        bad.append(("identifier", line))
for what, line in bad[:10]:
    print("bad %s: %s" % (what, line.rstrip()[:200]), file=sys.stderr)
print("replica: %d rows checked, %d bad" % (sum(1 for _ in open(sys.argv[1])), len(bad)), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
# (The sample's invoices are those below 90000; the first of them was made unreadable above.)
good=$(matter_sql "SELECT COUNT(*) FROM invoice WHERE invoice_id < 90000 AND invoice_id > (SELECT MIN(invoice_id) FROM invoice) AND status = 'open' AND balance_minor > 0")
[ "$(core_sql "SELECT COUNT(*) FROM open_item WHERE firm_id = 'acme' AND kind = 'I' AND source_id < 90000")" = "$good" ] ||
    fail "good invoices are missing from the replica ($good in the matter database)"
kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent died"
kill -0 "$CORE_PID" 2>/dev/null || fail "the core died"
grep -q "skipped a matter-database row\|refused\|malformed" "$W/agent.log" "$W/core.log" ||
    fail "no hostile row was said to be skipped or refused"
log "the agent skipped $(grep -c "skipped a matter-database row" "$W/agent.log") rows; why:" \
    "$(grep -o "skipped a matter-database row.*): .*" "$W/agent.log" | sed 's/.*): //' | sort | uniq -c | tr -s ' \n' ' ')"
# The link still works: a payment on a good invoice posts once.
integer=
[ "$ML_DIALECT" != sqlite ] || integer="AND typeof(i.balance_minor) = 'integer'"
client=$(matter_sql "SELECT c.client_number FROM client c JOIN matter m ON m.client_id = c.client_id JOIN invoice i ON i.matter_id = m.matter_id WHERE i.invoice_id < 100000 AND i.status = 'open' AND i.balance_minor > 100 $integer AND i.invoice_id <> (SELECT MIN(invoice_id) FROM invoice) ORDER BY c.client_number LIMIT 1")
out=$(cli --json pay --firm acme --client "$client" --amount 1.00) || fail "pay refused: $out"
uuid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["posting_uuid"])')
wait_for 30 "the payment to post" posting_is "$uuid" posted
[ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$uuid'")" = 1 ] || fail "not one receipt"
check_books
log "PASS"
