# The contract tests' shared part (sourced by tests/contract_{sqlite,postgresql,mariadb}.sh,
# which define q, apply, fingerprint and the rest per dialect): the check counters, the
# postings as the agent sends them, and the checks every dialect makes the same way.
# shellcheck shell=sh disable=SC2034,SC2154 # variables shared with the sourcing script

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

uuid() {
    printf '00000000-0000-4000-8000-%012d' "$1"
}

# posting UUID ACCOUNT CLIENT CURRENCY AMOUNT ALLOCATIONS
posting() {
    printf '{"posting_uuid":"%s","received_on":"2026-11-22","account_number":"%s","client_number":"%s",' "$1" "$2" "$3"
    printf '"payer_name":"Pat Payer","payer_email":"pat@example.com","currency":"%s","amount_minor":%s,' "$4" "$5"
    printf '"ar_message":"Thank you","processor_txn":"txn_%s","allocations":[%s]}' "$1" "$6"
}

# reversal UUID ORIGINAL ACCOUNT CLIENT CURRENCY AMOUNT ALLOCATIONS: a refund, void or chargeback of the
# posting ORIGINAL (its lines say what each takes back).
reversal() {
    posting "$1" "$3" "$4" "$5" "$6" "$7" | sed "s/^{/{\"reverses\":\"$2\",/"
}

inv() { printf '{"kind":"invoice","invoice_number":"%s","amount_minor":%s}' "$1" "$2"; }

trust() { printf '{"kind":"trust","matter_number":"%s","amount_minor":%s}' "$1" "$2"; }

# reject CODE JSON: the apply must fail with "ML001 CODE" and leave everything as it was.
reject() {
    checks=$((checks + 1))
    before=$(fingerprint)
    if apply "$2"; then
        fail "ML001 $1: posting was accepted"
    elif ! grep -Eq "${ml001_error}ML001 $1([^a-z_]|\$)" "$tmp/err"; then
        fail "ML001 $1: wrong error" "$(cat "$tmp/err")"
    fi
    expect "ML001 $1 writes nothing" "$before" "$(fingerprint)"
}

# Sets $id to a fresh posting UUID (a function called as $(...) could not advance the counter).
nu() { n=$((n + 1)); id=$(uuid $n); }

# fresh: sets c_no, i_id, i_no and i_total to an open, unpaid invoice of at least $100 not used yet here.
fresh() {
    row=$(q "SELECT c.client_number, i.invoice_id, i.invoice_number, i.total_minor FROM invoice AS i
             JOIN matter AS m USING (matter_id) JOIN client AS c USING (client_id)
             WHERE i.status = 'open' AND i.balance_minor = i.total_minor AND i.total_minor >= 10000
               AND i.invoice_id NOT IN ($used) ORDER BY i.invoice_id LIMIT 1")
    IFS='|' read -r c_no i_id i_no i_total <<EOF2
$row
EOF2
    used="$used,$i_id"
}
