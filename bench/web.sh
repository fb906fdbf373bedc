#!/bin/bash
# The payer portal under load (issue 12 point 10; a benchmark, not a timed test): the firm's
# matter database on PostgreSQL with INVOICES generated invoices (bench/run.sh's sample: 20,000
# clients), the real agent, core, SMTP server and matterlink-web on 127.0.0.1, and PAYERS
# payers, each with login access to one client (staff CLI: payer add, association add,
# payer access on), a password set through the welcome mail's link and a session from the
# portal's sign-in. Then wrk (Debian's) with bench/web.lua: CONNECTIONS connections for
# SECONDS seconds per page, each request signed in as the next payer in turn. Printed:
# requests/s and p50/p90/p99/max latency of the invoice list (/invoices: the core checks the
# session, then lists the payer's invoices from its replica), of /pay when this tree serves
# it, and beside them, from the same run, the pages that do not reach the core (the style
# sheet, the sign-in form). Target: p99 <= 100 ms for the signed-in pages.
# Usage: bench/web.sh [INVOICES] [SECONDS] [CONNECTIONS]   (defaults 1000000, 20, 200)
#        PAYERS=N (default 200), WEB_THREADS=N (matterlink-web's web/threads, default 8),
#        CLIENTS=N (default 20000: about 40 open invoices per payer's client at 1,000,000),
#        READERS=N (the core's core/readers, default 2), THINK_MS=N (also measure each
#        page with every connection pausing about N ms between requests, as payers do), HOLD=1 (keep everything up for
#        profiling by hand until $W/hold is removed), PERF=1 (profile the whole machine while the
#        invoice list is measured: the top functions are printed after the table)
# Builds in build-bench (optimized, no sanitizers); starts its own database server
# (bench/lib_bench.sh: the set-up shared with bench/staff.sh).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
INVOICES=${1:-1000000}
SECONDS_EACH=${2:-20}
CONNECTIONS=${3:-200}
PAYERS=${PAYERS:-200}
WEB_THREADS=${WEB_THREADS:-8}
CLIENTS=${CLIENTS:-20000}
sh scripts/deps.sh --servers
if ! dpkg-query -W -f='${Status}' wrk 2>/dev/null | grep -q "install ok installed"; then
    echo "installing: wrk"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends wrk >/dev/null
fi
. bench/lib_bench.sh
bench_build
bench_workdir matterlink_webbench
bench_matter_db
bench_configs
bench_core_and_agent notice

echo "$PAYERS payers with login access, one client each"
psql -c "SELECT c.client_number FROM client c JOIN matter m ON m.client_id = c.client_id
         JOIN invoice i ON i.matter_id = m.matter_id WHERE i.status = 'open' AND i.balance_minor > 0
         GROUP BY c.client_number ORDER BY c.client_number LIMIT $PAYERS" >"$W/clients"
# The core's store is SQLite: while the mailer sends the welcome mails, an admin write can
# wait and fail with "database is locked" (the core logs it; see bench/RESULTS.md). A failed
# op changed nothing, so it is asked again.
again() {
    for _ in 1 2 3 4 5; do
        "$@" && return 0
        sleep 1
    done
    return 1
}
number=0
: >"$W/payers"
while read -r client; do
    number=$((number + 1))
    again staff --json payer add --firm bench --name "Payer $number" --email "payer$number@bench.example" >"$W/payer.json"
    payer=$(python3 -c "import json,sys; print(json.load(sys.stdin)['payer']['payer_id'])" <"$W/payer.json")
    again staff --json association add "$payer" --client "$client" >/dev/null
    echo "$payer" >>"$W/payers"
done <"$W/clients"
mails() { [ "$(find "$W/mail" -name '*.json' | wc -l)" -ge "$number" ]; }
sent=0
while read -r payer; do
    again staff --json payer access on "$payer" >/dev/null
    sent=$((sent + 1))
    number=$sent
    wait_for 60 "welcome mail $sent" mails
done <"$W/payers"
locked=$(grep -c "database is locked" "$W/core.log" || true)
echo "(the core's store was locked $locked time(s) while the welcome mails went out; asked again)"
bench_web

# Each payer follows the welcome link (set-password form), then signs in: one session each.
python3 - "$W/mail" "$WEB_PORT" "$W/sessions" <<'PY'
import glob, http.client, json, os, re, sys, urllib.parse
mail, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def request(method, path, body=None, cookie=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    connection.request(method, path, body=urllib.parse.urlencode(body) if body else None,
                       headers=headers)
    response = connection.getresponse()
    return response, response.read().decode()
sessions = []
for path in sorted(glob.glob(os.path.join(mail, "*.json"))):
    m = json.load(open(path))
    token = re.search(r"/set-password\?token=([A-Za-z0-9_-]{43})", m["body"] or "").group(1)
    email = m["rcpt_tos"][0]
    response, page = request("GET", "/set-password?token=" + token)
    form = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    password = "bench password " + token[:8]
    response, page = request("POST", "/set-password", {"form_token": form, "token": token,
                             "password": password, "confirm": password}, "ml_form=" + form)
    assert response.status == 200, (email, response.status)
    response, page = request("POST", "/sign-in", {"form_token": form, "email": email,
                             "password": password}, "ml_form=" + form)
    assert response.status == 303, (email, response.status)
    sessions.append(re.match(r"ml_session=([A-Za-z0-9_-]+)", response.getheader("Set-Cookie")).group(1))
with open(out, "w") as f:
    f.write("\n".join(sessions) + "\n")
print("%d payers signed in through the portal" % len(sessions))
PY
first=$(head -n 1 "$W/sessions")
rows=$(curl -s -H "Cookie: ml_session=$first" "http://127.0.0.1:$WEB_PORT/invoices" | grep -c "<tr" || true)
echo "One payer's invoice list: about $rows table rows."

if [ "${HOLD:-0}" = 1 ]; then
    # For profiling by hand: everything stays up until $W/hold is removed.
    touch "$W/hold"
    echo "HOLD: $W (web http://127.0.0.1:$WEB_PORT, sessions in $W/sessions); rm $W/hold to go on"
    while [ -e "$W/hold" ]; do sleep 1; done
fi
measure() { # PATH LABEL
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: ml_session=$first" "http://127.0.0.1:$WEB_PORT$1")
    if [ "$status" = 404 ]; then
        printf '%-34s (not served by this tree)\n' "$2"
        return 0
    fi
    figures=$(BENCH_SESSIONS="$W/sessions" BENCH_PATH="$1" wrk -t "$((CONNECTIONS < 2 ? 1 : 2))" -c "$CONNECTIONS" -d "${SECONDS_EACH}s" \
        --timeout 30s -s bench/web.lua "http://127.0.0.1:$WEB_PORT" | sed -n 's/^BENCH //p')
    field() { echo "$figures" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    printf '%-34s %10s %9s %9s %9s %9s %8s\n' "$2" "$(field rate)" "$(field p50_ms)" "$(field p90_ms)" \
        "$(field p99_ms)" "$(field max_ms)" "$(($(field not_200) + $(field socket_errors)))"
}
echo
echo "$CONNECTIONS connections, $SECONDS_EACH s per page, $PAYERS payers in turn; latency in ms"
printf '%-34s %10s %9s %9s %9s %9s %8s\n' "page" "req/s" "p50" "p90" "p99" "max" "not 200"
measure /static/portal.css "style sheet (baseline, no core)"
measure /sign-in "sign-in form (no core)"
if [ "${PERF:-0}" = 1 ]; then
    # The whole machine: the web, the core's threads, wrk and the databases share its cores.
    perf record -F 499 -g -a -o "$W/core.perf" -- sleep "$SECONDS_EACH" >/dev/null 2>&1 &
    perf_pid=$!
fi
measure /invoices "invoice list (signed in)"
if [ "${THINK_MS:-0}" -gt 0 ]; then
    BENCH_THINK_MS=$THINK_MS measure /invoices "invoice list, payers pause ${THINK_MS} ms"
fi
if [ "${PERF:-0}" = 1 ]; then
    wait "$perf_pid" || true
    {
        perf report -i "$W/core.perf" --no-children --sort comm -g none 2>/dev/null | grep '%' | head -12
        echo
        perf report -i "$W/core.perf" --no-children --sort comm,dso,symbol -g none 2>/dev/null | grep '%' | head -60
    } >"$W/perf.txt"
    [ -n "${PERF_OUT:-}" ] && cp "$W/core.perf" "$PERF_OUT"
    profile=$W/perf.txt
fi
measure /pay "payment page (signed in)"
if [ "${THINK_MS:-0}" -gt 0 ]; then
    BENCH_THINK_MS=$THINK_MS measure /pay "payment page, payers pause ${THINK_MS} ms"
fi
if [ -n "${profile:-}" ]; then
    echo
    echo "The machine's profile while the invoice list was measured (perf -a, self time):"
    cat "$profile"
fi
