#!/bin/bash
# dialects: sqlite
# What the staff CLI tells an operator: a user who may not use the admin socket is told
# "permission denied" (not that the core does not answer); every option with a fixed set of
# values (found in each command's --help) refuses any other value, with exit 2 and the list;
# tables line up by terminal columns (a CJK character takes two, a combining mark none) and
# show bidirectional overrides escaped, so a name cannot reorder its row.
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
        chmod 600 "$W/admin.sock"
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

# Every enumerated option of every command, as --help lists them, refuses a value outside its
# list before anything is sent.
checked=$(python3 - "$ML_BIN/matterlink" "ipc://$W/admin.sock" <<'PY'
import re, subprocess, sys
cli, admin = sys.argv[1], sys.argv[2]
run = lambda *args: subprocess.run([cli, "--admin", admin, *args], capture_output=True, text=True)
commands = []
for line in run("--help").stdout.splitlines():
    if re.match(r"^  [a-z]", line):
        words = []
        for word in line.split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        if words not in commands:
            commands.append(words)
checked = 0
for command in commands:
    lines = run(*command, "--help").stdout.splitlines()
    for index, line in enumerate(lines):
        option = re.match(r"^    (\S+)(?: \S+)?\s{2,}(.*)$", line)
        if not option:
            continue
        about = option.group(2)
        if index + 1 < len(lines) and lines[index + 1].startswith(" " * 30):
            about += " " + lines[index + 1].strip()
        choices = about.rsplit(": ", 1)[-1]
        if ": " not in about or not re.fullmatch(r"[\w|-]+(, [\w|-]+)*( or [\w|-]+)?", choices):
            continue
        name = option.group(1)
        args = [*command, name, "bogus"] if name.startswith("-") else [*command, "bogus"]
        result = run(*args)
        if result.returncode != 2 or choices not in result.stderr or "'bogus'" not in result.stderr:
            sys.exit("%s: exit %d, %r" % (" ".join(args), result.returncode, result.stderr))
        checked += 1
print(checked)
PY
) || fail "an enumerated option took an unknown value: $checked"
[ "$checked" -ge 14 ] || fail "only $checked enumerated options found in the help"
out=$(cli postings --status reject 2>&1)
[ $? = 2 ] && echo "$out" | grep -q "pending, delivered, posted, rejected or reversed, not 'reject'" ||
    fail "postings --status reject: $out"
log "$checked enumerated options refuse unknown values, e.g. $(echo "$out" | head -n 1)"

# Payers whose names are CJK, carry a combining mark, or hold a right-to-left override.
cjk=$(printf '\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x8d Chen')      # 李小龍 Chen
combining=$(printf 'Jose\xcc\x81 Marti\xcc\x81n')                  # José Martín, decomposed
override=$(printf 'Invoice \xe2\x80\xaefdp.exe')                     # U+202E
for name in "$cjk" "$combining" "$override" "Plain Name"; do
    cli payer add --firm acme --name "$name" --email "p$RANDOM@example.com" >/dev/null ||
        fail "payer add '$name'"
done
table=$(cli payer list --firm acme) || fail "payer list"
echo "$table" | grep -q "$(printf '\xe2\x80\xae')" && fail "a bidi override reached the terminal: $table"
echo "$table" | grep -qF 'Invoice \u202efdp.exe' || fail "the override is not shown escaped: $table"
columns=$(echo "$table" | python3 -c '
import sys, unicodedata
def width(text):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
starts = set()
for line in sys.stdin.read().splitlines()[1:-1]:
    starts.add(width(line[:line.index("@") - line[:line.index("@")][::-1].index(" ")]))
print(len(starts))
')
[ "$columns" = 1 ] || fail "the e-mail column does not line up:
$table"
# With --json the override is a JSON escape: the same text to a JSON reader.
json=$(cli --json payer list --firm acme) || fail "payer list --json"
echo "$json" | grep -q "$(printf '\xe2\x80\xae')" && fail "a bidi override reached the terminal in JSON"
echo "$json" | python3 -c "import json, sys; names = [p['name'] for p in json.load(sys.stdin)['payers']]; sys.exit(0 if sys.argv[1] in names else 1)" "$override" ||
    fail "the JSON does not hold the payer's name as it is: $json"
log "a payer table with CJK, combining and bidi names lines up:
$table"

log "PASS"
