#!/bin/bash
# dialects: sqlite
# The payer portal's first increment end to end, in a real browser (tests/web_flow.py)
# against real core, agent, SMTP server and matterlink-web processes: staff turn login
# access on, the welcome mail's link sets the password, the payer signs in and sees exactly
# the invoices of their association, signs out; forgot-password answers the same for every
# address and mails a reset link only to the payer; a wrong CSRF token changes nothing; a
# staff e-mail change is confirmed on the portal's page and moves the sign-in.
. "$ML_SOURCE/tests/lib_e2e.sh"

setup 4 16
start_smtp
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }

client=$(matter_sql "SELECT client_number FROM client ORDER BY client_number LIMIT 1")
pat=$(cli --json payer add --firm acme --name "Pat Doe" --email pat@example.com | json 'd["payer"]["payer_id"]') ||
    fail "payer add"
cli --json association add "$pat" --client "$client" >/dev/null || fail "association"
expected=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client'" | tr '\n' ' ')
admin '{"op": "payer-access", "payer_id": '"$pat"', "action": "on", "staff": "alice"}' | grep -q '"ok":true' ||
    fail "access on"
token=$(link_token pat@example.com set-password)
[ ${#token} = 43 ] || fail "no set-password link in the welcome mail"

start_web
HOME="$W" timeout 90 /usr/bin/python3 "$ML_SOURCE/tests/web_flow.py" "http://127.0.0.1:$WEB_PORT" \
    "$token" pat@example.com "$expected" "Acme LLP" "$ML_BIN/screenshots" || fail "the browser flow"

# Staff change Pat's address: the confirmation link's page shows a button, and confirming
# moves the sign-in to the new address.
out=$(admin '{"op": "payer-edit", "payer_id": '"$pat"', "email": "pat.new@example.com", "staff": "alice"}')
echo "$out" | grep -q '"ok":true' || fail "e-mail change: $out"
wait_for 20 "the confirmation mail" output_is 1 mails_where '"pat.new@example.com" in m["rcpt_tos"] and "confirm-email" in (m["body"] or "")'
python3 - "$W/mail" "$WEB_PORT" <<'PY' || fail "the e-mail confirmation pages"
import glob, http.client, json, os, re, sys, urllib.parse
token = None
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    hit = re.search(r"/confirm-email\?token=([A-Za-z0-9_-]{43})", json.load(open(path))["body"] or "")
    token = hit.group(1) if hit else token
assert token, "no confirmation link"
def request(method, path, body=None, cookie=None):
    connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response, response.read().decode()
response, page = request("GET", "/confirm-email?token=" + token)
assert response.status == 200 and "Confirm your e-mail address" in page and "Acme LLP" in page, page
form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
cookie = "ml_form=" + form_token
response, page = request("POST", "/confirm-email", urllib.parse.urlencode({"token": token}), cookie)
assert response.status == 403, "confirmation without the form token"
body = urllib.parse.urlencode({"form_token": form_token, "token": token})
response, page = request("POST", "/confirm-email", body, cookie)
assert response.status == 200 and "E-mail address confirmed" in page, page
response, page = request("POST", "/confirm-email", body, cookie)
assert response.status == 410, "the confirmation link worked twice"
for email, expected in [("pat.new@example.com", 303), ("pat@example.com", 200)]:
    body = urllib.parse.urlencode({"form_token": form_token, "email": email,
                                   "password": "correct horse battery"})
    response, page = request("POST", "/sign-in", body, cookie)
    assert response.status == expected, (email, response.status)
PY
log "the e-mail change is confirmed through the portal; sign-in moved to the new address"

# Forgot-password mailed a reset link to Pat, and nothing to the unknown address.
wait_for 20 "the reset mail" output_is 1 mails_where '"pat@example.com" in m["rcpt_tos"] and "reset" in m["headers"]["subject"].lower()'
[ "$(mails_where '"nobody@example.com" in m["rcpt_tos"]')" = 0 ] || fail "mail to an unknown address"
# The web logged no token and no password.
grep -q -e "$token" -e "correct horse" "$W/web.log" && fail "a secret in the web's log"
log "PASS"
