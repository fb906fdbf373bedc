#!/bin/bash
# The demo: a firm's matter database (SQLite, the embedded default) is linked to the
# payment core; a payment made at the core lands in the firm's books, once.
# Then the payer portal (matterlink-web) for one sample payer, and the staff app for one of
# the firm's billing staff: it prints both sign-ins.
# Installs what it needs, builds, runs, and stops everything it started: at once without a
# terminal (CI), or after Ctrl-C when run from one.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
sh scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
BIN=$ROOT/build
RUN=$ROOT/demo-run
rm -rf "$RUN"
mkdir -p "$RUN/agents"
CORE_PID=
AGENT_PID=
SMTP_PID=
WEB_PID=
stop_all() {
    for pid in $WEB_PID $AGENT_PID $CORE_PID $SMTP_PID; do
        # The mail server ends by the signal (143): not a failure of the demo.
        kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    return 0
}
trap stop_all EXIT
trap 'exit 130' INT TERM

heading() { printf '\n== %s\n\n' "$*"; }
matter() { sqlite3 -batch -noheader -cmd ".timeout 10000" -separator '|' "$RUN/matter.db" "$@"; }
staff() { "$BIN/matterlink" --admin "ipc://$RUN/admin.sock" "$@"; }
money() { python3 -c "import sys; v=int(sys.argv[1]); print(('-' if v < 0 else '') + '{:,}.{:02d} USD'.format(abs(v)//100, abs(v)%100))" "$1"; }
wait_until() {
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "demo: gave up waiting ($*); logs are in $RUN" >&2
    exit 1
}

heading "1. The firm's matter database"
sh sql/sample.sh --dialect sqlite --db "$RUN/matter.db" --clients 300 --invoices 3000 >/dev/null
echo "Created $RUN/matter.db with $(matter "SELECT COUNT(*) FROM client") clients," \
    "$(matter "SELECT COUNT(*) FROM matter") matters and $(matter "SELECT COUNT(*) FROM invoice") invoices," \
    "and installed the matterlink contract (version $(matter "SELECT contract_version FROM ml_contract"))."

heading "2. Keys, and the firm registered at the core"
"$BIN/matterlink-core" keygen --out "$RUN/core.cert" | sed -n 2p
"$BIN/matterlink-agent" keygen --out "$RUN/agent.cert" | sed -n 2p
CORE_KEY=$(sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$RUN/core.cert")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
# The portal on 8080 when it is free, else on any free port; its links point there.
WEB_PORT=8080
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 8080))' 2>/dev/null || WEB_PORT=$(free_port)
# The firm's mail (receipts, the portal's welcome mail) goes to a local SMTP server that
# keeps each message as a file in $RUN/mail: nothing leaves the machine.
mkdir -p "$RUN/mail"
/usr/bin/python3 tests/smtp_server.py --dir "$RUN/mail" >"$RUN/smtp.port" 2>"$RUN/smtp.log" &
SMTP_PID=$!
wait_until test -s "$RUN/smtp.port"
cat >"$RUN/core.cfg" <<CFG
core
    endpoint = tcp://127.0.0.1:$PORT
    certificate = $RUN/core.cert_secret
    agents = $RUN/agents
store
    connection = "sqlite:$RUN/core.db"
admin
    endpoint = ipc://$RUN/admin.sock
api
    #   The socket matterlink-web talks to (docs/portal-api.md).
    endpoint = ipc://$RUN/api.sock
portal
    public_url = http://127.0.0.1:$WEB_PORT
mail
    smtp_url = "smtp://127.0.0.1:$(cat "$RUN/smtp.port")"
    starttls = no
    from = payments@hartley.example
    from_name = "Hartley & Pryce LLP payments"
    poll_ms = 200
processor
    #   The deterministic test processor: no real money (docs/processor.md).
    kind = test
CFG
cat >"$RUN/agent.cfg" <<CFG
agent
    certificate = $RUN/agent.cert_secret
database
    dialect = sqlite
    connection = "Driver=SQLite3;Database=$RUN/matter.db;StepAPI=1;FKSupport=1;Timeout=5000"
core
    endpoint = tcp://127.0.0.1:$PORT
    public_key = "$CORE_KEY"
CFG
"$BIN/matterlink-core" register-agent -c "$RUN/core.cfg" --firm hartley --name "Hartley & Pryce LLP" \
    --cert "$RUN/agent.cert" --operating-account OP-001

heading "3. The core and the agent start; the agent sends the open items"
"$BIN/matterlink-core" run -c "$RUN/core.cfg" >"$RUN/core.log" 2>&1 &
CORE_PID=$!
"$BIN/matterlink-agent" run -c "$RUN/agent.cfg" >"$RUN/agent.log" 2>&1 &
AGENT_PID=$!
expected=$(matter "SELECT COUNT(*) FROM ml_open_items")
replica_ready() {
    staff --json status | python3 -c "import json,sys; f=json.load(sys.stdin)['firms'][0]; sys.exit(0 if f['complete'] == 1 and f['invoice_count'] == $expected else 1)"
}
wait_until replica_ready
staff status
echo
echo "The core received all $expected open invoices the matter database holds."

client=$(matter "SELECT client_number FROM ml_open_items GROUP BY client_number HAVING COUNT(*) >= 3 ORDER BY client_number LIMIT 1")
name=$(matter "SELECT name FROM client WHERE client_number = '$client'")
heading "4. Client $client ($name): open invoices, oldest first"
staff open-items --firm hartley --client "$client"
first=$(matter "SELECT balance_minor FROM ml_open_items WHERE client_number = '$client' ORDER BY invoice_date, invoice_number LIMIT 1")
# Pay the oldest invoice in full and 100.00 of the next one.
amount_minor=$((first + 10000))
amount=$(printf '%d.%02d' $((amount_minor / 100)) $((amount_minor % 100)))

heading "5. Billing staff take a payment of $(money $amount_minor) for $client"
staff pay --firm hartley --client "$client" --amount "$amount" --payer-name "$name" \
    --payer-email "billing@example.com" --message "Paid by phone, ref 4471" --wait 30
uuid=$(staff --json postings --firm hartley --limit 1 | python3 -c "import json,sys; print(json.load(sys.stdin)['postings'][0]['posting_uuid'])")

heading "6. What the matter system recorded (read from its own tables)"
matter "SELECT receipt_id, received_on, payer_name, amount_minor, ar_message FROM receipt WHERE posting_uuid = '$uuid'" |
    while IFS='|' read -r receipt on payer amount_paid note; do
        echo "Receipt $receipt, received $on from $payer: $(money "$amount_paid")"
        echo "  A/R note for the firm: $note"
        echo "  posting $uuid"
    done
echo
printf '  %-14s %16s %18s %-8s\n' "Invoice" "Applied" "Balance now" "Status"
matter "SELECT i.invoice_number, a.amount_minor, i.balance_minor, i.status FROM receipt_allocation a
        JOIN receipt r USING (receipt_id) JOIN invoice i USING (invoice_id)
        WHERE r.posting_uuid = '$uuid' ORDER BY a.receipt_allocation_id" |
    while IFS='|' read -r invoice applied balance status; do
        printf '  %-14s %16s %18s %-8s\n' "$invoice" "$(money "$applied")" "$(money "$balance")" "$status"
    done

heading "7. The same posting at the core"
staff posting "$uuid"
reflected() {
    staff --json open-items --firm hartley --client "$client" | python3 -c "import json,sys; sys.exit(0 if all(i['pending_minor'] == 0 for i in json.load(sys.stdin)['items']) else 1)"
}
wait_until reflected
echo
echo "The new balances came back from the matter system; $client now has:"
staff open-items --firm hartley --client "$client"

other=$(matter "SELECT client_number FROM ml_open_items WHERE client_number <> '$client' GROUP BY client_number HAVING COUNT(*) >= 3 ORDER BY client_number LIMIT 1")
other_name=$(matter "SELECT name FROM client WHERE client_number = '$other'")
invoice=$(matter "SELECT invoice_number FROM ml_open_items WHERE client_number = '$other' ORDER BY invoice_date, invoice_number LIMIT 1")
matter_number=$(matter "SELECT matter_number FROM ml_open_items WHERE client_number = '$other' ORDER BY invoice_date LIMIT 1")
heading "8. A card payment for $other: an invoice and a trust deposit, two charges"
staff account add --firm hartley --number OP-001 --type OPERATING --currency USD --merchant-account acct_operating >/dev/null
staff account add --firm hartley --number TR-001 --type TRUST --currency USD --merchant-account acct_trust >/dev/null
echo "Accounts: OP-001 (OPERATING) and TR-001 (TRUST). The card is typed on standard input, never on the command line."
echo "4242424242424242 04/2031 123" | staff charge --firm hartley --invoice "$invoice=150.00" \
    --trust "$matter_number=500.00" --payer-name "$other_name" --payer-email "payer@example.com" \
    --save-payer --save-method --card-stdin --message "Card at reception"

heading "9. Auto-Pay: $other_name pays \$100.00 of $other's oldest invoices every month"
payer=$(staff --json payer list --firm hartley --text payer@example.com | python3 -c "import json,sys; print(json.load(sys.stdin)['payers'][0]['payer_id'])")
method=$(staff --json payer show "$payer" | python3 -c "import json,sys; print(json.load(sys.stdin)['payer']['methods'][0]['method_id'])")
association=$(staff --json association add "$payer" --client "$other" | python3 -c "import json,sys; print(json.load(sys.stdin)['association']['association_id'])")
# The firm's billing address gets the "Error-Failed AutoPay" alert if a run fails.
staff firm contact --firm hartley --email billing@hartley.example >/dev/null
schedule=$(staff --json autopay add --payer "$payer" --method "$method" --name "Monthly plan" \
    --account OP-001 --frequency monthly --first "$(date -u +%Y-%m-%d)" --amount 100.00 \
    --message "Auto-Pay" | python3 -c "import json,sys; print(json.load(sys.stdin)['schedule']['schedule_id'])")
staff autopay enroll "$schedule" "$association" >/dev/null
# A run charges once the agent has confirmed the balances live (docs/autopay.md), and is
# final once the processor has answered the charge.
ran() {
    staff --json autopay show "$schedule" | python3 -c "import json,sys; runs = json.load(sys.stdin)['schedule']['runs']; sys.exit(0 if runs and runs[0]['status'] not in ('started', 'pending') else 1)"
}
wait_until ran
staff autopay show "$schedule"

heading "10. The payer portal: $other_name signs in to see what they owe"
cat >"$RUN/web.cfg" <<CFG
web
    #   Plain HTTP on loopback only; docs/web.md has HTTPS and the reverse proxy.
    listen = 127.0.0.1:$WEB_PORT
    core_endpoint = ipc://$RUN/api.sock
CFG
"$BIN/matterlink-web" run -c "$RUN/web.cfg" >"$RUN/web.log" 2>&1 &
WEB_PID=$!
wait_until grep -q "serving the payer portal" "$RUN/web.log"
staff payer access on "$payer"
# The welcome mail (kept by the local SMTP server) carries the set-password link; the demo
# follows it as the payer would, through the portal's own form, with a fresh password.
# mail_link PAGE: the first link to PAGE (set-password, staff/accept) in the kept mails.
mail_link() {
    python3 - "$RUN/mail" "$1" <<'PY'
import glob, json, os, re, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    hit = re.search(r"https?://\S+/" + sys.argv[2] + r"\?token=[A-Za-z0-9_-]+", json.load(open(path))["body"] or "")
    if hit:
        print(hit.group(0))
        sys.exit(0)
sys.exit(1)
PY
}
# follow_link LINK EMAIL PASSWORD SIGN_IN PAGE_SAYS COOKIE: a mailed link followed as its
# reader would: the form it opens sets the password (its answer holds PAGE_SAYS unless that
# is empty), then the sign-in form at SIGN_IN signs in (setting COOKIE unless that is empty).
follow_link() {
    python3 - "$@" <<'PY'
import http.client, re, sys, urllib.parse
link, email, password, sign_in, page_says, session_cookie = sys.argv[1:]
url = urllib.parse.urlsplit(link)
def request(method, path, body=None, cookie=None):
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response, response.read().decode()
response, page = request("GET", url.path + "?" + url.query)
form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
cookie = "ml_form=" + form_token
token = urllib.parse.parse_qs(url.query)["token"][0]
response, page = request("POST", url.path, urllib.parse.urlencode(
    {"form_token": form_token, "token": token, "password": password, "confirm": password}), cookie)
if response.status != 200 or page_says not in page:
    sys.exit("demo: the form of %s answered %d" % (url.path, response.status))
response, _ = request("POST", sign_in, urllib.parse.urlencode(
    {"form_token": form_token, "email": email, "password": password}), cookie)
if response.status != 303 or session_cookie + "=" not in (response.getheader("Set-Cookie") or "="):
    sys.exit("demo: signing in at %s answered %d" % (sign_in, response.status))
PY
}
wait_until mail_link set-password
password=$(python3 -c 'import secrets; print("demo-" + secrets.token_urlsafe(9))')
follow_link "$(mail_link set-password)" payer@example.com "$password" /sign-in "" ""
echo "The welcome mail's link worked: the password is set, and signing in works."

heading "11. The staff app: a billing clerk of the firm signs in"
# The operator invites the firm's first staff member with the CLI (administrators invite the
# others from the staff app's Users page). A billing member takes payments and manages
# payers, Auto-Pay and postings; only administrators must have a second factor.
staff staff invite --firm hartley --email bea@hartley.example --name "Bea Billing" --role billing
wait_until mail_link staff/accept
staff_password=$(python3 -c 'import secrets; print("demo-" + secrets.token_urlsafe(9))')
# The invitation's link, followed as Bea would: the accept form sets the password; then
# the staff sign-in form.
follow_link "$(mail_link staff/accept)" bea@hartley.example "$staff_password" /staff/sign-in \
    Welcome ml_staff
echo "The invitation's link worked: Bea's password is set, and the staff sign-in works."

heading "Sign in"
echo "  Payer portal: http://127.0.0.1:$WEB_PORT/"
echo "    E-mail:     payer@example.com"
echo "    Password:   $password"
echo
echo "  Staff app:    http://127.0.0.1:$WEB_PORT/staff/ (Bea Billing, billing role: Make a Payment, Payers)"
echo "    E-mail:     bea@hartley.example"
echo "    Password:   $staff_password"
echo
echo "Mails the firm sent are in $RUN/mail (one .eml file each)."

heading "Done"
if [ -t 0 ] && [ -t 1 ]; then
    echo "Everything keeps running: open the portal and the staff app in a browser on this machine and sign in."
    echo "Press Ctrl-C to stop the web server, the agent, the core and the mail server."
    echo "Logs and databases stay in $RUN."
    # Wait for Ctrl-C (the INT trap exits, and the EXIT trap stops everything), or for the
    # web server to stop by itself.
    wait "$WEB_PID" || true
    exit 0
fi
echo "Stopping the web server, the agent, the core and the mail server. Logs and databases stay in $RUN."
