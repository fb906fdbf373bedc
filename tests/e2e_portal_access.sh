#!/bin/bash
# dialects: sqlite
# Login access end to end, through the core's API socket as matterlink-web uses it: staff turn
# access on, the welcome mail (read from a real SMTP server) carries a single-use link, the
# payer sets a password and signs in, and sees only the invoices their associations allow;
# another payer sees only theirs; a payer's session reaches no operator op; sign-out ends the
# session. Pressing "on" again invalidates the earlier link; a reset mails a new link and the
# new password works; delete ends the login and keeps the payer and the associations.
. "$(dirname "$0")/lib_e2e.sh"
setup 4 16
start_smtp
cat >>"$W/core.cfg" <<CFG
api
    endpoint = ipc://$W/api.sock
portal
    public_url = https://pay.acme.test
CFG
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
wait_for 20 "the agent's session" agent_online
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }
api() { "$ML_BIN/ml_api_client" "ipc://$W/api.sock" "$1"; }
case "$(stat -c %a "$W/api.sock")" in ?00) ;; *) false ;; esac || fail "the API socket is not owner-only: $(stat -c '%a' "$W/api.sock")"

# Pat pays for one client, Sam for one invoice of another client.
client_a=$(matter_sql "SELECT client_number FROM client ORDER BY client_number LIMIT 1")
client_b=$(matter_sql "SELECT client_number FROM client ORDER BY client_number DESC LIMIT 1")
invoice_b=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client_b' ORDER BY invoice_number LIMIT 1")
pat=$(cli --json payer add --firm acme --name "Pat Doe" --email pat@example.com | json 'd["payer"]["payer_id"]') || fail "payer add"
sam=$(cli --json payer add --firm acme --name "Sam Roe" --email sam@example.com | json 'd["payer"]["payer_id"]') || fail "payer add"
cli --json association add "$pat" --client "$client_a" >/dev/null || fail "client association"
cli --json association add "$sam" --invoice "$invoice_b" >/dev/null || fail "invoice association"

# The token of the newest mail of a kind to an address (the link's query value).
mail_token() {
    python3 - "$W/mail" "$1" "$2" <<'PY'
import glob, json, os, re, sys
found = []
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    m = json.load(open(path))
    hit = re.search(r"https://pay\.acme\.test/" + sys.argv[3] + r"\?token=([A-Za-z0-9_-]{43})\b", m["body"] or "")
    if hit and sys.argv[2] in [r.lower() for r in m["rcpt_tos"]]:
        found.append((os.path.getmtime(path), path, hit.group(1)))
print(sorted(found)[-1][2] if found else "")
PY
}
mails_to() { mails_where '"'"$1"'" in m["rcpt_tos"] and "'"$2"'" in (m["body"] or "")'; }

# Access on: a welcome mail with a set-password link. Pressed again: a new link, the first dies.
out=$(admin '{"op": "payer-access", "payer_id": '"$pat"', "action": "on", "staff": "alice"}')
[ "$(echo "$out" | json 'd["access"]["state"]')" = invited ] || fail "access on: $out"
wait_for 20 "the welcome mail" output_is 1 mails_to pat@example.com set-password
first=$(mail_token pat@example.com set-password)
[ ${#first} = 43 ] || fail "no link in the welcome mail"
out=$(cli payer access on "$pat") || fail "payer access on (CLI): $out"
echo "$out" | grep -q "1 earlier link no longer works" || fail "the CLI does not say the earlier link died: $out"
cli payer show "$pat" | grep -q "portal login: *invited" || fail "payer show: $(cli payer show "$pat")"
wait_for 20 "the second welcome mail" output_is 2 mails_to pat@example.com set-password
token=$(mail_token pat@example.com set-password)
[ "$token" != "$first" ] || fail "the second mail has the first link"
out=$(api '{"op": "portal-token", "token": "'"$first"'"}')
[ "$(echo "$out" | json 'd["ok"]')" = False ] || fail "the earlier link still works: $out"
out=$(api '{"op": "portal-token", "token": "'"$token"'"}')
[ "$(echo "$out" | json 'd["purpose"] + " " + d["email_hint"]')" = "welcome p***@example.com" ] || fail "portal-token: $out"
# Only the digest is in the store.
sqlite3 "$W/core.db" "SELECT digest FROM portal_token" | grep -q "$token" && fail "a token is in the store"
log "welcome link mailed; pressing on again invalidated the first"

# Password, sign-in, invoices.
api '{"op": "portal-password-set", "token": "'"$token"'", "password": "correct horse"}' | grep -q '"ok":true' ||
    fail "password set"
out=$(api '{"op": "portal-password-set", "token": "'"$token"'", "password": "another horse"}')
[ "$(echo "$out" | json 'd["ok"]')" = False ] || fail "the link worked twice: $out"
sign_in() { api '{"op": "portal-sign-in", "email": "'"$1"'", "password": "'"$2"'", "client": "127.0.0.1"}'; }
out=$(sign_in pat@example.com "wrong horse")
[ "$(echo "$out" | json 'd["error"]')" = "the e-mail address or the password is not right" ] || fail "wrong password: $out"
out=$(sign_in nobody@example.com "correct horse")
[ "$(echo "$out" | json 'd["error"]')" = "the e-mail address or the password is not right" ] || fail "unknown e-mail: $out"
out=$(sign_in pat@example.com "correct horse")
session=$(echo "$out" | json 'd["session"]') || fail "sign-in: $out"
csrf=$(echo "$out" | json 'd["csrf"]')
out=$(api '{"op": "portal-invoices", "session": "'"$session"'"}')
# Rows are arrays of item_columns.
seen=$(echo "$out" | json '" ".join(sorted(i[d["item_columns"].index("invoice_number")] for i in d["items"]))')
expected=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client_a' ORDER BY invoice_number" | tr '\n' ' ' | sed 's/ $//')
[ -n "$seen" ] && [ "$seen" = "$expected" ] || fail "Pat sees '$seen', not the invoices of $client_a: '$expected'"
echo "$out" | grep -q ar_message && fail "the A/R message reached a payer"
log "Pat signed in and sees the invoices of $client_a only"

# Sam sees only Sam's invoice.
admin '{"op": "payer-access", "payer_id": '"$sam"', "action": "on"}' >/dev/null
wait_for 20 "Sam's welcome mail" output_is 1 mails_to sam@example.com set-password
api '{"op": "portal-password-set", "token": "'"$(mail_token sam@example.com set-password)"'", "password": "sams secret"}' |
    grep -q '"ok":true' || fail "Sam's password"
sam_session=$(sign_in sam@example.com "sams secret" | json 'd["session"]') || fail "Sam's sign-in"
seen=$(api '{"op": "portal-invoices", "session": "'"$sam_session"'"}' | json '" ".join(i[d["item_columns"].index("invoice_number")] for i in d["items"])')
[ "$seen" = "$invoice_b" ] || fail "Sam sees '$seen', not $invoice_b"

# A payer's session reaches no operator op; without a session no payer op.
for request in '"op": "payer-list"' '"op": "payer-show", "payer_id": '"$sam" '"op": "status"' \
    '"op": "payer-access", "payer_id": '"$sam"', "action": "off"'; do
    out=$(api '{'"$request"', "session": "'"$session"'"}')
    [ "$(echo "$out" | json 'd["error"]')" = "not found" ] || fail "a payer's session ran {$request}: $out"
done
out=$(api '{"op": "portal-invoices"}')
[ "$(echo "$out" | json 'd["error"]')" = "not found" ] || fail "anonymous portal-invoices: $out"
log "Sam sees only $invoice_b; payer sessions reach no operator op"

# Sign-out needs the CSRF token, then ends the session.
out=$(api '{"op": "portal-sign-out", "session": "'"$session"'"}')
[ "$(echo "$out" | json 'd["csrf"]')" = False ] || fail "sign-out without CSRF: $out"
api '{"op": "portal-sign-out", "session": "'"$session"'", "csrf": "'"$csrf"'"}' | grep -q '"ok":true' || fail "sign-out"
out=$(api '{"op": "portal-invoices", "session": "'"$session"'"}')
[ "$(echo "$out" | json 'd["session_ended"]')" = True ] || fail "the session outlived sign-out: $out"

# Reset: a reset link; the new password works, the old one no longer.
session=$(sign_in pat@example.com "correct horse" | json 'd["session"]') || fail "sign-in again"
admin '{"op": "payer-access", "payer_id": '"$pat"', "action": "reset"}' | grep -q '"ok":true' || fail "reset"
wait_for 20 "the reset mail" output_is 1 mails_where '"pat@example.com" in m["rcpt_tos"] and "reset" in m["headers"]["subject"]'
api '{"op": "portal-password-set", "token": "'"$(mail_token pat@example.com set-password)"'", "password": "brand new horse"}' |
    grep -q '"ok":true' || fail "password set by the reset link"
[ "$(api '{"op": "portal-session", "session": "'"$session"'"}' | json 'd["ok"]')" = False ] ||
    fail "a session outlived the password change"
[ "$(sign_in pat@example.com "correct horse" | json 'd["ok"]')" = False ] || fail "the old password still works"
session=$(sign_in pat@example.com "brand new horse" | json 'd["session"]') || fail "the new password"
log "sign-out ended the session; reset mailed a link and the new password works"

cli payer show "$pat" | grep -q "portal login: *active" || fail "payer show: $(cli payer show "$pat")"

# Staff change Sam's address: the login stays Sam's; the new address confirms by a link, the
# old one is told, and sign-in moves to the new address only once it is confirmed.
out=$(admin '{"op": "payer-edit", "payer_id": '"$sam"', "email": "sam.new@example.com", "staff": "alice"}')
[ "$(echo "$out" | json 'd["email_change"]["pending_email"]')" = sam.new@example.com ] || fail "e-mail change: $out"
wait_for 20 "the confirmation mail" output_is 1 mails_to sam.new@example.com confirm-email
wait_for 20 "the notice to the old address" output_is 1 mails_where '"sam@example.com" in m["rcpt_tos"] and "being changed" in (m["body"] or "")'
[ "$(sign_in sam@example.com "sams secret" | json 'd["ok"]')" = True ] || fail "the old address stopped working before confirmation"
api '{"op": "portal-email-confirm", "token": "'"$(mail_token sam.new@example.com confirm-email)"'"}' | grep -q '"ok":true' ||
    fail "e-mail confirmation"
[ "$(api '{"op": "portal-session", "session": "'"$sam_session"'"}' | json 'd["ok"]')" = False ] ||
    fail "a session outlived the e-mail change"
[ "$(sign_in sam.new@example.com "sams secret" | json 'd["payer"]["payer_id"]')" = "$sam" ] || fail "the new address does not sign in"
[ "$(sign_in sam@example.com "sams secret" | json 'd["ok"]')" = False ] || fail "the old address still signs in"
log "an e-mail change kept Sam's login: confirmed by a link to the new address, the old one told"

# Delete: the login and its sessions go; the payer and the associations stay.
cli payer access delete "$pat" >/dev/null || fail "delete"
[ "$(api '{"op": "portal-session", "session": "'"$session"'"}' | json 'd["ok"]')" = False ] ||
    fail "a session outlived delete"
[ "$(sign_in pat@example.com "brand new horse" | json 'd["ok"]')" = False ] || fail "signed in after delete"
out=$(admin '{"op": "payer-show", "payer_id": '"$pat"'}')
[ "$(echo "$out" | json 'd["payer"]["access"]["state"] + " " + str(len(d["payer"]["associations"]))')" = "deleted 1" ] ||
    fail "after delete: $out"
events=$(admin '{"op": "portal-audit", "payer_id": '"$pat"'}' | json '" | ".join(e["event"] for e in d["events"])')
for event in "access on" "password set" "sign-in" "sign-in failed" "sign-out" "access reset" "access delete"; do
    echo " | $events | " | grep -q " | $event | " || fail "no '$event' in the audit: $events"
done
cli payer audit "$pat" | grep -q "access delete" || fail "payer audit: $(cli payer audit "$pat")"
log "delete ended the login, kept the payer and the association; the audit has it all"
log "PASS"
