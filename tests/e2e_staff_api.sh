#!/bin/bash
# dialects: sqlite
# Staff accounts end to end through the core's API socket, as matterlink-web uses it (real core
# and agent on SQLite, real SMTP server): the operator invites a firm's first administrator
# (matterlink staff invite); the invitation's link enrols a second factor, and an administrator
# cannot sign in without it; a replayed TOTP code is refused; the administrator invites a
# billing and a read user; a read user gets "not found" for billing ops; a user of one firm
# gets "not found" for another firm's payer, posting and schedule by id; a staff member's
# search runs over the API socket; the audit trail names the staff member.
. "$(dirname "$0")/lib_e2e.sh"
setup 4 16
# A second firm, so one firm's staff can try the other's objects (it needs no agent).
"$ML_BIN/matterlink-agent" keygen --out "$W/beta.cert" >/dev/null || fail "beta keygen"
"$ML_BIN/matterlink-core" register-agent -c "$W/core.cfg" --firm beta --name "Beta LLP" \
    --cert "$W/beta.cert" >/dev/null || fail "register beta"
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
add_accounts
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }
api() { "$ML_BIN/ml_api_client" "ipc://$W/api.sock" "$1"; }
# The TOTP code of a base32 secret now (+ seconds), as an authenticator app computes it.
totp() {
    python3 - "$1" "${2:-0}" <<'PY'
import base64, hashlib, hmac, struct, sys, time
secret = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
mac = hmac.new(secret, struct.pack(">Q", int((time.time() + int(sys.argv[2])) // 30)), hashlib.sha1).digest()
offset = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000))
PY
}
error_of() { json 'd.get("error", "ok")'; }

# The operator invites Acme's first administrator; the link proposes a second factor.
out=$(cli staff invite --firm acme --email ann@acme.test --name "Ann Admin" --role admin) ||
    fail "staff invite: $out"
token=$(link_token ann@acme.test staff/accept)
[ ${#token} = 43 ] || fail "no link in the invitation"
sqlite3 "$W/core.db" "SELECT digest FROM staff_token" | grep -q "$token" && fail "a token is in the store"
out=$(api '{"op": "staff-token", "token": "'"$token"'"}')
[ "$(echo "$out" | json 'd["totp_required"]')" = True ] || fail "staff-token: $out"
secret=$(echo "$out" | json 'd["totp_secret"]')
echo "$out" | json 'd["totp_uri"]' | grep -q "^otpauth://totp/matterlink:ann@acme.test?secret=$secret" ||
    fail "totp_uri: $out"
sqlite3 "$W/core.db" "SELECT totp_sealed FROM staff_token" | grep -q "$secret" && fail "the TOTP secret is in the store"
out=$(api '{"op": "staff-accept", "token": "'"$token"'", "password": "correct horse admin"}')
[ "$(echo "$out" | json 'd["totp_required"]')" = True ] || fail "an admin accepted without a code: $out"
out=$(api '{"op": "staff-accept", "token": "'"$token"'", "password": "correct horse admin", "totp_code": "'"$(totp "$secret")"'"}')
[ "$(echo "$out" | json 'len(d["recovery_codes"])')" = 10 ] || fail "staff-accept: $out"
log "the invitation's link enrolled Ann's second factor"

# No session without the second factor; a replayed code is refused.
sign_in() { api '{"op": "staff-sign-in", "email": "'"$1"'", "password": "'"$2"'"'"${3:+, \"code\": \"$3\"}"'}'; }
out=$(sign_in ann@acme.test "correct horse admin")
[ "$(echo "$out" | json 'd["second_factor"]')" = True ] || fail "an admin signed in without a code: $out"
echo "$out" | grep -q staff_session && fail "a session without the second factor: $out"
code=$(totp "$secret" 30)
out=$(sign_in ann@acme.test "correct horse admin" "$code")
session=$(echo "$out" | json 'd["staff_session"]') || fail "sign-in with the code: $out"
csrf=$(echo "$out" | json 'd["csrf"]')
out=$(sign_in ann@acme.test "correct horse admin" "$code")
[ "$(echo "$out" | json 'd["second_factor"]')" = True ] && ! echo "$out" | grep -q staff_session ||
    fail "a replayed TOTP code was accepted: $out"
log "an admin needs the code to sign in; a replayed code is refused"

# Ann invites a billing user and a read user (with the CSRF token); they accept.
invite() {
    api '{"op": "staff-invite", "staff_session": "'"$session"'", "csrf": "'"$csrf"'", "email": "'"$1"'", "name": "'"$2"'", "role": "'"$3"'"}'
}
out=$(api '{"op": "staff-invite", "staff_session": "'"$session"'", "email": "x@acme.test", "name": "X", "role": "read"}')
[ "$(echo "$out" | json 'd["csrf"]')" = False ] || fail "an invitation without the CSRF token: $out"
for who in "bob@acme.test Bob_Biller billing" "rae@acme.test Rae_Reader read"; do
    set -- $who
    out=$(invite "$1" "${2/_/ }" "$3")
    [ "$(echo "$out" | json 'd["ok"]')" = True ] || fail "staff-invite $1: $out"
    out=$(api '{"op": "staff-accept", "token": "'"$(link_token "$1" staff/accept)"'", "password": "correct horse '"$3"'"}')
    [ "$(echo "$out" | json 'd["ok"]')" = True ] || fail "staff-accept $1: $out"
done
bob=$(sign_in bob@acme.test "correct horse billing" | json 'd["staff_session"] + " " + d["csrf"]') || fail "Bob's sign-in"
rae=$(sign_in rae@acme.test "correct horse read" | json 'd["staff_session"] + " " + d["csrf"]') || fail "Rae's sign-in"
bob_session=${bob% *} bob_csrf=${bob#* } rae_session=${rae% *} rae_csrf=${rae#* }

# Billing adds a payer; read sees it and gets "not found" for every billing op.
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES ORDER BY client_number LIMIT 1")
out=$(api '{"op": "payer-add", "staff_session": "'"$bob_session"'", "csrf": "'"$bob_csrf"'", "name": "Pat Doe", "email": "pat@example.com"}')
pat=$(echo "$out" | json 'd["payer"]["payer_id"]') || fail "payer-add by billing: $out"
[ "$(echo "$out" | json 'd["payer"]["firm_id"]')" = acme ] || fail "the payer is not Acme's: $out"
out=$(api '{"op": "payer-show", "staff_session": "'"$rae_session"'", "payer_id": '"$pat"'}')
[ "$(echo "$out" | json 'd["payer"]["name"]')" = "Pat Doe" ] || fail "payer-show by read: $out"
for request in '"op": "payer-add", "name": "Q", "email": "q@example.com"' \
    '"op": "pay", "client": "'"$client"'", "amount": "1.00"' \
    '"op": "payer-edit", "payer_id": '"$pat"', "name": "Z"' \
    '"op": "autopay-add", "payer_id": '"$pat"', "method_id": 1, "name": "M", "account": "OP-001", "frequency": "monthly", "first_date": "2099-01-01"' \
    '"op": "staff-list"' '"op": "staff-audit"'; do
    out=$(api '{'"$request"', "staff_session": "'"$rae_session"'", "csrf": "'"$rae_csrf"'"}')
    [ "$(echo "$out" | error_of)" = "not found" ] || fail "a read user ran {$request}: $out"
done
log "a read user gets 'not found' for billing and admin ops"

# Acme's posting (a staff payment by Bob) and schedule (the operator's), then a user of Beta.
out=$(api '{"op": "pay", "staff_session": "'"$bob_session"'", "csrf": "'"$bob_csrf"'", "client": "'"$client"'", "amount": "1.00"}')
posting=$(echo "$out" | json 'd["posting_uuid"]') || fail "pay by billing: $out"
method=$(admin '{"op": "method-add", "payer_id": '"$pat"', "token": "tok_e2e", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031}' |
    json 'd["method"]["method_id"]') || fail "method-add"
out=$(admin '{"op": "autopay-add", "payer_id": '"$pat"', "method_id": '"$method"', "name": "Monthly", "account": "OP-001", "frequency": "monthly", "first_date": "2099-01-01"}')
schedule=$(echo "$out" | json 'd["schedule"]["schedule_id"]') || fail "autopay-add: $out"
out=$(api '{"op": "autopay-show", "staff_session": "'"$rae_session"'", "schedule_id": '"$schedule"'}')
[ "$(echo "$out" | json 'd["ok"]')" = True ] || fail "autopay-show by Acme's read user: $out"
cli staff invite --firm beta --email bea@beta.test --name "Bea Beta" --role billing >/dev/null || fail "invite Bea"
api '{"op": "staff-accept", "token": "'"$(link_token bea@beta.test staff/accept)"'", "password": "correct horse beta"}' |
    grep -q '"ok":true' || fail "Bea's accept"
bea=$(sign_in bea@beta.test "correct horse beta" | json 'd["staff_session"] + " " + d["csrf"]') || fail "Bea's sign-in"
bea_session=${bea% *} bea_csrf=${bea#* }
for request in '"op": "payer-show", "payer_id": '"$pat" '"op": "posting", "posting_uuid": "'"$posting"'"' \
    '"op": "autopay-show", "schedule_id": '"$schedule" '"op": "resend", "posting_uuid": "'"$posting"'"' \
    '"op": "payer-edit", "payer_id": '"$pat"', "name": "Mallory"' '"op": "payer-list", "firm": "acme"' \
    '"op": "method-remove", "method_id": '"$method" '"op": "autopay-delete", "schedule_id": '"$schedule"; do
    out=$(api '{'"$request"', "staff_session": "'"$bea_session"'", "csrf": "'"$bea_csrf"'"}')
    [ "$(echo "$out" | error_of)" = "not found" ] || fail "Beta's user reached Acme's object {$request}: $out"
done
[ "$(cli --json payer show "$pat" | json 'd["payer"]["name"]')" = "Pat Doe" ] || fail "Beta's user changed Acme's payer"
out=$(api '{"op": "status", "staff_session": "'"$bea_session"'"}')
[ "$(echo "$out" | json '",".join(f["firm_id"] for f in d["firms"])')" = beta ] || fail "status for Beta: $out"
log "a user of one firm gets 'not found' for another firm's payer, posting and schedule"

# A staff member's search runs over the API socket (the agent answers).
out=$(api '{"op": "search", "staff_session": "'"$rae_session"'", "by": "client-number", "text": "'"$client"'"}')
[ "$(echo "$out" | json 'd["ok"] and len(d["items"]) > 0')" = True ] || fail "search by a staff member: $out"
log "a staff member's search answered over the API socket"

# The audit trail names who did what.
out=$(api '{"op": "staff-audit", "staff_session": "'"$session"'", "limit": 100}')
echo "$out" | json '"\n".join("%s|%s|%s" % (e["name"], e["op"], e["object"]) for e in d["entries"])' >"$W/audit.txt" ||
    fail "staff-audit: $out"
grep -q "^Bob Biller (#[0-9]*)|payer-add|payer_id=$pat\$" "$W/audit.txt" || fail "no audit of Bob's payer-add: $(cat "$W/audit.txt")"
grep -q "^Bob Biller (#[0-9]*)|pay|posting_uuid=$posting\$" "$W/audit.txt" || fail "no audit of Bob's payment: $(cat "$W/audit.txt")"
grep -q "^Ann Admin (#[0-9]*)|staff-invite|.*staff_id=" "$W/audit.txt" || fail "no audit of Ann's invitation"
grep -q "^operator|staff-invite|" "$W/audit.txt" || fail "no audit of the operator's invitation"
grep -q "Bea" "$W/audit.txt" && fail "Acme's audit shows Beta's staff"
cli staff audit --firm acme | grep -q "Bob Biller (#" || fail "matterlink staff audit: $(cli staff audit --firm acme)"
cli staff list --firm acme | grep -q "rae@acme.test" || fail "matterlink staff list"
log "the audit trail names the staff member"

# Sign-out ends the session.
api '{"op": "staff-sign-out", "staff_session": "'"$session"'", "csrf": "'"$csrf"'"}' | grep -q '"ok":true' || fail "sign-out"
out=$(api '{"op": "staff-session", "staff_session": "'"$session"'"}')
[ "$(echo "$out" | json 'd["session_ended"]')" = True ] || fail "the session outlived sign-out: $out"
log "PASS"
