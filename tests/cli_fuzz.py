#!/usr/bin/python3
"""cli_fuzz: hostile command lines for the staff CLI against a running core (tests/e2e_cli_fuzz.sh).

usage: cli_fuzz.py MATTERLINK ADMIN_ENDPOINT COUNT SEED

Each run is a command of docs/admin-api.md's table (read from `matterlink --help`, so a new
command is fuzzed as soon as it is listed) with some of its options, and values of every
sort: empty, long, control characters, odd Unicode, numbers at and past their bounds,
amounts in every wrong shape, dates that are no days, card numbers where none belongs; a
card line on standard input, good or bad. Every run must end with one of the documented exit
codes (0 to 6, never a signal), say why on standard error when it fails (a message of the
CLI's own, "matterlink: ..." or its usage), leave no sanitizer
report, and show no card number it was given (on the command line or on standard input) in
what it prints. Ids, uuids and keys that a successful run printed (with --json) are reused by
later runs. Prints one line per failure and a summary; exits 1 on any failure.
"""
import json
import os
import random
import re
import subprocess
import sys

BINARY, ENDPOINT, COUNT, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
CARD = "4242424242424242"
rng = random.Random(SEED)


def commands():
    """The commands the CLI's usage lists: their words, and the options each names (a
    command's usage may go on over indented lines)."""
    usage = subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout
    found = []
    listing = False
    for line in usage.splitlines():
        if line.startswith("commands:"):
            listing = True
            continue
        if not listing or not line.strip():
            continue
        if not line.startswith(" "):
            listing = False
            continue
        text = re.split(r"\s{2,}", line.strip())[0]  # the usage, not its description
        if re.match(r"^  [a-z]", line):
            words = []
            for token in text.split():
                if not re.fullmatch(r"[a-z][a-z-]*", token):
                    break
                words.append(token)
            found.append((words, set()))
        if found:
            found[-1][1].update(re.findall(r"--[a-z][a-z0-9-]*", text))
    return [(words, sorted(options)) for words, options in found if words]


COMMANDS = commands()
VALUES = ["", "acme", "ACME", "nosuch", "x" * 64, "x" * 5000, "é" * 100, "\t", "\u202eabc", "a\u0001b",
          "'; DROP TABLE firm; --", "%s%n", "1.00", "-1.00", "0.001", "1e3", "1,000.00", "9999999999999.99",
          "10000000000000.00", "0", "-1", "1", "2147483648", "9223372036854775808", "2026-02-30",
          "2028-02-29", "0000-00-00", "USD", "usd", "XXX", "C-00001", "M-000001", "INV-0000001",
          "INV-0000001=1.00", "INV-0000001=1.00,INV-0000002=2.00", "M-000001=5.00", "OP-001", "TR-001",
          "pat@example.com", "not an email", "12/2031", "13/2031", "04/1999", "TRUST", "OPERATING",
          "client", "matter", "invoice", "admin", "billing", "read", "posted", "pending", "--json",
          "-", "--", CARD, "4242 4242 4242 4242", "00000000-0000-4000-8000-000000000000"]
CARD_LINES = ["4242424242424242 12/2031 123", "4242 4242 4242 4242 12/2031 123", "4000000000000002 12/2031 123",
              "4242424242424242 13/2031 123", "4242424242424242 12/2031", "", "x" * 5000,
              "4242424242424242 12/2031 12345", "4242424242424243 12/2031 123"]
LEARNT = {}


def learn(reply):
    if isinstance(reply, dict):
        for name, member in reply.items():
            if re.search(r"(_id|_uuid|_key)$", name) and isinstance(member, (str, int)) and \
                    not isinstance(member, bool):
                pool = LEARNT.setdefault(name, [])
                if member not in pool and len(pool) < 100:
                    pool.append(str(member))
            else:
                learn(member)
    elif isinstance(reply, list):
        for member in reply[:50]:
            learn(member)


def value():
    if LEARNT and rng.random() < 0.3:
        return rng.choice(rng.choice(list(LEARNT.values())))
    return rng.choice(VALUES)


def learnt(name, fallback):
    return rng.choice(LEARNT[name]) if LEARNT.get(name) else fallback


def amount():
    return "%d.%02d" % (rng.randint(0, 9), rng.randint(1, 99))


def who():
    if LEARNT.get("payer_id") and rng.random() < 0.3:
        return ["--payer", learnt("payer_id", "1")]
    return ["--payer-name", "Pat Doe", "--payer-email", "pat%d@example.com" % rng.randint(1, 999)]


def lines():
    chosen = rng.choice([["--invoice", "INV-%07d=%s" % (rng.randint(1, 24), amount())],
                         ["--trust", "M-%06d=%s" % (rng.randint(1, 6), amount())],
                         ["--client", "C-%05d" % rng.randint(1, 3), "--amount", amount()]])
    return chosen


# Whole command lines of the commands that move money, as an operator types them
# (docs/admin-api.md): one word of them is changed at most, so most reach the processor and
# the books.
TEMPLATES = [
    lambda: ["pay", "--client", "C-%05d" % rng.randint(1, 3), "--amount", amount()],
    lambda: ["charge"] + lines() + who() + ["--card-stdin"],
    lambda: ["link", "create"] + lines() + who(),
    lambda: ["payer", "add", "--name", "Pat Doe", "--email", "pat%d@example.com" % rng.randint(1, 999)],
    lambda: ["refund", learnt("charge_key", "k"), "--amount", amount()],
    lambda: ["void", learnt("charge_key", "k")],
    lambda: ["chargeback", learnt("charge_key", "k"), "--amount", amount()],
    lambda: ["payment", "show", learnt("payment_uuid", "u")],
    lambda: ["posting", learnt("posting_uuid", "u")],
]


def invocation():
    argv = [BINARY, "--admin", ENDPOINT, "--timeout", "5000"]
    if rng.random() < 0.3:
        words = rng.choice(TEMPLATES)()
        if rng.random() < 0.4:
            index = rng.randrange(len(words))
            if rng.random() < 0.3:
                del words[index]
            else:
                words[index] = value()
        argv += ["--json"] + words
        stdin = (rng.choice(CARD_LINES[:1] * 6 + CARD_LINES) + "\n") if "--card-stdin" in argv else ""
        return argv, stdin
    words, options = rng.choice(COMMANDS)
    if rng.random() < 0.5:
        argv.append("--json")
    argv += words
    if rng.random() < 0.6:
        argv.append(value())  # a positional argument (an id, a token, a text)
    for option in rng.sample(options, min(len(options), rng.randint(0, 4))):
        argv.append(option)
        if rng.random() < 0.85:
            argv.append(value())
    if rng.random() < 0.05:
        argv.append(rng.choice(["--nosuch", "-x", "--help", "extra", "--firm"]))
    stdin = rng.choice(CARD_LINES) + "\n" if "--card-stdin" in argv else ""
    return argv, stdin


failures = 0
exits = {}


def failed(what, argv):
    global failures
    failures += 1
    shown = " ".join(repr(word) if not re.fullmatch(r"[\w@./:=,-]+", word) else word for word in argv[5:])
    print("FAIL: %s; command: matterlink %s" % (what, shown[:300]), flush=True)


for _ in range(COUNT):
    argv, stdin = invocation()
    try:
        run = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=60,
                             env=dict(os.environ, MATTERLINK_CORE_CONFIG="/nonexistent"))
    except subprocess.TimeoutExpired:
        failed("no exit within 60 s", argv)
        continue
    out = run.stdout.decode("utf-8", "replace")
    err = run.stderr.decode("utf-8", "replace")
    exits[run.returncode] = exits.get(run.returncode, 0) + 1
    if run.returncode not in range(0, 7):
        failed("exit %d (not one of the documented 0 to 6): %s" % (run.returncode, err[-300:]), argv)
    elif run.returncode != 0 and not err.strip():
        failed("exit %d with nothing said on standard error" % run.returncode, argv)
    elif run.returncode != 0 and not re.match(r"(matterlink|usage)", err.lstrip()):
        failed("exit %d with a message that is not the CLI's: %s" % (run.returncode, err[:200]), argv)
    if re.search(r"(Address|Leak|UndefinedBehavior)Sanitizer|runtime error:", err):
        failed("a sanitizer report: " + err[:400], argv)
    for card in (CARD, "4242 4242 4242 4242", "4000000000000002", "4242424242424243"):
        if card in out or card in err:
            failed("it printed the card number %s" % card, argv)
    if run.returncode == 0 and "--json" in argv:
        try:
            learn(json.loads(out))
        except ValueError:
            pass
print("cli_fuzz: %d commands (seed %d): exits %s; %d failures" %
      (COUNT, SEED, ", ".join("%d x%d" % pair for pair in sorted(exits.items())), failures), flush=True)
sys.exit(1 if failures else 0)
