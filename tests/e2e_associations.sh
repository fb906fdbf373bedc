#!/bin/bash
# dialects: sqlite postgresql mariadb
# A payer sees exactly what their associations allow, at client, matter and invoice level:
# the scope travels with each search into the firm's database and is checked again at the
# core. New invoices of an associated client or matter appear by themselves; an
# invoice-level association shows that invoice only; guessing invoice numbers finds nothing.
. "$(dirname "$0")/lib_e2e.sh"
setup 30 300
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices

json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
# The sorted source ids a payer sees (all pages), for invoices or, with --trust, ledgers.
view_ids() {
    local payer=$1 after=0 ids="" out
    shift
    while :; do
        out=$(cli --json view-as "$payer" --limit 3 --after "$after" "$@") || fail "view-as refused: $out"
        ids="$ids$(echo "$out" | json '"\n".join(str(i["source_id"]) for i in d["items"])')
"
        after=$(echo "$out" | json 'd["next"] or ""')
        [ -n "$after" ] || break
    done
    echo "$ids" | sed '/^$/d' | sort -n
}
open_ids() {
    matter_sql "SELECT i.invoice_id FROM invoice i JOIN matter m ON m.matter_id = i.matter_id
        JOIN client c ON c.client_id = m.client_id
        WHERE i.status = 'open' AND i.balance_minor > 0 AND ($1)" | sort -n
}

# Three clients with open invoices: the first associated whole, one matter of the second,
# one invoice of the third.
clients=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 2 ORDER BY client_number LIMIT 4")
client_a=$(echo "$clients" | sed -n 1p)
client_b=$(echo "$clients" | sed -n 2p)
client_c=$(echo "$clients" | sed -n 3p)
client_d=$(echo "$clients" | sed -n 4p)
matter_b=$(matter_sql "SELECT m.matter_number FROM matter m JOIN client c ON c.client_id = m.client_id JOIN invoice i ON i.matter_id = m.matter_id WHERE c.client_number = '$client_b' AND i.status = 'open' AND i.balance_minor > 0 ORDER BY m.matter_number LIMIT 1")
invoice_c=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client_c' ORDER BY invoice_number LIMIT 1")
log "client $client_a, matter $matter_b of $client_b, invoice $invoice_c of $client_c"

out=$(cli --json payer add --firm acme --name "Pat O'Brien" --email pat@example.com --phone "+1 555 0100") ||
    fail "payer add: $out"
payer=$(echo "$out" | json 'd["payer"]["payer_id"]')

# No associations yet: nothing to see.
[ -z "$(view_ids "$payer")" ] || fail "a payer without associations sees invoices"

cli --json association add "$payer" --client "$client_a" >/dev/null || fail "client association"
cli --json association add "$payer" --matter "$matter_b" >/dev/null || fail "matter association"
cli --json association add "$payer" --invoice "$invoice_c" >/dev/null || fail "invoice association"
out=$(cli --json association add "$payer" --client "$client_a" 2>&1) && fail "a duplicate association was accepted"
out=$(cli --json association add "$payer" --client "NO-SUCH-CLIENT" 2>&1) && fail "an association to nothing was accepted"
echo "$out" | grep -qi "no client" || fail "unclear error for an unknown client: $out"

expected=$(open_ids "c.client_number = '$client_a' OR m.matter_number = '$matter_b' OR i.invoice_number = '$invoice_c'")
[ "$(view_ids "$payer")" = "$expected" ] || fail "the payer's view is not exactly the associations"
log "the payer sees $(echo "$expected" | wc -l) invoices: exactly their associations"

# Guessing: searching as the payer for another client's invoice numbers finds nothing.
for guess in $(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number IN ('$client_d', '$client_b') ORDER BY invoice_number LIMIT 6"); do
    matter_of=$(matter_sql "SELECT m.matter_number FROM invoice i JOIN matter m ON m.matter_id = i.matter_id WHERE i.invoice_number = '$guess'")
    [ "$matter_of" = "$matter_b" ] && continue # that one is associated
    [ -z "$(view_ids "$payer" --by invoice-number "$guess")" ] || fail "guessing $guess shows it"
    [ -z "$(view_ids "$payer" --by invoice-number --match prefix "$guess")" ] || fail "guessing $guess by prefix shows it"
done
[ -z "$(view_ids "$payer" --by client-number "$client_d")" ] || fail "searching another client shows it"
[ -z "$(view_ids "$payer" --by client-name --match contains "%")" ] || fail "a wildcard widens the view"
log "guessed invoice numbers and other clients find nothing"

# New invoices: on the associated client and matter they appear by themselves; on the
# client of the invoice-level association they do not.
new_invoice() { # matter_number invoice_number
    matter_sql "INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status)
        SELECT '$2', matter_id, '2026-11-20', '2026-12-20', 'USD', 12345, 12345, 'open' FROM matter WHERE matter_number = '$1'"
}
matter_a=$(matter_sql "SELECT m.matter_number FROM matter m JOIN client c ON c.client_id = m.client_id WHERE c.client_number = '$client_a' ORDER BY m.matter_number LIMIT 1")
matter_c=$(matter_sql "SELECT m.matter_number FROM invoice i JOIN matter m ON m.matter_id = i.matter_id WHERE i.invoice_number = '$invoice_c'")
new_invoice "$matter_a" NEW-A-1
new_invoice "$matter_b" NEW-B-1
new_invoice "$matter_c" NEW-C-1
seen=$(cli --json view-as "$payer" --by invoice-number --match prefix NEW- --limit 10 | json '" ".join(sorted(i["invoice_number"] for i in d["items"]))')
[ "$seen" = "NEW-A-1 NEW-B-1" ] || fail "new invoices seen: '$seen', expected NEW-A-1 NEW-B-1"
log "new invoices of the associated client and matter appear; the invoice-level one stays alone"

# Trust ledgers: client and matter associations show theirs, an invoice association none.
expected_trust=$(matter_sql "SELECT DISTINCT m.matter_id FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id JOIN client c ON c.client_id = m.client_id WHERE c.client_number = '$client_a' OR m.matter_number = '$matter_b'" | sort -n)
[ "$(view_ids "$payer" --trust)" = "$expected_trust" ] || fail "the payer's trust view is wrong"

# Removing an association narrows the view at once; the e-mail can change without
# touching any of it.
association=$(cli --json association list "$payer" | json '[a["association_id"] for a in d["associations"] if a["level"] == "client"][0]')
cli --json association remove "$association" >/dev/null || fail "association remove"
expected=$(open_ids "m.matter_number = '$matter_b' OR i.invoice_number = '$invoice_c'")
[ "$(view_ids "$payer")" = "$expected" ] || fail "the view did not narrow after removing the client association"
cli --json payer edit "$payer" --email pat.obrien@example.com >/dev/null || fail "payer edit"
[ "$(view_ids "$payer")" = "$expected" ] || fail "changing the e-mail changed the view"
[ "$(cli --json payer show "$payer" | json 'len(d["payer"]["associations"])')" = 2 ] || fail "associations lost"
log "PASS"
