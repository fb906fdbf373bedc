#!/bin/bash
# dialects: sqlite
# What IT meets when a file or a setting is wrong: each mistake gets a message that names it
# and changes nothing (issue 11, points 5 and 7).
. "$(dirname "$0")/lib_e2e.sh"
setup 2 4

# A mistyped SQLite path says the file does not exist, and creates no file.
write_agent_config "$W/typo.cfg" "Driver=SQLite3;Database=$W/matter.bd;StepAPI=1" "$W/agent.cert_secret"
status=0
"$ML_BIN/matterlink-agent" check -c "$W/typo.cfg" >"$W/check.out" 2>&1 || status=$?
[ "$status" = 1 ] || fail "check on a missing database exited with $status: $(cat "$W/check.out")"
grep -q "the SQLite database file $W/matter.bd does not exist" "$W/check.out" || fail "no 'does not exist' message: $(cat "$W/check.out")"
[ ! -e "$W/matter.bd" ] || fail "check created the mistyped database file"
# check reaches the core too, so the good case needs one running.
start_core
"$ML_BIN/matterlink-agent" check -c "$W/agent.cfg" >"$W/check.out" 2>&1 || fail "check failed on a good database: $(cat "$W/check.out")"
stop_core

# Every unknown key is an error naming the nearest known one, in both daemons: a misspelled
# core/endpoint must not bind every interface with the default.
sed 's/^    endpoint = tcp/    endpiont = tcp/' "$W/core.cfg" >"$W/typo_core.cfg"
status=0
timeout 20 "$ML_BIN/matterlink-core" run -c "$W/typo_core.cfg" >"$W/typo_core.out" 2>&1 || status=$?
[ "$status" = 2 ] || fail "the core ran (or failed otherwise, $status) with a misspelled key: $(cat "$W/typo_core.out")"
grep -q "typo_core.cfg: unknown key 'core/endpiont' (did you mean 'core/endpoint'?)" "$W/typo_core.out" ||
    fail "no unknown-key message: $(cat "$W/typo_core.out")"
printf 'mail\n    smtp_url = smtp://127.0.0.1:1\n    form = a@b.example\n' >>"$W/typo_core.cfg"
sed 's/endpiont/endpoint/' "$W/typo_core.cfg" >"$W/typo_mail.cfg"
status=0
timeout 20 "$ML_BIN/matterlink-core" run -c "$W/typo_mail.cfg" >"$W/typo_core.out" 2>&1 || status=$?
[ "$status" = 2 ] && grep -q "unknown key 'mail/form' (did you mean 'mail/from'?)" "$W/typo_core.out" ||
    fail "a misspelled mail key was not refused ($status): $(cat "$W/typo_core.out")"
sed 's/^    poll_interval_ms/    poll_intervall_ms/' "$W/agent.cfg" >"$W/typo_agent.cfg"
status=0
timeout 20 "$ML_BIN/matterlink-agent" run -c "$W/typo_agent.cfg" >"$W/typo_agent.out" 2>&1 || status=$?
[ "$status" = 2 ] && grep -q "unknown key 'database/poll_intervall_ms' (did you mean 'database/poll_interval_ms'?)" "$W/typo_agent.out" ||
    fail "the agent accepted a misspelled key ($status): $(cat "$W/typo_agent.out")"

# An admin endpoint that is not an ipc socket file is refused unless admin/allow_tcp = 1.
ADMIN_PORT=$(free_port)
sed "s|^    endpoint = ipc://.*|    endpoint = tcp://127.0.0.1:$ADMIN_PORT|" "$W/core.cfg" >"$W/tcp_admin.cfg"
status=0
timeout 20 "$ML_BIN/matterlink-core" run -c "$W/tcp_admin.cfg" >"$W/tcp_admin.out" 2>&1 || status=$?
[ "$status" = 2 ] && grep -q "admin/endpoint 'tcp://127.0.0.1:$ADMIN_PORT' is not an ipc:// socket file" "$W/tcp_admin.out" ||
    fail "the core took a tcp admin endpoint without admin/allow_tcp ($status): $(cat "$W/tcp_admin.out")"

# The admin socket is its owner's only, or its owner's and the configured group's.
start_core
mode=$(stat -c %a "$W/admin.sock")
[ $((0$mode & 077)) = 0 ] || fail "the admin socket has mode $mode"
stop_core
printf '    group = %s\n' "$(id -gn)" >>"$W/core.cfg"
start_core
[ "$(stat -c '%a %G' "$W/admin.sock")" = "660 $(id -gn)" ] || fail "admin socket with a group: $(stat -c '%a %G' "$W/admin.sock")"
stop_core

# A secret certificate others could read is refused, with the chmod that fixes it and no hint
# to make a new (unregistered) key; fixed, the same key works.
chmod 640 "$W/core.cert_secret"
status=0
timeout 20 "$ML_BIN/matterlink-core" run -c "$W/core.cfg" >"$W/cert.out" 2>&1 || status=$?
[ "$status" = 1 ] && grep -q "core/certificate: $W/core.cert_secret has mode 0640, which lets other users read the secret key: chmod 600 $W/core.cert_secret" "$W/cert.out" ||
    fail "the core used a group-readable secret certificate ($status): $(cat "$W/cert.out")"
! grep -q keygen "$W/cert.out" || fail "the hint leads to a new key: $(cat "$W/cert.out")"
chmod 600 "$W/core.cert_secret"
chmod 644 "$W/agent.cert_secret"
status=0
timeout 20 "$ML_BIN/matterlink-agent" run -c "$W/agent.cfg" >"$W/cert.out" 2>&1 || status=$?
[ "$status" = 1 ] && grep -q "agent/certificate: $W/agent.cert_secret has mode 0644" "$W/cert.out" ||
    fail "the agent used a world-readable secret certificate ($status): $(cat "$W/cert.out")"
! grep -q keygen "$W/cert.out" || fail "the hint leads to a new key: $(cat "$W/cert.out")"
chmod 600 "$W/agent.cert_secret"
start_core
start_agent
wait_for 30 "the agent's session with its own key" replica_complete
log "PASS"
