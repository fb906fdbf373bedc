#!/bin/bash
# dialects: sqlite
# The staff app's accounts end to end, in a real browser (tests/staff_web.py) against real
# core, agent, SMTP server and matterlink-web processes: the operator invites the firm's
# first administrator with the CLI; the invitation mail's link sets the password and the
# second factor (TOTP computed by the test, RFC 6238) and shows the recovery codes once; a
# sign-in without the code is not enough; the administrator invites a billing user from
# /staff/users, who accepts, signs in and gets 404 for the administrator's pages; the audit
# trail names who invited; a recovery code works once; staff forms without or with a wrong
# CSRF token change nothing.
. "$ML_SOURCE/tests/lib_e2e.sh"

setup 2 8
start_smtp
portal_config
start_core
start_agent
wait_for 30 "the agent to be online" agent_online

out=$(cli --json staff invite --firm acme --email ann@example.com --name "Ann Admin" --role admin) ||
    fail "staff invite: $out"
token=$(link_token ann@example.com staff/accept)
[ ${#token} = 43 ] || fail "no /staff/accept link in the invitation mail"
mails_where '"ann@example.com" in m["rcpt_tos"]' | grep -qx 1 || fail "one invitation mail"

start_web
HOME="$W" timeout 150 /usr/bin/python3 "$ML_SOURCE/tests/staff_web.py" "http://127.0.0.1:$WEB_PORT" \
    "$token" ann@example.com "Acme LLP" "$W/mail" "$ML_BIN/screenshots" || fail "the staff browser flow"

# The operator's view of the same: Bo is active, the audit names Ann.
cli --json staff list --firm acme | grep -q '"bo@example.com"' || fail "Bo in the operator's staff list"
cli --json staff audit --firm acme | grep -q 'Ann Admin' || fail "Ann in the operator's audit"
# The web logged no token, password or code.
grep -q -e "$token" -e "horse battery" "$W/web.log" && fail "a secret in the web's log"
log "PASS"
