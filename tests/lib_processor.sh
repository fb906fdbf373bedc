# Shared by the end-to-end tests that need the HTTP card processor: source after lib_e2e.sh.
# start_processor [processor_server.py options...] starts tests/processor_server.py on a free
# loopback port (its API key in an owner-only file) and adds a "processor" section of kind
# http to the core's configuration, with short timeouts (PROCESSOR_TIMEOUT_MS, default 300)
# and no retries, so an unknown outcome comes fast. Before start_core. The server is stopped
# on exit (lib_e2e.sh's cleanup); processor_control JSON changes its switches at run time.
start_processor() {
    (umask 077 && printf 'sk_test_%s\n' "$(basename "$W" | tr -c 'A-Za-z0-9\n' _)" >"$W/processor.key")
    /usr/bin/python3 "$ML_SOURCE/tests/processor_server.py" --api-key-file "$W/processor.key" \
        "$@" >"$W/processor.port" 2>>"$W/processor.log" &
    PROCESSOR_PID=$!
    wait_for 10 "the processor test server" test -s "$W/processor.port"
    PROCESSOR_URL="http://127.0.0.1:$(cat "$W/processor.port")"
    cat >>"$W/core.cfg" <<CFG
processor
    kind = http
    endpoint = "$PROCESSOR_URL"
    api_key_file = $W/processor.key
    connect_timeout_ms = ${PROCESSOR_TIMEOUT_MS:-300}
    timeout_ms = ${PROCESSOR_TIMEOUT_MS:-300}
    retries = 0
CFG
}

processor_control() {
    curl -sf -X POST -H 'Content-Type: application/json' -d "$1" "$PROCESSOR_URL/_test/control" \
        >/dev/null || fail "processor control $1"
}
