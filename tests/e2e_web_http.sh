#!/bin/bash
# dialects: sqlite
# matterlink-web at the HTTP level (tests/web_http.py): security headers on every
# response, routing (404, 405), limits (413, oversize headers), malformed forms and queries
# (400: percent-encoding, UTF-8, NUL), the style sheet, no state change on GET, pre-session
# CSRF, the 503 page while the core's api endpoint has nothing behind it; then HTTPS with a
# self-signed certificate (HSTS, __Host- cookies), and the refusals at start: plain HTTP
# on 0.0.0.0, a TLS key that others can read, an unknown key.
. "$ML_SOURCE/tests/lib_e2e.sh"
WEB_PID=
web_cleanup() {
    status=$?
    stop_process "$WEB_PID"
    (exit $status)
    cleanup
}
trap web_cleanup EXIT

# write_web_config FILE LISTEN [EXTRA LINES]
write_web_config() {
    cat >"$1" <<CFG
web
    listen = $2
    core_endpoint = ipc://$W/nobody.sock
    core_timeout_ms = 300
    threads = 2
${3:-}
CFG
}

start_web() {
    "$ML_BIN/matterlink-web" run -c "$1" --log-level info >>"$W/web.log" 2>&1 &
    WEB_PID=$!
    deadline=$(($(date +%s) + 10))
    until grep -q "serving the payer portal" "$W/web.log"; do
        kill -0 "$WEB_PID" 2>/dev/null || fail "matterlink-web did not start"
        [ "$(date +%s)" -ge "$deadline" ] && fail "matterlink-web did not start within 10 s"
        sleep 0.1
    done
}

PORT=$(free_port)
write_web_config "$W/web.cfg" "127.0.0.1:$PORT"
start_web "$W/web.cfg"
python3 "$ML_SOURCE/tests/web_http.py" plain "$PORT" || fail "plain HTTP checks"
stop_process "$WEB_PID"
WEB_PID=
log "plain HTTP on loopback: ok"

# HTTPS with a self-signed certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$W/web-key.pem" -out "$W/web-cert.pem" >/dev/null 2>&1 || fail "openssl req"
chmod 600 "$W/web-key.pem"
PORT=$(free_port)
write_web_config "$W/web-tls.cfg" "127.0.0.1:$PORT" "    tls_certificate = $W/web-cert.pem
    tls_key = $W/web-key.pem"
: >"$W/web.log"
start_web "$W/web-tls.cfg"
python3 "$ML_SOURCE/tests/web_http.py" tls "$PORT" "$W/web-cert.pem" || fail "HTTPS checks"
stop_process "$WEB_PID"
WEB_PID=
log "HTTPS: ok"

# Refusals at start, each with its exit code and a message that says what to do.
expect_refusal() { # CONFIG CODE TEXT
    "$ML_BIN/matterlink-web" run -c "$1" >"$W/refusal.out" 2>&1
    code=$?
    [ "$code" = "$2" ] || fail "expected exit $2, got $code: $(cat "$W/refusal.out")"
    grep -q "$3" "$W/refusal.out" || fail "expected '$3' in: $(cat "$W/refusal.out")"
}
write_web_config "$W/any.cfg" "0.0.0.0:$(free_port)"
expect_refusal "$W/any.cfg" 1 "not a loopback address.*TLS reverse proxy"
chmod 644 "$W/web-key.pem"
expect_refusal "$W/web-tls.cfg" 1 "chmod 600"
write_web_config "$W/typo.cfg" "127.0.0.1:$(free_port)" "    body_limt = 100"
expect_refusal "$W/typo.cfg" 2 "unknown key 'web/body_limt' (did you mean 'web/body_limit'?)"
write_web_config "$W/half.cfg" "127.0.0.1:$(free_port)" "    tls_key = $W/web-key.pem"
expect_refusal "$W/half.cfg" 1 "go together"
log "refusals: ok"
log "PASS"
