#!/bin/bash
# dialects: sqlite
# The staff app's Payers pages end to end, in a real browser (tests/staff_payers.py) against
# real core, agent (SQLite matter database), SMTP server and matterlink-web processes: a
# billing member adds a payer, turns Login Access on through its confirmation (one welcome
# mail), associates a client found by a search by client name narrowed by a column filter;
# the payer sets a password from the mail, signs in and sees exactly that client's invoices,
# as "View as payer" does; removing the association removes them; an e-mail change of a
# payer with a login waits for its confirmation; a saved method is removed; a read-only
# member sees the pages without the buttons and gets 404 for a change posted anyway.
. "$ML_SOURCE/tests/lib_e2e.sh"

setup 3 12
start_smtp
portal_config
start_core
start_agent
wait_for 30 "the agent to be online" agent_online
wait_for 60 "the core to hold every open invoice" core_has_all_invoices

# The client to associate: the one with the most open invoices; the search text: a letter of
# its name that another client's name has too (so the column filter has work to do).
clients=$(matter_sql "SELECT c.client_number || '|' || c.name FROM client c ORDER BY c.client_number")
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number
    ORDER BY COUNT(*) DESC, client_number LIMIT 1")
expected=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client'
    ORDER BY invoice_number" | tr '\n' ' ')
query=$(python3 - "$client" "$clients" <<'PY'
import sys
target, rows = sys.argv[1], [line.split("|", 1) for line in sys.argv[2].splitlines()]
name = dict(rows)[target].lower()
others = [n.lower() for number, n in rows if number != target]
print(next(c for c in name if c.isalpha() and any(c in other for other in others)))
PY
) || fail "no search letter shared by two clients"
[ -n "$client" ] && [ -n "$expected" ] || fail "no client with open invoices"
# A client with money in trust, for a search of the trust ledgers.
trust_client=$(matter_sql "SELECT c.client_number FROM trust_entry t JOIN matter m ON m.matter_id = t.matter_id
    JOIN client c ON c.client_id = m.client_id ORDER BY c.client_number LIMIT 1")
[ -n "$trust_client" ] || fail "no client with a trust ledger"

# A billing and a read-only member (the operator may invite any role), and a payer with a
# saved method for the methods list.
cli --json staff invite --firm acme --email bea@example.com --name "Bea Billing" --role billing >/dev/null ||
    fail "invite billing"
cli --json staff invite --firm acme --email rae@example.com --name "Rae Reader" --role read >/dev/null ||
    fail "invite read"
bea=$(link_token bea@example.com staff/accept)
rae=$(link_token rae@example.com staff/accept)
quinn=$(cli --json payer add --firm acme --name "Quinn Carded" --email quinn@example.com |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["payer"]["payer_id"])') || fail "payer add"
cli --json method add "$quinn" --token tok_quinn_visa --brand visa --last4 4242 --expiry 12/2099 >/dev/null ||
    fail "method add"

start_web
HOME="$W" timeout 240 /usr/bin/python3 "$ML_SOURCE/tests/staff_payers.py" "http://127.0.0.1:$WEB_PORT" \
    "$bea" "$rae" "$query" "$client" "$expected" "$quinn" "$trust_client" "$W/mail" "$ML_BIN/screenshots" ||
    fail "the staff payers browser flow"

# One welcome mail per confirmation: the one confirmation sent one.
n=$(mails_where '"pat@example.com" in m["rcpt_tos"] and "/set-password?token=" in (m["body"] or "") and "reset" not in m["headers"].get("subject", "")')
[ "$n" = 1 ] || fail "one welcome mail to the payer, not $n"
# The e-mail change went to the new address for confirmation; the payer keeps the old one.
[ "$(mails_where '"pat.new@example.com" in m["rcpt_tos"] and "/confirm-email?token=" in (m["body"] or "")')" = 1 ] ||
    fail "the confirmation mail to the new address"
cli --json payer list --firm acme | grep -q '"pat@example.com"' || fail "the old address stays until confirmed"
# The read-only member's posts changed nothing; the audit names the billing member.
cli --json payer list --firm acme | grep -q 'Renamed by Rae' && fail "a read-only member's change went through"
cli --json staff audit --firm acme | grep -q 'association-add' || fail "association-add in the staff audit"
grep -q -e "$bea" -e "payer horse" "$W/web.log" && fail "a secret in the web's log"
log "PASS"
