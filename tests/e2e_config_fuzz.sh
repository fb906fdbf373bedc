#!/bin/bash
# dialects: sqlite
# Hostile configuration files (tests/config_fuzz.py): the core's, the web's and the agent's
# files, each working to start with (every optional section set, secrets in files and a
# database password in the agent's connection string), changed one way at a time and given
# to `matterlink-core run` and `register-agent`, `matterlink-agent run` and `check`,
# `matterlink-web run` and `matterlink --config`. Each must refuse the file with a documented
# exit code and a message of its own, or serve and stop cleanly on SIGTERM: no signal, no
# sanitizer report, no secret of the file quoted. ML_CONFIG_FUZZ_COUNT sets the number of
# files (default 150), ML_CONFIG_FUZZ_SEED the seed (each run prints its own).
. "$ML_SOURCE/tests/lib_e2e.sh"
setup 2 4
WEB_PORT=$(free_port)
printf 'sk_test_ProcessorSecret99\n' >"$W/processor.key"
printf 'SmtpSecret77\n' >"$W/smtp.password"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/web-form.key"
chmod 600 "$W/processor.key" "$W/smtp.password" "$W/web-form.key"
printf 'not a secret\n' >"$W/notes.txt"
# Every optional key of the core section too (setup writes the required ones).
sed -i "s|^    agents = .*|&\n    max_firm_items = 250000\n    window = 8\n    readers = 1|" "$W/core.cfg"
cat >>"$W/core.cfg" <<CFG
api
    endpoint = ipc://$W/api.sock
portal
    public_url = http://127.0.0.1:$WEB_PORT
    welcome_hours = 72
    session_idle_minutes = 30
autopay
    agent_wait_minutes = 60
processor
    kind = http
    endpoint = http://127.0.0.1:1/api
    api_key_file = $W/processor.key
    timeout_ms = 5000
mail
    smtp_url = "smtp://127.0.0.1:1"
    starttls = no
    from = payments@matterlink.test
    username = matterlink
    password_file = $W/smtp.password
    outbox_key = $W/outbox.key
CFG
cat >"$W/web.cfg" <<CFG
web
    listen = 127.0.0.1:$WEB_PORT
    core_endpoint = ipc://$W/api.sock
    core_timeout_ms = 2000
    threads = 2
    io_threads = 1
    max_connections = 64
    per_ip_connections = 16
    connection_timeout_s = 30
    connection_memory = 32768
    body_limit = 16384
    title = "Payer portal"
    form_key_file = $W/web-form.key
CFG
write_agent_config "$W/agent.cfg" "$MATTER_CONNECTION;PWD=Hunter2Secret" "$W/agent.cert_secret"
cat >>"$W/agent.cfg" <<CFG
    others = "tcp://127.0.0.1:1 $CORE_KEY"
CFG
chmod 600 "$W"/*.cfg
COUNT=${ML_CONFIG_FUZZ_COUNT:-150}
SEED=${ML_CONFIG_FUZZ_SEED:-$(date +%s)}
log "seed $SEED (ML_CONFIG_FUZZ_SEED=$SEED repeats this run)"
/usr/bin/python3 "$ML_SOURCE/tests/config_fuzz.py" "$ML_BIN" "$W" "$COUNT" "$SEED" || fail "the configuration files"
log "PASS"
