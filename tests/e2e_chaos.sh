#!/bin/bash
# dialects: sqlite postgresql
# Chaos: postings are made all the time (staff payments, card payments through the processor
# test server, some of whose charges end UNKNOWN at first, and Auto-Pay runs driven by the
# test clock) while, at random moments, the agent, the core and the matter database server
# (PostgreSQL, immediate shutdown; SQLite has no server) are killed with SIGKILL and the link
# between agent and core is cut for seconds at a time (tests/tcp_proxy.py). Once everything is
# up again and the outbox has drained: every approved charge has exactly one posting and none
# is rejected; the matter database's receipts equal the distinct posting UUIDs equal the core's
# posted postings; the sums agree to the cent (core = matter database = approved charges +
# staff payments); the processor made no charge twice for one key.
#
#   ML_CHAOS_ROUNDS   faults to inject (default 20: the short form CI runs; bench/chaos.sh
#                     runs 200)
#   ML_CHAOS_SEED     replay a run: the seed every run prints (faults, their kinds and moments,
#                     and the workload's choices follow from it; the processes' own timing
#                     does not, so a replay is likely, not certain, to take the same path)
#   ML_CHAOS_KEEP     a directory to keep the run's files in (logs, the stores, the lists
#                     the checks compare)
#   ML_CHAOS_SHARED   1 (the default): card payments also pay the staff clients' oldest
#                     invoices, and staff payments are large enough to pay invoices off;
#                     0: staff payments, card payments and Auto-Pay pay disjoint clients'
#                     invoices, in amounts far below their balances
#
# Shared invoices are the race of issue 11 point 2: a staff payment made while a card charge's
# outcome is unknown must not take the balance the charge holds, or the charge's posting is
# rejected when it settles approved. Every charge that may still succeed holds its lines
# against the balance (balance_hold), so the suite checks that no posting is rejected.
#
# Defects found so far: none (20-fault runs on both dialects, 200-fault runs: PostgreSQL seed
# 404124, 941 postings; SQLite seed 644846, 827 postings).
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_books.sh"
ROUNDS=${ML_CHAOS_ROUNDS:-20}
SEED=${ML_CHAOS_SEED:-$(($(date +%s%N) / 1000 % 1000000))}
log "seed $SEED, $ROUNDS rounds (replay: ML_CHAOS_SEED=$SEED ML_CHAOS_ROUNDS=$ROUNDS)"
PROXY_PID=
PROCESSOR_PID=
WORKLOAD_PIDS=
PG_BIN=/usr/lib/postgresql/15/bin

chaos_cleanup() {
    status=$?
    touch "$W/stop"
    for pid in $WORKLOAD_PIDS; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    stop_process "$PROXY_PID"
    stop_process "$PROCESSOR_PID"
    [ -n "${ML_CHAOS_KEEP:-}" ] && rm -rf "$ML_CHAOS_KEEP" && cp -r "$W" "$ML_CHAOS_KEEP"
    (exit $status)
    cleanup
}
trap chaos_cleanup EXIT

# PostgreSQL gets servers of its own: the test stops them.
if [ "$ML_DIALECT" = postgresql ]; then
    ML_SERVERS_DIR=$W/servers
    chmod 755 "$W" # the servers run as their service users, who must reach their data under $W
    sh "$ML_SOURCE/tests/servers.sh" start "$ML_SERVERS_DIR" >/dev/null || fail "start servers"
fi
setup 12 120
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
# The core keeps writing while the checks read: wait for its locks instead of failing.

# The processor test server, kept up throughout (it is the processor's ledger). The timeout
# cards answer their first two requests per key after 1.5 s, longer than the core waits.
printf 'chaos-test-api-key\n' >"$W/processor.key"
chmod 600 "$W/processor.key"
ML_PROCESSOR_LIE_SEED=$SEED python3 "$ML_SOURCE/tests/processor_server.py" --api-key-file "$W/processor.key" \
    --timeout-card-attempts 2 --timeout-card-delay-ms 1500 >"$W/processor.port" 2>>"$W/processor.log" &
PROCESSOR_PID=$!
wait_for 10 "the processor test server" test -s "$W/processor.port"
PROCESSOR=http://127.0.0.1:$(cat "$W/processor.port")
cat >>"$W/core.cfg" <<CFG
processor
    kind = http
    endpoint = "$PROCESSOR"
    api_key_file = $W/processor.key
    connect_timeout_ms = 500
    timeout_ms = 1000
    retries = 1
    retry_backoff_ms = 100
CFG

# The agent reaches the core through the proxy.
python3 "$ML_SOURCE/tests/tcp_proxy.py" --target "$PORT" >"$W/proxy.port" 2>>"$W/proxy.log" &
PROXY_PID=$!
wait_for 10 "the TCP proxy" test -s "$W/proxy.port"
sed -i "s|endpoint = tcp://127.0.0.1:$PORT|endpoint = tcp://127.0.0.1:$(cat "$W/proxy.port")|" "$W/agent.cfg"
grep -q "127.0.0.1:$(cat "$W/proxy.port")" "$W/agent.cfg" || fail "the agent does not go through the proxy"

export MATTERLINK_TEST_CLOCK=1
start_core
start_agent
wait_for 60 "the core to hold every open invoice" core_has_all_invoices
add_accounts

# Disjoint clients: four for staff payments, four for card payments, one for Auto-Pay.
clients=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 2 ORDER BY client_number")
[ "$(echo "$clients" | wc -l)" -ge 9 ] || fail "the sample has too few clients with open invoices"
STAFF_CLIENTS=$(echo "$clients" | sed -n 1,4p)
CARD_CLIENTS=$(echo "$clients" | sed -n 5,8p)
AUTOPAY_CLIENT=$(echo "$clients" | sed -n 9p)
in_list() { echo "$1" | sed "s/.*/'&'/" | paste -sd, -; }
CARD_INVOICES=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number IN ($(in_list "$CARD_CLIENTS")) ORDER BY invoice_number")
STAFF_MAX=200
if [ "${ML_CHAOS_SHARED:-1}" = 1 ]; then
    # Staff payments pay the oldest invoices first: cards pay those too.
    for client in $STAFF_CLIENTS; do
        CARD_INVOICES=$(printf '%s\n%s' "$CARD_INVOICES" "$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' ORDER BY invoice_date, invoice_number LIMIT 3")")
    done
    STAFF_MAX=50000
fi

# Auto-Pay: a payer with a saved card (a token as the processor issues them), enrolled for
# the Auto-Pay client, 1.00 every week from 2027-01-04.
payer=$(cli --json payer add --firm acme --name "Auto Payer" --email auto@example.com | json 'd["payer"]["payer_id"]') ||
    fail "payer add"
cli --json method add "$payer" --token tok_visa_4242_122031_0a1b2c3d4e5f6a7b --brand visa --last4 4242 \
    --expiry 12/2031 >/dev/null || fail "method add"
method=$(cli --json payer show "$payer" | json 'd["payer"]["methods"][0]["method_id"]')
association=$(cli --json association add "$payer" --client "$AUTOPAY_CLIENT" | json 'd["association"]["association_id"]') ||
    fail "association add"
cli --json autopay clock 2027-01-01 >/dev/null || fail "the test clock"
schedule=$(cli --json autopay add --payer "$payer" --method "$method" --name Weekly --account OP-001 \
    --frequency weekly --first 2027-01-04 --amount 1.00 | json 'd["schedule"]["schedule_id"]') ||
    fail "autopay add"
cli --json autopay enroll "$schedule" "$association" >/dev/null || fail "autopay enroll"

# The workload: three streams (staff payments, card payments, the Auto-Pay clock), each one
# operation after another until told to stop. Each operation is a CLI call that may fail or
# go unanswered (the core may be down); what counts is what the core, the matter database
# and the processor hold at the end. The Auto-Pay stream moves the test clock a day at a
# time, paced so that even the long form stays within the enrollment's year, and writes the
# day it reached.
pick() { echo "$1" | sed -n "$(($2 % $(echo "$1" | wc -l) + 1))p"; }
money() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
pause() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
staff_stream() {
    RANDOM=$((SEED + 1))
    local operation=0
    while [ ! -f "$W/stop" ]; do
        operation=$((operation + 1))
        out=$(cli --json --timeout 5000 pay --firm acme --client "$(pick "$STAFF_CLIENTS" $RANDOM)" \
            --amount "$(money $(((RANDOM * 32768 + RANDOM) % STAFF_MAX + 1)))" 2>&1)
        echo "staff $operation pay: $?" >>"$W/workload.log"
        # What the core acknowledged must be in the books at the end.
        echo "$out" | sed -n 's/.*"posting_uuid": *"\([^"]*\)".*/\1/p' >>"$W/acknowledged_staff.txt"
    done
}
card_stream() {
    RANDOM=$((SEED + 2))
    local operation=0 card out
    while [ ! -f "$W/stop" ]; do
        operation=$((operation + 1))
        # Mostly a good card; one in five a card whose first answers come too late (charged
        # first, or not yet): the charge is UNKNOWN until the core asks again (the first two
        # are such cards, so every run has them); now and then a declined card, or a good
        # one while the processor's next answer is lost or late after the work is done
        # (whichever request comes next: a token, a charge, a lookup), or its next answer is
        # about something else than the work it did (tests/processor_server.py, --lie).
        card=4242424242424242
        case $((operation < 3 ? operation - 1 : RANDOM % 10)) in
            0) card=4000000000003006 ;;
            1) card=4000000000004004 ;;
            2) card=4000000000000002 ;;
            3) curl -sf -o /dev/null -d '{"drop": 1}' "$PROCESSOR/_test/control" ;;
            4) curl -sf -o /dev/null -d '{"delay_ms": 1500, "delay_count": 1}' "$PROCESSOR/_test/control" ;;
            5) curl -sf -o /dev/null -d '{"lie": 1}' "$PROCESSOR/_test/control" ;;
        esac
        out=$(echo "$card 04/2031 123" | cli --json --timeout 5000 charge --firm acme \
            --invoice "$(pick "$CARD_INVOICES" $RANDOM)=$(money $((RANDOM % 300 + 1)))" \
            --payer-name "Pat Doe" --payer-email pat@example.com --card-stdin 2>&1)
        echo "card $operation ${card: -4}: $? $(echo "$out" | grep -o '"status": *"[a-z]*"' | head -n 1)" >>"$W/workload.log"
        echo "$out" | grep -q '"status": *"approved"' &&
            echo "$out" | sed -n 's/.*"payment_uuid": *"\([^"]*\)".*/\1/p' | head -n 1 >>"$W/acknowledged_cards.txt"
    done
}
autopay_stream() {
    local operation=0 day=3
    while [ ! -f "$W/stop" ]; do
        operation=$((operation + 1))
        [ "$day" -lt 360 ] && day=$((day + 1))
        echo "$day" >"$W/autopay.day"
        cli --json --timeout 5000 autopay clock "$(date -u -d "2027-01-01 + $day days" +%F)" >/dev/null 2>&1
        echo "autopay $operation day $day: $?" >>"$W/workload.log"
        pause $((ROUNDS * 10))
    done
}
staff_stream &
STAFF_PID=$!
card_stream &
CARD_PID=$!
autopay_stream &
AUTOPAY_PID=$!
WORKLOAD_PIDS="$STAFF_PID $CARD_PID $AUTOPAY_PID"

# The faults: in blocks of one of each kind, in a random order per block, each at a random
# moment of the workload.
RANDOM=$SEED
kinds="agent core cut"
[ "$ML_DIALECT" = postgresql ] && kinds="$kinds database"
kills_agent=0 kills_core=0 kills_database=0 cuts=0
block=""
pg_ctl() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$ML_SERVERS_DIR/pg/data" "$@"; }
for round in $(seq 1 "$ROUNDS"); do
    if [ -z "$block" ]; then
        block=$(for kind in $kinds; do echo "$RANDOM $kind"; done | sort -n | cut -d' ' -f2 | paste -sd' ' -)
    fi
    kind=${block%% *}
    case $block in *" "*) block=${block#* } ;; *) block="" ;; esac
    pause $((RANDOM % 1500 + 200))
    down_ms=$((RANDOM % 2000 + 500))
    case $kind in
        agent)
            kill -9 "$AGENT_PID" 2>/dev/null
            wait "$AGENT_PID" 2>/dev/null
            AGENT_PID=
            pause $((down_ms / 2))
            start_agent
            kills_agent=$((kills_agent + 1))
            ;;
        core)
            kill -9 "$CORE_PID" 2>/dev/null
            wait "$CORE_PID" 2>/dev/null
            CORE_PID=
            # Not start_core: a loaded machine may take longer than its 10 s to answer.
            "$ML_BIN/matterlink-core" run -c "$W/core.cfg" --log-level info >>"$W/core.log" 2>&1 &
            CORE_PID=$!
            wait_for 60 "the core to answer after round $round" cli --timeout 5000 status
            kills_core=$((kills_core + 1))
            ;;
        database)
            pg_ctl -m immediate -w stop >/dev/null 2>&1 || fail "round $round: stop PostgreSQL"
            pause $((down_ms / 2))
            pg_ctl -l "$ML_SERVERS_DIR/pg/server.log" -w start -o "-p $ML_PG_PORT -k $ML_SERVERS_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" >/dev/null ||
                fail "round $round: start PostgreSQL again"
            kills_database=$((kills_database + 1))
            ;;
        cut)
            kill -USR1 "$PROXY_PID"
            pause "$down_ms"
            kill -USR2 "$PROXY_PID"
            cuts=$((cuts + 1))
            ;;
    esac
    echo "-- round $round: $kind" >>"$W/workload.log"
done
touch "$W/stop"
wait $WORKLOAD_PIDS
WORKLOAD_PIDS=
operations=$(grep -c '^[a-z]* [0-9]' "$W/workload.log")
log "$ROUNDS rounds done under $operations operations: agent killed $kills_agent, core killed $kills_core, database killed $kills_database, link cut $cuts"

# Everything is up and the processor behaves: the last Auto-Pay day once more (a core killed since forgot the test
# clock), then the outbox drains: no charge or run open, every posting final.
kill -0 "$CORE_PID" && kill -0 "$AGENT_PID" || fail "a process died by itself"
curl -sf -o /dev/null -d '{"drop": 0, "delay_count": 0, "lie": 0}' "$PROCESSOR/_test/control" || fail "the processor's switches"
day=$(cat "$W/autopay.day" 2>/dev/null || echo 0)
cli --json autopay clock "$(date -u -d "2027-01-01 + $day days" +%F)" >/dev/null || fail "the test clock after the faults"
drained() {
    [ "$(core_sql "SELECT (SELECT COUNT(*) FROM charge WHERE status IN ('pending', 'unknown'))
        + (SELECT COUNT(*) FROM autopay_run WHERE status IN ('scheduled', 'started', 'pending'))
        + (SELECT COUNT(*) FROM posting WHERE status IN ('pending', 'delivered'))")" = 0 ]
}
wait_for 120 "the outbox to drain" drained

# The checks. Posted postings at the core, receipts in the matter database.
postings=$(core_sql "SELECT COUNT(*) FROM posting")
posted=$(core_sql "SELECT COUNT(*) FROM posting WHERE status = 'posted'")
rejected=$(core_sql "SELECT COUNT(*) FROM posting WHERE status = 'rejected'")
[ "$rejected" = 0 ] || fail "$rejected postings rejected: $(core_sql "SELECT posting_uuid, source, reason FROM posting WHERE status = 'rejected'")"
[ "$posted" = "$postings" ] || fail "$posted of $postings postings posted"
# Receipts and postings one for one, each approved charge posted once of its amount, the
# sums to the cent (tests/lib_books.sh); and here every posting is posted, none rejected.
check_books
receipts=$BOOKS_RECEIPTS
[ "$BOOKS_REVERSALS" = 0 ] || fail "$BOOKS_REVERSALS reversals, and the workload makes none"
bad=$(core_sql "SELECT charge_key FROM charge c WHERE status = 'approved' AND NOT EXISTS
    (SELECT 1 FROM posting p WHERE p.posting_uuid = c.posting_uuid AND p.status = 'posted')")
[ -z "$bad" ] || fail "approved charges whose posting is not posted: $bad"
core_sql "SELECT posting_uuid FROM posting WHERE status = 'posted'" | LC_ALL=C sort >"$W/core_sorted.txt"

# What the core acknowledged to the CLI is there: each staff payment posted, each card
# payment answered approved has its approved charge.
touch "$W/acknowledged_staff.txt" "$W/acknowledged_cards.txt"
missing=$(LC_ALL=C sort -u "$W/acknowledged_staff.txt" | LC_ALL=C comm -23 - "$W/core_sorted.txt")
[ -z "$missing" ] || fail "staff payments acknowledged but not posted: $missing"
core_sql "SELECT DISTINCT payment_uuid FROM charge WHERE status = 'approved'" | LC_ALL=C sort >"$W/core_paid.txt"
missing=$(LC_ALL=C sort -u "$W/acknowledged_cards.txt" | LC_ALL=C comm -23 - "$W/core_paid.txt")
[ -z "$missing" ] || fail "card payments answered approved without an approved charge: $missing"

# One charge per payment and account, one paid Auto-Pay run per date: nothing was charged
# again under a new key.
again=$(core_sql "SELECT payment_uuid || ' ' || account_type FROM charge GROUP BY payment_uuid, account_type HAVING COUNT(*) > 1
    UNION ALL SELECT schedule_id || ' ' || due_date FROM autopay_run WHERE status = 'paid' GROUP BY schedule_id, due_date HAVING COUNT(*) > 1")
[ -z "$again" ] || fail "charged again: $again"

# The processor's ledger: one charge made per key, and the approved ones are exactly the
# core's approved charges, amount for amount.
curl -sf "$PROCESSOR/_test/ledger" | python3 -c '
import json, sys
for c in json.load(sys.stdin)["charges"]:
    print("%s|%d|%d|%d" % (c["key"], c["made"], c["approved"], c["amount"]))' | LC_ALL=C sort >"$W/ledger.txt" ||
    fail "the processor's ledger"
twice=$(awk -F'|' '$2 != 1' "$W/ledger.txt" | wc -l)
[ "$twice" = 0 ] || fail "$twice keys charged more than once: $(awk -F'|' '$2 != 1' "$W/ledger.txt")"
awk -F'|' '$3 == 1 { print $1 "|" $4 }' "$W/ledger.txt" >"$W/processor_approved.txt"
core_sql "SELECT charge_key || '|' || amount_minor FROM charge WHERE status = 'approved'" | LC_ALL=C sort >"$W/core_approved.txt"
cmp -s "$W/processor_approved.txt" "$W/core_approved.txt" ||
    fail "the processor's approved charges differ from the core's: $(diff "$W/processor_approved.txt" "$W/core_approved.txt" | head -n 20)"

# The sums, to the cent: the books' total is what the processor approved, less fees, and
# the staff's payments.
core_total=$BOOKS_TOTAL
charged=$(awk -F'|' '{ total += $2 } END { print total + 0 }' "$W/processor_approved.txt")
fees=$(core_sql "SELECT COALESCE(SUM(fee_minor), 0) FROM charge WHERE status = 'approved'")
staff=$(core_sql "SELECT COALESCE(SUM(amount_minor), 0) FROM posting WHERE status = 'posted' AND posting_uuid NOT IN (SELECT posting_uuid FROM charge)")
[ "$core_total" = $((charged - fees + staff)) ] ||
    fail "sums: books $core_total, charged $charged - fees $fees + staff $staff"

cards=$(wc -l <"$W/processor_approved.txt")
[ "$cards" -gt 0 ] && [ "$staff" -gt 0 ] || fail "the workload made no card or no staff payment: nothing was tested"
unknown=$(grep -o "processor http: charge key=[^ ]*: unknown" "$W/core.log" | sort -u | wc -l)
runs=$(core_sql "SELECT COUNT(*) FROM autopay_run WHERE status = 'paid'")
log "figures: rounds $ROUNDS, kills agent $kills_agent core $kills_core database $kills_database, cuts $cuts;" \
    "postings $postings = receipts $receipts ($((postings - cards)) staff, $cards card charges of which $runs Auto-Pay runs;" \
    "$unknown charges unknown at first, $(wc -l <"$W/acknowledged_staff.txt") staff and $(wc -l <"$W/acknowledged_cards.txt") card payments acknowledged)," \
    "total $(money "$core_total"); lost 0, duplicated 0, rejected 0"
log "PASS"
