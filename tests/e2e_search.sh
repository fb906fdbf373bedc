#!/bin/bash
# dialects: sqlite postgresql mariadb
# Staff searches run in the firm's own database over the agent's link: every criterion,
# filter and page finds exactly what the matter database holds, and hostile text finds
# nothing and harms nothing. An offline agent gives a fast, clear error.
. "$(dirname "$0")/lib_e2e.sh"
# 120 clients and 600 invoices: a one-letter fragment then matches hundreds of open invoices,
# so paging 50 at a time fills pages from PostgreSQL's walk of its search index and ends with
# a page that the walk cannot fill and a fetch answers (docs/contract.md 5.8).
setup 120 600
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices

# The source ids of a search's rows, sorted, one per line (all pages, 2 rows at a time
# when PAGE=2 is set).
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
    echo "$ids" | sed '/^$/d' | sort -n
}

# The same from the matter database itself: open invoices (with client name, matter number
# and description) matching a condition.
ITEMS="(SELECT i.invoice_id AS source_id, i.invoice_number, i.invoice_date, i.due_date,
    i.balance_minor, i.currency, c.client_number, c.name AS client_name, m.matter_number,
    m.description AS matter_description FROM invoice i JOIN matter m ON m.matter_id = i.matter_id
    JOIN client c ON c.client_id = m.client_id WHERE i.status = 'open' AND i.balance_minor > 0) o"
matter_ids() { matter_sql "SELECT source_id FROM $ITEMS WHERE $1" | sort -n; }

expect_same() { # what got expected
    [ "$2" = "$3" ] || fail "$1: search found [$(echo $2)], the matter database has [$(echo $3)]"
    [ -n "$3" ] || [ "${4:-}" = empty-ok ] || fail "$1: the case finds nothing, so it proves nothing"
    log "$1: $(echo "$3" | sed '/^$/d' | wc -l) rows, as in the matter database"
}

row=$(matter_sql "SELECT client_number || '|' || client_name || '|' || matter_number || '|' || matter_description || '|' || invoice_number FROM $ITEMS ORDER BY source_id LIMIT 1 OFFSET 7")
IFS='|' read -r client client_name matter description invoice <<<"$row"
client_lower=$(echo "$client" | tr 'A-Z' 'a-z')
name_part=$(echo "$client_name" | cut -c2-5 | tr 'a-z' 'A-Z')
name_sql=$(echo "$name_part" | tr 'A-Z' 'a-z')
word=$(echo "$description" | awk '{print $1}' | tr 'A-Z' 'a-z')
prefix=$(echo "$invoice" | cut -c1-9)

expect_same "client number, exact, any case" "$(search_ids --by client-number "$client_lower")" \
    "$(matter_ids "client_number = '$client'")"
expect_same "client name contains '$name_part'" "$(search_ids --by client-name "$name_part")" \
    "$(matter_ids "LOWER(client_name) LIKE '%$name_sql%'")"
expect_same "matter number, exact" "$(search_ids --by matter-number "$matter")" \
    "$(matter_ids "matter_number = '$matter'")"
expect_same "matter number, prefix" "$(search_ids --by matter-number --match prefix "${matter%?}")" \
    "$(matter_ids "matter_number LIKE '${matter%?}%'")"
expect_same "matter description contains '$word'" "$(search_ids --by matter-description "$word")" \
    "$(matter_ids "LOWER(matter_description) LIKE '%$word%'")"
expect_same "invoice number, exact" "$(search_ids --by invoice-number "$invoice")" \
    "$(matter_ids "invoice_number = '$invoice'")"
expect_same "invoice number, prefix '$prefix'" "$(search_ids --by invoice-number --match prefix "$prefix")" \
    "$(matter_ids "invoice_number LIKE '$prefix%'")"
expect_same "everything, two rows a page" "$(PAGE=2 search_ids --by client-name "$name_part")" \
    "$(matter_ids "LOWER(client_name) LIKE '%$name_sql%'")"

# The letter most client names (and most matter descriptions) hold: a search that matches
# hundreds of rows, paged 50 rows at a time.
for field in client_name matter_description; do
    if [ $field = client_name ]; then table=client column=name; else table=matter column=description; fi
    letter= holders=0
    for l in a e i o n r s t; do
        n=$(matter_sql "SELECT COUNT(*) FROM $table WHERE LOWER($column) LIKE '%$l%'")
        [ "$n" -le "$holders" ] || { letter=$l; holders=$n; }
    done
    expected=$(matter_ids "LOWER($field) LIKE '%$letter%'")
    [ "$(echo "$expected" | wc -l)" -gt 100 ] || fail "'$letter' in $field: too few rows to page"
    expect_same "$field contains '$letter' ($holders holders), 50 rows a page" \
        "$(PAGE=50 search_ids --by "$(echo $field | tr _ -)" "$letter")" "$expected"
done

# Column filters: invoice dates, balances (typed as money, compared in minor units), status.
expect_same "invoice dates in 2025" "$(search_ids --from 2025-01-01 --to 2025-12-31)" \
    "$(matter_ids "invoice_date BETWEEN '2025-01-01' AND '2025-12-31'")"
# A balance bound is an amount in one currency: rows in another never match it, whatever
# their minor units (one invoice in that range is moved to EUR for this).
euro=$(matter_sql "SELECT source_id FROM $ITEMS WHERE balance_minor BETWEEN 10000 AND 200000 ORDER BY source_id LIMIT 1")
matter_sql "UPDATE invoice SET currency = 'EUR' WHERE invoice_id = $euro" >/dev/null
expect_same "balance 100.00 to 2,000.00 (USD)" "$(search_ids --min 100.00 --max 2000.00)" \
    "$(matter_ids "balance_minor BETWEEN 10000 AND 200000 AND currency = 'USD'")"
expect_same "balance 100.00 to 2,000.00 EUR" "$(search_ids --min 100.00 --max 2000.00 --currency EUR)" \
    "$euro"
today=$(date -u +%Y-%m-%d)
expect_same "overdue" "$(search_ids --status overdue)" "$(matter_ids "due_date < '$today'")"
expect_same "current" "$(search_ids --status current)" \
    "$(matter_ids "due_date IS NULL OR due_date >= '$today'")" empty-ok
expect_same "overdue 2025 invoices of one client" \
    "$(search_ids --by client-number "$client" --status overdue --from 2025-01-01)" \
    "$(matter_ids "client_number = '$client' AND due_date < '$today' AND invoice_date >= '2025-01-01'")" empty-ok

# Case-insensitive means the same on every dialect for non-ASCII letters too (SQLite's own
# LOWER and LIKE fold only ASCII): one client renamed with German, Danish and Greek letters
# is found by its name typed in capitals and in small letters.
uclient=$(matter_sql "SELECT client_number FROM $ITEMS ORDER BY source_id LIMIT 1 OFFSET 20")
matter_sql "UPDATE client SET name = 'Müller Ærø Σοφία GmbH' WHERE client_number = '$uclient'" >/dev/null
for text in "MÜLLER ÆRØ" "müller ærø" "ΣΟΦΊΑ" "ller ærø σοφία g"; do
    expect_same "client name contains '$text'" "$(search_ids --by client-name "$text")" \
        "$(matter_ids "client_number = '$uclient'")"
done
expect_same "client name starts with 'mÜLLER'" \
    "$(search_ids --by client-name --match prefix "mÜLLER")" "$(matter_ids "client_number = '$uclient'")"

# Trust ledgers: by client number, one row per matter with trust entries.
trust_client=$(matter_sql "SELECT c.client_number FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id JOIN client c ON c.client_id = m.client_id ORDER BY t.trust_entry_id LIMIT 1")
expect_same "trust ledgers of $trust_client" "$(search_ids --trust --by client-number "$trust_client")" \
    "$(matter_sql "SELECT DISTINCT m.matter_id FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id JOIN client c ON c.client_id = m.client_id WHERE c.client_number = '$trust_client'" | sort -n)"

# Hostile text is a value, never SQL or a wildcard: it finds nothing and changes nothing.
invoices_before=$(matter_sql "SELECT COUNT(*) FROM invoice")
for text in "'; DROP TABLE invoice; --" '%' '_' '!' '[a]' "\\" '*' '?' '[' ']' '[!a]'; do
    for field in client-name client-number invoice-number matter-description; do
        for match in exact prefix contains; do
            out=$(cli --json search --firm acme --by "$field" --match "$match" "$text") ||
                fail "search for $text refused: $out"
            count=$(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
            [ "$count" = 0 ] || fail "$field $match '$text' found $count rows"
        done
    done
done
long=$(head -c 10240 /dev/zero | tr '\0' 'x')
out=$(cli --json search --firm acme --by client-name "$long" 2>&1) && fail "a 10 KB search was accepted"
echo "$out" | grep -q "longer than 255" || fail "no clear error for a 10 KB search: $out"
[ "$(matter_sql "SELECT COUNT(*) FROM invoice")" = "$invoices_before" ] || fail "the invoices changed"
log "hostile searches found nothing and changed nothing"

# Bad requests are refused before anything is sent.
for bad in "--by colour x" "--from 2025-13-01" "--min 1.234" "--limit 501" "--trust --by invoice-number 1"; do
    # shellcheck disable=SC2086
    if out=$(cli --json search --firm acme $bad 2>&1); then fail "accepted: search $bad"; fi
done

# An agent that is not connected gives a clear error at once, not a hang.
stop_agent
started=$(date +%s%N)
out=$(cli --json search --firm acme --by client-number "$client" 2>&1) && fail "a search without an agent succeeded"
elapsed=$((($(date +%s%N) - started) / 1000000))
echo "$out" | grep -q "agent" || fail "unclear error without an agent: $out"
[ "$elapsed" -lt 2000 ] || fail "the offline answer took $elapsed ms"
log "offline agent: '$out' after $elapsed ms"
log "PASS"
