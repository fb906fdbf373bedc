#!/bin/bash
# dialects: sqlite
# A copy of the core's store alone cannot pay a link. The payment-link e-mail waits in the
# outbox sealed under the outbox key, which lives beside the core's certificate, not in the
# store: neither the link's token nor any 20-character piece of it is in the store's files
# (database, WAL, journal), before or after sending, while the payer's e-mail carries the
# working token. Amounts in e-mails name their currency once ("3.00 USD", not "3.00 USD USD").
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_smtp
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
add_accounts

# keygen made the outbox key beside the certificate: 32 bytes, owner-only.
[ "$(stat -c '%a %s' "$W/outbox.key")" = "600 32" ] || fail "outbox key: $(stat -c '%a %s' "$W/outbox.key")"

invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE balance_minor >= 300 ORDER BY invoice_number LIMIT 1")
out=$(cli --json link create --firm acme --invoice "$invoice=3.00" --payer-name "Pat Doe" \
    --payer-email pat@example.com) || fail "link create: $out"
token=$(echo "$out" | json 'd["link"]["token"]')
[ ${#token} -ge 20 ] || fail "no token: $out"

# The token, and every 20-character piece of it, in none of the store's files.
store_holds_token() {
    python3 - "$token" "$W"/core.db* <<'PY'
import sys
token, paths = sys.argv[1].encode(), sys.argv[2:]
pieces = {token[i:i + 20] for i in range(len(token) - 19)}
found = [p for p in paths if any(piece in open(p, "rb").read() for piece in pieces)]
print(" ".join(found))
sys.exit(0 if found else 1)
PY
}
where=$(store_holds_token) && fail "the link's token is in the store: $where"
[ "$(sqlite3 "$W/core.db" "SELECT substr(body, 1, 8) FROM mail WHERE kind = 'payment_link'")" = "sealed1:" ] ||
    fail "the payment-link e-mail is not sealed in the outbox"
log "the token is in no store file (pending mail sealed)"

link_mailed() { [ "$(mails_where '"'"$token"'" in m["body"]')" = 1 ]; }
wait_for 20 "the payment link e-mail" link_mailed
[ "$(sqlite3 "$W/core.db" "SELECT state FROM mail WHERE kind = 'payment_link'")" = sent ] ||
    fail "the link e-mail is not marked sent"
where=$(store_holds_token) && fail "the link's token is in the store after sending: $where"
log "sent: the payer got the token, the store still holds none of it"

# The token from the e-mail pays the link.
mailed=$(python3 - "$W/mail" <<'PY'
import glob, json, os, re, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    m = json.load(open(path))
    found = re.search(r"payment code: ([0-9a-f]+)", m["body"])
    if found:
        print(found.group(1))
PY
)
[ "$mailed" = "$token" ] || fail "the e-mail's code '$mailed' is not the link's token"
out=$(echo "4242424242424242 04/2031 123" | cli --json link pay "$mailed" --card-stdin) ||
    fail "link pay with the mailed token: $out"

receipt_mailed() { [ "$(mails_where '"receipt" in m["headers"]["subject"]')" = 1 ]; }
wait_for 20 "the receipt e-mail" receipt_mailed
[ "$(mails_where '"3.00 USD" in m["headers"]["subject"] and "receipt" in m["headers"]["subject"]')" = 1 ] ||
    fail "the receipt's subject does not say 3.00 USD"
[ "$(mails_where '"3.00 USD" in m["body"]')" = 2 ] || fail "the link and the receipt do not both say 3.00 USD"
[ "$(mails_where '"USD USD" in m["body"] or "USD USD" in m["headers"]["subject"]')" = 0 ] ||
    fail "an e-mail names the currency twice: $(grep -l 'USD USD' "$W"/mail/*.json)"
where=$(store_holds_token) && fail "the link's token is in the store after payment: $where"
log "paid with the mailed token; amounts name their currency once"
log "PASS"
