#!/usr/bin/python3
"""config_fuzz: hostile configuration files for the three daemons and the staff CLI
(tests/e2e_config_fuzz.sh).

usage: config_fuzz.py BIN_DIRECTORY WORK_DIRECTORY COUNT SEED

WORK_DIRECTORY holds a working set the caller made: core.cert(_secret), outbox.key,
agent.cert(_secret), agents/, matter.db, and base files core.cfg, web.cfg, agent.cfg that
work. Each case takes one base file, changes it (a value of every wrong sort, a line lost,
doubled, indented wrongly or cut short, bytes flipped, an unknown key or section, CRLF, a
byte order mark, a NUL, deep nesting, many keys) and runs `matterlink-core run`,
`matterlink-core register-agent`, `matterlink-agent run`, `matterlink-agent check`,
`matterlink-web run` or `matterlink --config ... status` with it.

Every case must either refuse the file with one of the exit codes docs/config.md gives the
command, saying why in a message of the program's own, or run and stop cleanly on SIGTERM
(exit 0). No case may end on a signal or leave a sanitizer report, and
no output may quote a secret of the configuration: the database password, the SMTP
password, the processor's API key, or the key files' contents. Prints one line per failure
and a summary; exits 1 on any failure.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

BIN, WORK, COUNT, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(SEED)

#  Secrets the base files hold or point at: none may appear in any output.
PASSWORD = "Hunter2Secret"  # the matter database's (agent.cfg) and the store's
SMTP_PASSWORD = "SmtpSecret77"
API_KEY = "sk_test_ProcessorSecret99"
SECRETS = [PASSWORD, SMTP_PASSWORD, API_KEY]


def secret_file_texts():
    """The secret halves of the keys the working set holds, as they are written."""
    texts = []
    for name in ("core.cert_secret", "agent.cert_secret"):
        with open(os.path.join(WORK, name)) as file:
            found = re.search(r'secret-key = "(.*)"', file.read())
            if found:
                texts.append(found.group(1))
    with open(os.path.join(WORK, "outbox.key"), "rb") as file:
        raw = file.read()
    texts.append(raw.hex())
    return texts


SECRETS += secret_file_texts()
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed|"
                       r"Segmentation fault|stack-overflow|heap-buffer|use-after-free")

VALUES = [b"", b"0", b"-1", b"1", b"2", b"99999999999999999999", b"2147483648", b"-2147483649",
          b"1e9", b"0x10", b" 5", b"5 ", b"abc", b'"unterminated', b"'single'", b'""', b'"a"b"',
          b"A" * 5000, b"%s%n%x%p", b"a\x00b", b"\xff\xfe\xfd", b"\xc3\x28", b"../notes.txt", b"..",
          b"/dev/zero", b"/dev/null", b"/proc/self/mem", b"/nonexistent/file", b"tcp://*:0",
          b"tcp://256.1.1.1:99999", b"tcp://127.0.0.1:-1", b"tcp://[::1]:1", b"ipc://" + b"p" * 300,
          b"inproc://x", b"udp://x", b"tcp://", b"ipc://", b"sqlite", b"oracle", b"sqlserver",
          b"4242424242424242", b"${HOME}", b"$(id)", b"`id`", b"a\rb", b"\t", b"yes", b"no",
          b"true", b"https://", b"http://127.0.0.1:1/x", b"smtp://", b"smtps://127.0.0.1:0",
          b"Driver=SQLite3;Database=/nonexistent/x.db", b"postgresql://postgres@127.0.0.1:1/x",
          b"Driver=Nope;Database=x", b"host=127.0.0.1 port=1", b"0.0.0.0:8080", b"127.0.0.1:0",
          b"127.0.0.1:99999", b"[::1]:8080", b"localhost:8080", b"1.2.3.4", b":8080",
          b"\xe2\x80\xae\xe2\x80\xae", b"\xf0\x9f\x92\xb8" * 300, b"=", b"key = value"]
INDENTS = [b"", b" ", b"  ", b"\t", b"        ", b"    \t", b" " * 400]


def replace_value(lines):
    keyed = [index for index, line in enumerate(lines) if b"=" in line and not line.lstrip().startswith(b"#")]
    if not keyed:
        return lines
    index = rng.choice(keyed)
    head = lines[index].split(b"=", 1)[0]
    value = rng.choice(VALUES)
    if rng.random() < 0.3 and not value.startswith(b'"'):
        value = b'"' + value + b'"'
    lines[index] = head + b"= " + value
    return lines


def mutate(text):
    lines = text.split(b"\n")
    kind = rng.randrange(17)
    if kind <= 4:
        lines = replace_value(lines)
    elif kind == 5 and lines:
        del lines[rng.randrange(len(lines))]
    elif kind == 6 and lines:
        index = rng.randrange(len(lines))
        lines.insert(index, lines[index])
    elif kind == 7 and lines:
        index = rng.randrange(len(lines))
        lines[index] = rng.choice(INDENTS) + lines[index].lstrip()
    elif kind == 8:
        lines.insert(rng.randrange(len(lines) + 1),
                     rng.choice([b"    nosuchkey = 1", b"nosection", b"nosection\n    key = 1", b"    database",
                                 b"core\n    endpoint = tcp://127.0.0.1:1", b"=", b"    = value", b"    key =",
                                 b"    key", b"    \"quoted key\" = 1", b"    k\x00y = 1", b"    K\xffY = 1",
                                 b"    key = value # comment", b"#", b"    #", b"\x00", b"\\"]))
    elif kind == 9:
        cut = rng.randrange(len(text) + 1)
        return text[:cut]
    elif kind == 10:
        data = bytearray(text)
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    elif kind == 11:
        return text.replace(b"\n", b"\r\n")
    elif kind == 12:
        return b"\xef\xbb\xbf" + text
    elif kind == 13:
        depth = rng.choice([50, 500, 5000])
        nested = b"\n".join(b"    " * level + b"s%d" % level for level in range(depth))
        return text + b"\n" + nested + b"\n"
    elif kind == 14:
        many = b"\n".join(b"    key%d = %d" % (number, number) for number in range(rng.choice([100, 5000])))
        section = rng.choice([line for line in lines if line and not line.startswith((b" ", b"#"))] or [b"core"])
        return text + b"\n" + section + b"\n" + many + b"\n"
    elif kind == 15:
        # Two changes at once.
        return mutate(mutate(text))
    else:
        lines = replace_value(replace_value(lines))
    return b"\n".join(lines)


def read(name):
    with open(os.path.join(WORK, name), "rb") as file:
        return file.read()


BASES = {"core": read("core.cfg"), "web": read("web.cfg"), "agent": read("agent.cfg")}
#  What runs a file: (base, arguments after the program, whether it serves until stopped,
#  the exit codes it may refuse with).
RUNS = [
    ("core", ["matterlink-core", "run", "-c"], True, {1, 2}),
    ("core", ["matterlink-core", "register-agent", "--firm", "fuzz", "--name", "Fuzz LLP", "--cert",
              os.path.join(WORK, "agent.cert"), "-c"], False, {0, 1, 2}),
    ("agent", ["matterlink-agent", "run", "-c"], True, {1, 2}),
    ("agent", ["matterlink-agent", "check", "--timeout", "2", "-c"], False, {0, 1, 2}),
    ("web", ["matterlink-web", "run", "-c"], True, {1, 2}),
    ("core", ["matterlink", "status", "--timeout", "500", "--config"], False, {0, 1, 2, 3, 4, 5, 6}),
]

failures = 0
outcomes = {}


def failed(case, command, why, output):
    global failures
    failures += 1
    shown = output.decode("utf-8", "replace")[-1500:]
    print(f"FAIL case {case} ({' '.join(command[:2])}): {why}\n----- output\n{shown}\n-----", flush=True)


def run_case(case, run=None, unchanged=False):
    base, words, serves, refusals = run or rng.choice(RUNS)
    directory = os.path.join(WORK, "case")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    path = os.path.join(directory, base + ".cfg")
    text = BASES[base] if unchanged else mutate(BASES[base])
    with open(path, "wb") as file:
        file.write(text)
    os.chmod(path, 0o600)
    words = list(words)
    if words[0] == "matterlink":  # the option goes before the command
        command = [os.path.join(BIN, words[0]), "--config", path] + words[1:-1]
    else:
        command = [os.path.join(BIN, words[0])] + words[1:] + [path]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, cwd=directory, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=2.5 if serves else 20)
        running = False
    except subprocess.TimeoutExpired:
        running = True
    if running:
        if not serves:
            process.kill()
            output, _ = process.communicate()
            failed(case, command, "did not finish in 20 s", output)
            return
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            failed(case, command, "did not stop within 15 s of SIGTERM", output)
            return
    code = process.returncode
    outcome = "served" if running else f"exit {code}"
    if os.environ.get("ML_CONFIG_FUZZ_SHOW"):  # to read what the programs say
        print(f"case {case}: {os.path.basename(command[0])} {command[1]}: {outcome}: "
              + output.decode("utf-8", "replace").strip().replace("\n", " | ")[-300:], flush=True)
    if unchanged:
        if not running:
            failed(case, command, f"the unchanged file did not serve ({outcome})", output)
        return
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if SANITIZER.search(output.decode("utf-8", "replace")):
        failed(case, command, "a sanitizer report or crash", output)
    elif code < 0:
        failed(case, command, f"ended on signal {-code}", output)
    elif running and code != 0:
        failed(case, command, f"stopped with exit code {code}, not 0", output)
    elif not running and code not in refusals:
        failed(case, command, f"exit code {code} is none of {sorted(refusals)}", output)
    elif not running and code != 0 and not output.strip():
        failed(case, command, f"refused (exit {code}) without saying why", output)
    elif b"(zconfig)" in output:
        failed(case, command, "czmq's reader printed a line of the file", output)
    else:
        for secret in SECRETS:
            if secret.encode() in output:
                failed(case, command, "its output quotes a secret of the configuration", output)
                break


started = time.time()
#  The files as they are must serve, or the changes prove nothing.
for run in RUNS:
    if run[2]:
        run_case("unchanged", run, unchanged=True)
for case in range(COUNT):
    run_case(case)
print(f"config_fuzz: seed {SEED}, {COUNT} cases in {time.time() - started:.0f} s, {failures} failure(s); "
      + ", ".join(f"{name}: {count}" for name, count in sorted(outcomes.items())), flush=True)
sys.exit(1 if failures else 0)
