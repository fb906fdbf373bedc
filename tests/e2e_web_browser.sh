#!/bin/bash
# dialects: sqlite
# matterlink-web in a real browser (tests/web_browser.py): headless Chromium on a 390 px
# phone window opens /sign-in; labels, the style sheet under the CSP, the keyboard, and a
# screenshot in the build directory (web-sign-in-390.png, for docs/web.md). The full flow
# against the core comes with the core's api socket.
. "$ML_SOURCE/tests/lib_e2e.sh"
WEB_PID=
web_cleanup() {
    status=$?
    stop_process "$WEB_PID"
    (exit $status)
    cleanup
}
trap web_cleanup EXIT
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && /usr/bin/python3 -c 'import selenium' ||
    fail "needs chromium, chromium-driver and python3-selenium (sh scripts/deps.sh --servers)"

PORT=$(free_port)
cat >"$W/web.cfg" <<CFG
web
    listen = 127.0.0.1:$PORT
    core_endpoint = ipc://$W/nobody.sock
    core_timeout_ms = 300
    title = "Acme LLP payments"
CFG
"$ML_BIN/matterlink-web" run -c "$W/web.cfg" >"$W/web.log" 2>&1 &
WEB_PID=$!
deadline=$(($(date +%s) + 10))
until grep -q "serving the payer portal" "$W/web.log"; do
    kill -0 "$WEB_PID" 2>/dev/null || fail "matterlink-web did not start"
    [ "$(date +%s)" -ge "$deadline" ] && fail "matterlink-web did not start within 10 s"
    sleep 0.1
done
# Chromium keeps its profile and crash files under HOME: give it one of the test's own.
HOME="$W" timeout 50 /usr/bin/python3 "$ML_SOURCE/tests/web_browser.py" "http://127.0.0.1:$PORT" \
    "$ML_BIN/screenshots" || fail "browser checks"
log "PASS"
