#!/bin/bash
# dialects: sqlite mariadb postgresql
# The search index (docs/contract.md 5.8; SQLite's and MariaDB's since contract version 4)
# changes how a search finds its rows, never which: every search through the agent returns
# exactly the rows of the item views' own test, the one searches ran before the index
# (GLOB with each letter's case forms on SQLite, LOWER() LIKE LOWER() elsewhere), in the same
# order and pages. Cases: accents and other scripts in any case, wildcard characters typed as
# text, numbers in small letters and with non-ASCII letters (past the ASCII run SQLite's key
# bound covers), prefixes and infixes, a client with many matters paged, trust ledgers.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200

# Clients, matters and invoices whose text puts the matching rules to the test. Every client
# has one matter and two open invoices; CX-MANY has 30 matters of 3 invoices each, and trust
# entries on three of them.
sql="INSERT INTO client (client_number, name) VALUES
    ('CX-U1', 'Müller & Söhne GmbH'), ('cx-u2', 'MÜLLER Ærø Holdings'),
    ('CX-U3', 'Σοφία Παπαδοπούλου'), ('CX-U4', 'ΣΟΦΊΑ Legal'),
    ('CX-U5', 'Straße 100% Legal_Aid [NY] *star? O''Brien!'), ('CX-Ü6', 'Éclair Études'),
    ('cx-ü7', 'éclair ÉTUDES'), ('CX-MANY', 'Manifold Many Matters');"
n=0
for client in CX-U1 cx-u2 CX-U3 CX-U4 CX-U5 CX-Ü6 cx-ü7; do
    n=$((n + 1))
    case $n in
        1) desc='Divorce — Åsa Öberg' inv1=INVX-A1 inv2=invx-a2 ;;
        2) desc='DIVORCE — ÅSA ÖBERG' inv1=INVX-Ä3 inv2=invx-ä4 ;;
        3) desc='Probate of the Σοφία estate' inv1='INVX-%5' inv2=INVX-_6 ;;
        4) desc='probate: ΣΟΦΊΑ' inv1='INVX-[7]' inv2='INVX-*8?' ;;
        5) desc='100% of [the] Aid_fund' inv1=INVX-B9 inv2=INVX-B10 ;;
        6) desc='Étude Ärger' inv1=ÍNVX-11 inv2=ínvx-12 ;;
        *) desc='étude ärger' inv1=INVX-13 inv2=invx-14 ;;
    esac
    matter="MX-${client#*-}"
    [ $n = 2 ] && matter=mx-u2
    sql="$sql INSERT INTO matter (matter_number, client_id, description)
        SELECT '$matter', client_id, '$desc' FROM client WHERE client_number = '$client';"
    for inv in "$inv1" "$inv2"; do
        sql="$sql INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status)
            SELECT '$inv', matter_id, '2026-10-0$((n % 9 + 1))', '2026-11-30', 'USD', 5000, 2500, 'open'
            FROM matter WHERE matter_number = '$matter';"
    done
done
for m in $(seq 10 39); do
    sql="$sql INSERT INTO matter (matter_number, client_id, description)
        SELECT 'MX-M$m', client_id, 'Many matter $m' FROM client WHERE client_number = 'CX-MANY';"
    for i in 1 2 3; do
        sql="$sql INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status)
            SELECT 'INVX-M$m-$i', matter_id, '2026-0$i-1$((m % 10))', NULL, 'USD', 1000, 1000, 'open'
            FROM matter WHERE matter_number = 'MX-M$m';"
    done
done
for m in 11 22 33; do
    sql="$sql INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
        SELECT m.matter_id, b.bank_account_id, '2026-10-01', 10000, 'USD', 'retainer'
        FROM matter m, bank_account b WHERE m.matter_number = 'MX-M$m' AND b.account_number = 'TR-001';"
done
matter_sql "$sql" >/dev/null || fail "adding the test clients"

start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices

# The source ids of a search's rows through the agent, all pages (PAGE rows at a time).
search_ids() {
    local after=0 ids="" out
    while :; do
        out=$(cli --json search --firm acme --limit "${PAGE:-500}" --after "$after" "$@") ||
            fail "search $* refused: $out"
        ids="$ids$(echo "$out" | python3 -c 'import json,sys; print("\n".join(str(i["source_id"]) for i in json.load(sys.stdin)["items"]))')
"
        after=$(echo "$out" | python3 -c 'import json,sys; n = json.load(sys.stdin)["next"]; print(n if n else "")')
        [ -n "$after" ] || break
    done
    echo "$ids" | sed '/^$/d'
}

# The item view's own test as the agent wrote it before the index (docs/contract.md 5.8):
# the LIKE pattern with '!' escapes, or on SQLite the GLOB pattern of case forms; then the
# ids in source id order, straight from the matter database.
view_ids() { # view column match text
    local test
    test=$(python3 - "$ML_DIALECT" "$3" "$4" "$2" <<'PY'
import sys
dialect, match, text, column = sys.argv[1:]
def forms(c):
    lo, up = c.lower(), c.upper()
    return [f for f in (c, lo if len(lo) == 1 else c, up if len(up) == 1 else c)]
if dialect == 'sqlite':
    out = ''
    for c in text:
        f = forms(c)
        cls = sorted(set(f), key=f.index)
        out += '[' + ''.join(cls) + ']' if len(cls) > 1 or c in '*?[' else c
    star = '*'
    pattern = (star if match == 'contains' else '') + out + ('' if match == 'exact' else star)
    print("%s GLOB '%s'" % (column, pattern.replace("'", "''")))
else:
    out = ''.join('!' + c if c in '!%_[' else c for c in text)
    pattern = ('%' if match == 'contains' else '') + out + ('' if match == 'exact' else '%')
    print("LOWER(%s) LIKE LOWER('%s') ESCAPE '!'" % (column, pattern.replace("'", "''")))
PY
)
    matter_sql "SELECT source_id FROM $1 WHERE $test ORDER BY source_id"
}

cases=0
same() { # field match text [--trust] [expected row count]
    local field=$1 match=$2 text=$3 trust= want= view=ml_open_items got old arg
    for arg in "${@:4}"; do
        if [ "$arg" = --trust ]; then trust=--trust view=ml_trust_balances; else want=$arg; fi
    done
    got=$(search_ids ${trust:+--trust} --by "$field" --match "$match" "$text")
    old=$(view_ids $view "$(echo "$field" | tr - _)" "$match" "$text")
    [ "$got" = "$old" ] ||
        fail "$field $match '$text'${trust:+ (trust)}: search found [$(echo $got)], the view's own test [$(echo $old)]"
    count=$(echo "$got" | sed '/^$/d' | wc -l)
    [ -z "$want" ] || [ "$count" = "$want" ] || fail "$field $match '$text': $count rows, expected $want"
    cases=$((cases + 1))
}

# Names in any case, in Latin with accents and in Greek (final sigma, tonos); multi-letter
# mappings (ß to SS) are not applied, as the rules say.
same client-name contains "müller" 4
same client-name contains "MÜLLER ÆRØ" 2
same client-name contains "ΣΟΦΊΑ" 4
same client-name contains "σοφία παπαδοπούλου" 2
same client-name prefix "mÜller &" 2
same client-name exact "éclair études" 4
same client-name contains "STRASSE" 0
same client-name contains "straße 100%" 2
# Wildcard characters are text: they find names holding them, never every row.
same client-name contains "%" 2
same client-name contains "_aid [ny] *star?" 2
same client-name contains "o'brien!" 2
same client-name contains "*" 2
same client-name contains "?" 2
same client-name contains "[" 2
same client-name contains "many" 90
same client-name contains "ZZ-NOBODY" 0
# Descriptions.
same matter-description contains "åsa öberg" 4
same matter-description contains "ÉTUDE ÄR" 4
same matter-description prefix "probate"
same matter-description contains "100% of [the]" 2
# Numbers: exact and prefix in either case, past the ASCII run, and infixes.
same client-number exact "cx-u1" 2
same client-number exact "CX-U2" 2
same client-number exact "cx-ü6" 2
same client-number exact "CX-Ü7" 2
same client-number prefix "cx-u" 10
same client-number prefix "CX-" 104
same client-number prefix "cx-ü" 4
same client-number prefix "Cx-MaNy" 90
same client-number contains "x-Ü" 4
same client-number contains "x-m" 90
same matter-number exact "MX-U2" 2
same matter-number prefix "mx-m1" 30
same matter-number contains "m3" 30
same invoice-number exact "invx-a1" 1
same invoice-number exact "INVX-ä3" 1
same invoice-number exact "INVX-Ä4" 1
same invoice-number exact "invx-%5" 1
same invoice-number prefix "invx-_" 1
same invoice-number prefix "INVX-[" 1
same invoice-number prefix "invx-*8" 1
same invoice-number prefix "ínvx-1" 2
same invoice-number prefix "invx-m2" 30
same invoice-number prefix "INVX-B1" 1
same invoice-number contains "x-b" 2
same invoice-number contains "x-m13-" 3
# Trust ledgers of the client with many matters, by number and by name.
same client-number exact "cx-many" --trust 3
same client-name contains "manifold" --trust 3
same matter-number prefix "mx-m2" --trust 1
log "$cases searches found exactly the rows of the item views' own test"

# The client with many matters, paged 7 rows at a time: the same rows, in order, no page
# repeating or skipping one.
got=$(PAGE=7 search_ids --by client-number --match exact CX-MANY)
old=$(view_ids ml_open_items client_number exact CX-MANY)
[ "$got" = "$old" ] || fail "CX-MANY in pages of 7: [$(echo $got)] against [$(echo $old)]"
log "CX-MANY's 90 invoices in pages of 7: as in the view"

# The index follows the firm's writes: a renamed client, a renumbered invoice, a moved matter,
# a paid invoice and a new one are found (or not) at once.
matter_sql "UPDATE client SET client_number = 'CX-RENAMED', name = 'Renamed Ölmann' WHERE client_number = 'CX-U1';
    UPDATE invoice SET invoice_number = 'INVX-NEWNUM' WHERE invoice_number = 'invx-a2';
    UPDATE matter SET client_id = (SELECT client_id FROM client WHERE client_number = 'CX-U3') WHERE matter_number = 'MX-U4';
    UPDATE invoice SET balance_minor = 0, status = 'paid' WHERE invoice_number = 'INVX-M10-1';
    INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status)
        SELECT 'INVX-LATE', matter_id, '2026-11-01', NULL, 'USD', 700, 700, 'open' FROM matter WHERE matter_number = 'MX-M39';" \
    >/dev/null || fail "the firm's writes"
same client-number exact "cx-u1" 0
same client-number exact "cx-renamed" 2
same client-name contains "ölmann" 2
same invoice-number exact "invx-newnum" 1
same invoice-number exact "invx-a2" 0
same client-number exact "CX-U3" 4
same client-number exact "CX-U4" 0
same client-number exact "cx-many" 90
same invoice-number prefix "invx-late" 1
log "PASS ($cases searches)"
