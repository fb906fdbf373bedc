#!/bin/bash
# dialects: sqlite postgresql
# Auto-Pay with the test clock (MATTERLINK_TEST_CLOCK=1 and 'matterlink autopay clock'): a
# monthly schedule on the 31st pays a client's invoices oldest first up to its amount,
# counting postings not yet applied, and picks up a new invoice in its place; a core that was
# down makes its missed dates one run and tells the firm; client-level enrollments stop after
# one year, and the schedule says it ended; an invoice-level enrollment stops once its
# invoice is paid, and its schedule makes no more runs; a card declined for insufficient
# funds alerts the firm by e-mail and is retried once; a core killed right after a charge
# neither charges again nor loses the run when it comes back; with the agent offline a run
# does not charge on a possibly stale replica: it waits, the firm is told, and once the agent
# is back it charges the balance the matter database has then.
. "$(dirname "$0")/lib_e2e.sh"
setup 30 300
printf 'processor\n    kind = test\n' >>"$W/core.cfg"
start_smtp
export MATTERLINK_TEST_CLOCK=1
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
show() { cli --json autopay show "$1"; }
runs() { show "$1" | json "len([r for r in d['schedule']['runs'] if $2])"; }
# No run of the firm's schedules is still open ("started": waiting for the agent to confirm
# its balances live, which comes a moment after the clock's answer).
settled() {
    local id
    for id in $(cli --json autopay list --firm acme | json '" ".join(str(s["schedule_id"]) for s in d["schedules"])'); do
        [ "$(runs "$id" 'r["status"] in ("started", "pending")')" = 0 ] || return 1
    done
}
clock() {
    cli --json autopay clock "$1" >/dev/null || fail "the test clock refused $1"
    wait_for 30 "the runs due by $1 to settle" settled
}
add_accounts

# A client with at least two open invoices, paid by a payer with a saved card (saved with a
# small trust deposit, so no invoice moves).
client=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES GROUP BY client_number HAVING COUNT(*) >= 2 ORDER BY client_number LIMIT 1")
matter=$(matter_sql "SELECT m.matter_number FROM matter m JOIN client c ON c.client_id = m.client_id WHERE c.client_number = '$client' ORDER BY m.matter_number LIMIT 1")
open_total=$(matter_sql "SELECT SUM(balance_minor) FROM $OPEN_INVOICES WHERE client_number = '$client'")
oldest=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number = '$client' ORDER BY invoice_date, invoice_number LIMIT 1")
oldest_balance=$(matter_sql "SELECT balance_minor FROM $OPEN_INVOICES WHERE invoice_number = '$oldest'")
log "client $client: $open_total open, oldest $oldest ($oldest_balance)"
new_payer() {
    local out payer
    out=$(cli --json payer add --firm acme --name "$1" --email "$2") || fail "payer add: $out"
    payer=$(echo "$out" | json 'd["payer"]["payer_id"]')
    echo "$3 12/2031 123" | cli --json charge --firm acme --trust "$matter=1.00" --payer "$payer" \
        --card-stdin --save-method >/dev/null 2>&1
    echo "$payer"
}
method_of() { cli --json payer show "$1" | json 'd["payer"]["methods"][0]["method_id"]'; }
# Add an association (PAYER_ID --client C ...) and print its ID.
association_add() {
    local out
    out=$(cli --json association add "$@") || fail "association add $*: $out"
    echo "$out" | json 'd["association"]["association_id"]'
}
payer=$(new_payer "Pat Doe" pat@example.com 4242424242424242)
method=$(method_of "$payer")
[ -n "$method" ] || fail "no saved method"
association=$(association_add "$payer" --client "$client")

# The amount: more than the oldest invoice, so one run spans several invoices.
amount=$((oldest_balance + 100))
amount_text=$(printf '%d.%02d' $((amount / 100)) $((amount % 100)))
clock 2027-01-01
out=$(cli --json autopay add --payer "$payer" --method "$method" --name "Monthly" --account TR-001 \
    --frequency monthly --first 2027-01-31 --amount "$amount_text" 2>&1) && fail "a trust account was accepted"
out=$(cli --json autopay add --payer "$payer" --method "$method" --name "Monthly" --account OP-001 \
    --frequency monthly --first 2027-01-31 --amount "$amount_text" --message "AutoPay $client" \
    2>"$W/add.err") || fail "autopay add: $out $(cat "$W/add.err")"
grep -q "^matterlink: warning: .*matterlink firm contact --firm acme --email" "$W/add.err" ||
    fail "the CLI did not show the reply's warning: $(cat "$W/add.err")"
schedule=$(echo "$out" | json 'd["schedule"]["schedule_id"]')
# No firm contact yet: the reply warns (the failure alert needs one), naming the real command.
echo "$out" | json 'd["warnings"][0]' | grep -q "matterlink firm contact --firm acme --email" ||
    fail "no warning about the missing firm contact: $out"
grep -q "set one: matterlink firm contact --firm acme --email" "$W/core.log" || fail "not logged"
cli --json firm contact --firm acme --email billing@acme.example >/dev/null || fail "firm contact"
cli --json autopay enroll "$schedule" "$association" >/dev/null || fail "enroll"

# First run: the oldest invoice whole, then the next one's 1.00, with the A/R message.
clock 2027-01-31
[ "$(runs "$schedule" 'r["status"] == "paid"')" = 1 ] || fail "the first run did not pay: $(show "$schedule")"
first=$(show "$schedule" | json 'd["schedule"]["runs"][0]')
echo "$first" | grep -q "'$oldest'" || fail "the oldest invoice was not paid first: $first"
[ "$(show "$schedule" | json 'd["schedule"]["runs"][0]["amount_minor"]')" = "$amount" ] || fail "not the amount"
run_payment=$(show "$schedule" | json 'd["schedule"]["runs"][0]["payment_uuid"]')
posting=$(cli --json payment show "$run_payment" | json 'd["payment"]["charges"][0]["posting_uuid"]')
[ "$(posting_field "$posting" source)" = autopay ] || fail "the posting's source is not autopay"
[ "$(posting_field "$posting" ar_message)" = "AutoPay $client" ] || fail "the posting lacks the A/R message"
wait_for 30 "the first run's posting to be posted" posting_is "$posting" posted

# The same day again: nothing more. The core stops before the posting is applied: the next
# run counts it as pending and pays only what is left.
clock 2027-01-31
[ "$(runs "$schedule" 'True')" = 1 ] || fail "a run was doubled"

# A new invoice for the client, dated before every other: slotted in first.
# (It reaches the core through the agent's change stream.)
matter_id=$(matter_sql "SELECT matter_id FROM matter WHERE matter_number = '$matter'")
matter_sql "INSERT INTO invoice (invoice_number, matter_id, invoice_date, due_date, currency, total_minor, balance_minor, status) VALUES ('AP-NEW-1', $matter_id, '2000-01-01', '2000-02-01', 'USD', 500, 500, 'open')"
has_new() { cli --json open-items --firm acme --client "$client" | grep -q AP-NEW-1; }
wait_for 30 "the new invoice at the core" has_new

# The core is down for two months: the missed dates become one run (not one charge each),
# and staff are told: the log, the run's note and a notice to the firm.
stop_core
start_core
clock 2027-03-31
[ "$(runs "$schedule" 'True')" = 2 ] || fail "missed dates not made one run: $(show "$schedule")"
grep -q "catching up: schedule $schedule missed 1 due dates (2027-02-28)" "$W/core.log" ||
    fail "the catch-up was not logged"
show "$schedule" | json 'd["schedule"]["runs"][1]["note"]' | grep -q "also 2027-02-28" ||
    fail "the run does not say which dates it stands for: $(show "$schedule")"
caught_up() { [ "$(mails_where 'm["rcpt_tos"] == ["billing@acme.example"] and "AutoPay caught up" in m["headers"]["subject"]')" = 1 ]; }
wait_for 20 "the catch-up notice to the firm" caught_up
show "$schedule" | json 'd["schedule"]["runs"][1]["lines"][0]["invoice"]' | grep -q AP-NEW-1 ||
    fail "the new invoice was not paid first: $(show "$schedule")"

# Paid never exceeds what was open, whatever ran: each invoice at most its balance.
paid=$(show "$schedule" | json 'sum(r["amount_minor"] for r in d["schedule"]["runs"] if r["status"] == "paid")')
[ "$paid" -le $((open_total + 500)) ] || fail "paid $paid of $open_total"

# A year on, month by month: the client enrollment ran its year (2027-01-31 .. 2028-01-30),
# and the schedule stops and says so.
for day in 2027-04-30 2027-05-31 2027-06-30 2027-07-31 2027-08-31 2027-09-30 2027-10-31 \
    2027-11-30 2027-12-31 2028-06-30; do
    clock $day
done
total=$(runs "$schedule" 'True')
[ "$total" = 11 ] || fail "expected 11 runs in the year (Feb 28 with Mar 31), got $total"
[ "$(runs "$schedule" 'r["due_date"] >= "2028-01-31"')" = 0 ] || fail "ran past the one-year limit"
[ "$(show "$schedule" | json 'd["schedule"]["state"]')" = ended ] || fail "not ended: $(show "$schedule")"
grep -q "schedule $schedule makes no more runs: its client and matter enrollments ran their year" \
    "$W/core.log" || fail "the end was not logged"
# Only runs that paid show a payment.
[ "$(runs "$schedule" '(r["status"] == "paid") != (r["payment_uuid"] is not None)')" = 0 ] ||
    fail "a run shows a payment it did not make: $(show "$schedule")"
log "11 monthly runs in the year (paid $paid), none after"

# An invoice-level plan paid by a card short of funds: declined, alerted, retried once the
# next day, alerted again, then not retried.
poor=$(new_payer "Poor Payer" poor@example.com 4000000000009995)
poor_method=$(method_of "$poor")
[ -n "$poor_method" ] || fail "no saved method for the poor payer"
invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number <> '$client' ORDER BY invoice_number LIMIT 1")
poor_association=$(association_add "$poor" --invoice "$invoice")
out=$(cli --json autopay add --payer "$poor" --method "$poor_method" --name "Plan" --account OP-001 \
    --frequency weekly --first 2028-07-03 --amount 10.00) || fail "autopay add: $out"
plan=$(echo "$out" | json 'd["schedule"]["schedule_id"]')
cli --json autopay enroll "$plan" "$poor_association" >/dev/null || fail "enroll plan"
clock 2028-07-03
[ "$(runs "$plan" 'r["status"] == "declined"')" = 1 ] || fail "no declined run: $(show "$plan")"
alerted() { [ "$(mails_where 'm["rcpt_tos"] == ["billing@acme.example"] and "Error-Failed AutoPay" in m["headers"]["subject"]')" = "$1" ]; }
wait_for 20 "the Error-Failed AutoPay alert" alerted 1
clock 2028-07-04
[ "$(runs "$plan" 'r["status"] == "declined" and r["attempt"] == 2')" = 1 ] || fail "no retry: $(show "$plan")"
wait_for 20 "the second alert" alerted 2
payer_told() { [ "$(mails_where 'm["rcpt_tos"] == ["poor@example.com"] and "did not go through" in m["headers"]["subject"]')" = 2 ]; }
wait_for 20 "the payer's two notices" payer_told
clock 2028-07-05
[ "$(runs "$plan" 'r["attempt"] == 2')" = 1 ] || fail "retried more than once"
cli --json autopay disable "$plan" >/dev/null || fail "disable"
log "a soft decline: alerted, retried once, alerted again"

# The plan with a good card, paid in full: it stops once its invoice is paid.
cli --json autopay delete "$plan" >/dev/null || fail "delete"
balance=$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")
method2=$(method_of "$payer")
plan_association=$(association_add "$payer" --invoice "$invoice")
out=$(cli --json autopay add --payer "$payer" --method "$method2" --name "Plan 2" --account OP-001 \
    --frequency weekly --first 2028-07-10) || fail "autopay add plan 2: $out"
plan2=$(echo "$out" | json 'd["schedule"]["schedule_id"]')
cli --json autopay enroll "$plan2" "$plan_association" >/dev/null || fail "enroll plan 2"
clock 2028-07-10
[ "$(show "$plan2" | json 'd["schedule"]["runs"][0]["amount_minor"]')" = "$balance" ] || fail "the plan did not pay the invoice"
posting=$(cli --json postings --firm acme | json '[p["posting_uuid"] for p in d["postings"] if p["source"] == "autopay"][0]')
invoice_paid() { [ "$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$invoice'")" = 0 ]; }
wait_for 30 "the invoice paid in the matter system" invoice_paid
gone() { ! cli --json open-items --firm acme | grep -q "\"$invoice\""; }
wait_for 30 "the paid invoice to leave the core" gone
clock 2028-07-17
[ "$(show "$plan2" | json '[e["end_reason"] for e in d["schedule"]["enrollments"]][0]')" = paid ] ||
    fail "the invoice enrollment did not end: $(show "$plan2")"
[ "$(runs "$plan2" 'r["status"] == "paid"')" = 1 ] || fail "the plan paid again"
# Its enrollment ended: no more runs, and it says why.
before=$(runs "$plan2" 'True')
clock 2028-07-24
[ "$(runs "$plan2" 'True')" = "$before" ] || fail "an ended plan still runs: $(show "$plan2")"
[ "$(show "$plan2" | json 'd["schedule"]["state_reason"]')" = "every enrollment has ended" ] ||
    fail "the plan does not say it ended: $(show "$plan2")"
log "the invoice-level plan stopped once its invoice was paid ($posting)"

# A crash right after the charge, before the run is recorded: the restarted core settles
# the same run from its stored payment, and nothing is charged twice.
out=$(cli --json autopay add --payer "$payer" --method "$method" --name "Crash" --account OP-001 \
    --frequency monthly --first 2028-08-01 --amount 1.00) || fail "autopay add crash: $out"
crash=$(echo "$out" | json 'd["schedule"]["schedule_id"]')
other=$(matter_sql "SELECT client_number FROM $OPEN_INVOICES WHERE client_number <> '$client' AND invoice_number <> '$invoice' ORDER BY client_number LIMIT 1")
other_association=$(association_add "$payer" --client "$other")
cli --json autopay enroll "$crash" "$other_association" >/dev/null || fail "enroll crash"
stop_core
MATTERLINK_TEST_CRASH=autopay-after-charge start_core
cli --json --timeout 3000 autopay clock 2028-08-01 >/dev/null 2>&1
core_dead() { ! kill -0 "$CORE_PID" 2>/dev/null; }
wait_for 30 "the core to die right after the charge" core_dead
wait "$CORE_PID" 2>/dev/null
CORE_PID=
start_core
clock 2028-08-01
# The searches below go to the agent, which needs its session with the new core first.
wait_for 30 "the agent to be back with the restarted core" agent_online
[ "$(runs "$crash" 'r["status"] == "paid"')" = 1 ] || fail "the run was lost: $(show "$crash")"
uuid=$(show "$crash" | json 'd["schedule"]["runs"][0]["payment_uuid"]')
[ "$(cli --json payment show "$uuid" | json 'len(d["payment"]["charges"])')" = 1 ] || fail "not one charge"
# The test processor logs each call it answers: one charge under the run's key, ever.
[ "$(grep -c "charge key=$uuid:operating: approved" "$W/core.log")" = 1 ] || fail "the run was charged twice"
[ "$(cli --json payment show "$uuid" | json 'd["payment"]["status"]')" = approved ] || fail "not approved"
log "a crash after the charge neither doubled nor lost the run"

# The agent offline: the replica may be stale (here the firm takes 1.00 of an invoice by hand
# meanwhile), so a run does not charge: it waits, and the firm is told it is deferred. The
# agent back, the run charges the balance the matter database has now.
live_invoice=$(matter_sql "SELECT invoice_number FROM $OPEN_INVOICES WHERE client_number NOT IN ('$client', '$other') AND invoice_number <> '$invoice' AND balance_minor >= 200 ORDER BY invoice_number LIMIT 1")
live_association=$(association_add "$payer" --invoice "$live_invoice")
out=$(cli --json autopay add --payer "$payer" --method "$method" --name "Live" --account OP-001 \
    --frequency weekly --first 2028-09-04) || fail "autopay add live: $out"
live=$(echo "$out" | json 'd["schedule"]["schedule_id"]')
cli --json autopay enroll "$live" "$live_association" >/dev/null || fail "enroll live"
stop_agent
matter_sql "UPDATE invoice SET balance_minor = balance_minor - 100 WHERE invoice_number = '$live_invoice'"
live_balance=$(matter_sql "SELECT balance_minor FROM invoice WHERE invoice_number = '$live_invoice'")
cli --json autopay clock 2028-09-04 >/dev/null || fail "the test clock refused 2028-09-04"
deferred() { [ "$(mails_where 'm["rcpt_tos"] == ["billing@acme.example"] and m["headers"]["subject"] == "AutoPay deferred: Live"')" = 1 ]; }
wait_for 30 "the deferral alert" deferred
[ "$(runs "$live" 'r["status"] == "started" and r["payment_uuid"] is None')" = 1 ] ||
    fail "a run charged with the agent offline: $(show "$live")"
grep -q "schedule $live run due 2028-09-04 is deferred: firm acme's agent is offline" "$W/core.log" ||
    fail "the deferral was not logged"
start_agent
paid_live() { [ "$(runs "$live" 'r["status"] == "paid"')" = 1 ]; }
wait_for 30 "the deferred run to charge once the agent is back" paid_live
[ "$(show "$live" | json 'd["schedule"]["runs"][0]["amount_minor"]')" = "$live_balance" ] ||
    fail "the run did not charge the live balance $live_balance: $(show "$live")"
log "with the agent offline the run waited and the firm was told; then it charged $live_balance live"
log "PASS"
