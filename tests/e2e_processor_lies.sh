#!/bin/bash
# dialects: sqlite
# A card processor whose answers cannot be believed: it does the work (a charge, a refund, a
# void) and then answers about another amount, currency, account, charge, key or kind of
# operation, with a member of the wrong type, a status that disagrees with the HTTP status,
# duplicate members, or a body cut short (tests/processor_server.py --lie); its lookups lie
# the same way. The core believes none of it: while the lies go on, no operation settles
# otherwise than the processor made it (all are approved there: an answer that only lacks a
# member it need not have may still be believed); once the processor answers truly, every one
# settles as the processor made it. The books balance, and the processor's ledger (what it charged,
# refunded and voided) is the core's, cent for cent. ML_PROCESSOR_LIE_SEED picks the lies.
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_processor.sh"
. "$(dirname "$0")/lib_books.sh"
setup 6 30
SEED=${ML_PROCESSOR_LIE_SEED:-$(($(date +%s%N) / 1000 % 1000000))}
export ML_PROCESSOR_LIE_SEED=$SEED
log "seed $SEED (ML_PROCESSOR_LIE_SEED=$SEED repeats the lies)"
start_processor
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
add_accounts
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
read -r -a invoices <<<"$(matter_sql "SELECT o.invoice_number FROM $OPEN_INVOICES WHERE o.balance_minor > 5000 ORDER BY o.invoice_number LIMIT 7" | tr '\n' ' ')"
[ "${#invoices[@]}" = 7 ] || fail "the sample has not 7 invoices to pay"
charge() { # INVOICE AMOUNT: prints the charge's key (the core's answer may be "unknown")
    local out
    out=$(echo "4242424242424242 04/2031 123" | cli --json --timeout 8000 charge --firm acme \
        --invoice "$1=$2" --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin 2>>"$W/cli.err")
    echo "$out" | json "d['payment']['charges'][0]['charge_key']" 2>/dev/null || {
        log "FAIL: charge of $1: $out $(cat "$W/cli.err")" >&2
        kill -TERM $$
    }
}
# Four charges answered truly: approved, to be refunded and voided while the lies go on.
keys=()
for index in 0 1 2 3; do keys+=("$(charge "${invoices[$index]}" "1$index.00")"); done
[ "$(core_sql "SELECT COUNT(*) FROM charge WHERE status = 'approved'")" = 4 ] || fail "the four charges are not approved"
processor_control '{"lie": 100000}'
for index in 4 5 6; do charge "${invoices[$index]}" "2$index.00" >/dev/null; done
cli refund "${keys[0]}" --amount 5.00 >/dev/null 2>&1
cli refund "${keys[1]}" >/dev/null 2>&1
cli void "${keys[2]}" >/dev/null 2>&1
# The core asks again each second: three seconds of lies, and none of them believed.
sleep 3
[ "$(core_sql "SELECT COUNT(*) FROM charge WHERE status NOT IN ('pending', 'unknown', 'approved')")" = 0 ] ||
    fail "a charge settled on a lie: $(core_sql "SELECT charge_key, status, reason FROM charge")"
[ "$(core_sql "SELECT COUNT(*) FROM reversal WHERE status NOT IN ('pending', 'unknown', 'approved')")" = 0 ] ||
    fail "a refund or void settled on a lie: $(core_sql "SELECT reversal_key, kind, status, reason FROM reversal")"
unsettled=$(core_sql "SELECT (SELECT COUNT(*) FROM charge WHERE status IN ('pending', 'unknown'))
    + (SELECT COUNT(*) FROM reversal WHERE status IN ('pending', 'unknown'))")
lies=$(curl -sf "$PROCESSOR_URL/_test/stats" | json "d['requests']")
processor_control '{"lie": 0}'
wait_for 30 "every operation to settle once the processor answers truly" books_drained
check_books
# The processor's ledger is the core's: each key charged once; approved charges, amount for
# amount; refunded and voided as the core recorded.
curl -sf "$PROCESSOR_URL/_test/ledger" | python3 -c '
import json, sys
for c in json.load(sys.stdin)["charges"]:
    print("%s|%d|%d|%d|%d|%d" % (c["key"], c["made"], c["approved"], c["amount"], c["refunded"], c["voided"]))' |
    LC_ALL=C sort >"$W/ledger.txt" || fail "the processor's ledger"
awk -F'|' '$2 != 1' "$W/ledger.txt" | grep -q . && fail "keys charged more than once: $(awk -F'|' '$2 != 1' "$W/ledger.txt")"
awk -F'|' '$3 == 1 { print $1 "|" $4 "|" $5 "|" $6 }' "$W/ledger.txt" >"$W/processor_approved.txt"
core_sql "SELECT c.charge_key || '|' || c.amount_minor || '|'
        || (SELECT COALESCE(SUM(r.amount_minor), 0) FROM reversal r WHERE r.charge_key = c.charge_key AND r.kind = 'refund' AND r.status = 'approved')
        || '|' || (SELECT COUNT(*) FROM reversal r WHERE r.charge_key = c.charge_key AND r.kind = 'void' AND r.status = 'approved')
    FROM charge c WHERE c.status = 'approved'" | LC_ALL=C sort >"$W/core_approved.txt"
cmp -s "$W/processor_approved.txt" "$W/core_approved.txt" ||
    fail "the processor's ledger differs from the core's: $(diff "$W/processor_approved.txt" "$W/core_approved.txt")"
[ "$(wc -l <"$W/core_approved.txt")" = 7 ] || fail "not every charge approved: $(cat "$W/core_approved.txt")"
log "PASS ($lies processor requests, the lies among them; $unsettled of 6 operations unsettled while lied to; $BOOKS_RECEIPTS receipts, $BOOKS_REVERSALS reversals)"
