#!/bin/bash
# dialects: sqlite
# The payer portal's first increment end to end, in a real browser (tests/web_flow.py)
# against real core, agent, SMTP server and matterlink-web processes: staff turn login
# access on, the welcome mail's link sets the password, the payer signs in and sees exactly
# the invoices of their association, signs out; forgot-password answers the same for every
# address and mails a reset link only to the payer; a wrong CSRF token changes nothing.
# Needs the core's api socket (core.cfg api/endpoint, docs/web.md): skipped (77) on a tree
# whose core has none yet.
. "$ML_SOURCE/tests/lib_e2e.sh"
if ! grep -q '"api/endpoint"' "$ML_SOURCE/core/ml_core_main.c" || [ ! -x "$ML_BIN/ml_api_client" ]; then
    log "SKIP: this core has no api socket yet"
    trap - EXIT
    rm -rf "$W"
    exit 77
fi
WEB_PID=
web_cleanup() {
    status=$?
    stop_process "$WEB_PID"
    (exit $status)
    cleanup
}
trap web_cleanup EXIT

setup 4 16
start_smtp
cat >>"$W/core.cfg" <<CFG
api
    endpoint = ipc://$W/api.sock
portal
    public_url = http://127.0.0.1:WEBPORT
CFG
WEB_PORT=$(free_port)
sed -i "s/WEBPORT/$WEB_PORT/" "$W/core.cfg"
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
wait_for 20 "the welcome mail" test "$(mails_where '"pat@example.com" in m["rcpt_tos"] and "set-password" in (m["body"] or "")')" = 1
token=$(python3 - "$W/mail" "$WEB_PORT" <<'PY'
import glob, json, os, re, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    hit = re.search(r"http://127\.0\.0\.1:" + sys.argv[2] + r"/set-password\?token=([A-Za-z0-9_-]{43})",
                    json.load(open(path))["body"] or "")
    if hit:
        print(hit.group(1))
PY
)
[ ${#token} = 43 ] || fail "no set-password link in the welcome mail"

cat >"$W/web.cfg" <<CFG
web
    listen = 127.0.0.1:$WEB_PORT
    core_endpoint = ipc://$W/api.sock
    core_timeout_ms = 5000
CFG
"$ML_BIN/matterlink-web" run -c "$W/web.cfg" --log-level info >"$W/web.log" 2>&1 &
WEB_PID=$!
deadline=$(($(date +%s) + 10))
until grep -q "serving the payer portal" "$W/web.log"; do
    kill -0 "$WEB_PID" 2>/dev/null || fail "matterlink-web did not start"
    [ "$(date +%s)" -ge "$deadline" ] && fail "matterlink-web did not start within 10 s"
    sleep 0.1
done
HOME="$W" timeout 90 /usr/bin/python3 "$ML_SOURCE/tests/web_flow.py" "http://127.0.0.1:$WEB_PORT" \
    "$token" pat@example.com "$expected" "Acme LLP" "$ML_BIN/screenshots" || fail "the browser flow"

# Forgot-password mailed a reset link to Pat, and nothing to the unknown address.
wait_for 20 "the reset mail" test "$(mails_where '"pat@example.com" in m["rcpt_tos"] and "reset" in m["headers"]["subject"].lower()')" = 1
[ "$(mails_where '"nobody@example.com" in m["rcpt_tos"]')" = 0 ] || fail "mail to an unknown address"
# The web logged no token and no password.
grep -q -e "$token" -e "correct horse" "$W/web.log" && fail "a secret in the web's log"
log "PASS"
