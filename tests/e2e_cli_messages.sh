#!/bin/bash
# dialects: sqlite
# What the staff CLI tells an operator: a user who may not use the admin socket is told
# "permission denied" (not that the core does not answer).
. "$(dirname "$0")/lib_e2e.sh"
setup 5 20
start_core

# Run the CLI as a user who may not use the admin socket: as root, the user nobody (the
# socket's folder is root's, mode 0700); otherwise the socket file without permissions.
as_stranger() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
            "$ML_BIN/matterlink" --admin "ipc://$W/admin.sock" "$@"
    else
        chmod 000 "$W/admin.sock"
        "$ML_BIN/matterlink" --admin "ipc://$W/admin.sock" "$@"
        rc=$?
        chmod 700 "$W/admin.sock"
        return $rc
    fi
}
out=$(as_stranger status 2>&1)
rc=$?
[ $rc = 3 ] || fail "a stranger's status exited with $rc, not 3: $out"
echo "$out" | grep -q "permission denied" || fail "a stranger is not told permission denied: $out"
log "a user without access to the admin socket: $out"
out=$("$ML_BIN/matterlink" --admin "ipc://$W/nothing.sock" status 2>&1)
[ $? = 3 ] && echo "$out" | grep -q "does not exist" || fail "a wrong socket path: $out"
cli status >/dev/null || fail "the core's own user cannot use the socket"

log "PASS"
