#!/bin/bash
# dialects: sqlite postgresql
# Property test end to end: random payments over random clients' open invoices. Every
# posting's allocations in the matter database sum exactly to its amount and never exceed
# an invoice's balance, and once every posting has applied the matter database's balances
# equal the core's, invoice by invoice.
. "$(dirname "$0")/lib_e2e.sh"
setup 20 200
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }

RANDOM=${ML_TEST_SEED:-1122}
log "seed ${ML_TEST_SEED:-1122}"
balances_before=$(matter_sql "SELECT invoice_number || ' ' || balance_minor FROM invoice" | sort)
uuids=""
for round in $(seq 1 30); do
    clients=$(matter_sql "SELECT DISTINCT client_number FROM $OPEN_INVOICES ORDER BY client_number")
    count=$(echo "$clients" | wc -l)
    [ "$count" -gt 0 ] || break
    client=$(echo "$clients" | sed -n "$((RANDOM % count + 1))p")
    # What the core says is available (balances minus postings not yet applied).
    available=$(cli --json open-items --firm acme --client "$client" | json 'sum(i["available_minor"] for i in d["items"])')
    [ "$available" -gt 0 ] || continue
    # Any amount from one cent to everything, weighted towards partial payments.
    amount_minor=$(((RANDOM * 32768 + RANDOM) % available + 1))
    [ $((RANDOM % 5)) = 0 ] && amount_minor=$available
    amount=$(printf '%d.%02d' $((amount_minor / 100)) $((amount_minor % 100)))
    out=$(cli --json pay --firm acme --client "$client" --amount "$amount") || fail "pay $amount for $client refused: $out"
    uuids="$uuids $(echo "$out" | json 'd["posting_uuid"]')"
done
log "$(echo $uuids | wc -w) random payments made"
for uuid in $uuids; do
    wait_for 60 "posting $uuid to be posted" posting_is "$uuid" posted
    amount=$(posting_field "$uuid" amount_minor)
    allocated=$(matter_sql "SELECT SUM(a.amount_minor) FROM receipt_allocation a JOIN receipt r ON r.receipt_id = a.receipt_id WHERE r.posting_uuid = '$uuid'")
    [ "$allocated" = "$amount" ] || fail "posting $uuid: allocations $allocated, amount $amount"
done
# No invoice was paid more than it owed: each one's payments are at most its old balance.
echo "$balances_before" >"$W/before.txt"
ours=$(echo $uuids | sed "s/\([^ ]*\)/'\1'/g; s/ /, /g")
matter_sql "SELECT i.invoice_number || ' ' || SUM(a.amount_minor) FROM invoice i JOIN receipt_allocation a ON a.invoice_id = i.invoice_id JOIN receipt r ON r.receipt_id = a.receipt_id WHERE r.posting_uuid IN ($ours) GROUP BY i.invoice_number" | sort >"$W/paid.txt"
python3 - "$W/before.txt" "$W/paid.txt" <<'PY' || fail "an invoice received more than its balance"
import sys
before = dict(line.split() for line in open(sys.argv[1]) if line.strip())
for line in open(sys.argv[2]):
    if line.strip():
        number, paid = line.split()
        assert int(paid) <= int(before[number]), (number, paid, before[number])
PY
wait_for 30 "the core's balances to equal the matter database's" replica_matches
log "PASS"
