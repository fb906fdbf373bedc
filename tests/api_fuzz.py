#!/usr/bin/python3
"""api_fuzz: hostile requests to every op of a running core (tests/e2e_api_fuzz.sh).

usage: api_fuzz.py ML_API_CLIENT ENDPOINT COUNT SEED [api]

The ops and the members each takes are read from core/ml_admin.c (the s_ops table), so a new
op is fuzzed as soon as it exists. Each request is an op with some of its members (and
sometimes a stranger) set to values of every JSON type: empty, long and odd strings, numbers
at and past every bound, floats, nulls, nested arrays and objects; and some requests are not
requests at all (not JSON, not an object, no op, a deep nesting). They go through
ml_api_client (one process, a request a line, answered a line at a time) to ENDPOINT, the
admin socket (the operator) or, with "api", the web's api socket (anonymous, or with made-up
sessions). The ids, uuids, keys and numbers of accepted replies are learnt and used in later
requests, so that the fuzz reaches what earlier requests made (a payer's methods, a
payment's posting).

Every request must get a reply within the client's timeout, and every reply must be a JSON
object with "ok" true or false, and an error that is a non-empty string when "ok" is false;
no reply may hold the card number sent. Prints one line per failure (the request cut to 300
bytes) and a summary; exits 1 on any failure.
"""
import json
import os
import random
import re
import subprocess
import sys

CLIENT, ENDPOINT, COUNT, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
API = len(sys.argv) > 5 and sys.argv[5] == "api"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CARD = "4242424242424242"
rng = random.Random(SEED)


def ops():
    text = open(os.path.join(SOURCE, "core", "ml_admin.c")).read()
    table = text[text.index("} s_ops[] = {"):]
    table = table[:table.index("\n};")]
    found = {}
    for match in re.finditer(r'\{"([a-z0-9-]+)",\s*((?:"[^"]*"\s*)+|NULL),\s*([A-Z_ |0]+),\s*([A-Z_ |0]+),',
                             table):
        members = "".join(re.findall(r'"([^"]*)"', match.group(2)))
        FLAGS[match.group(1)] = match.group(4)
        # The operator's socket is sent mostly the operator's ops (the others are refused
        # at once there), the api socket every op.
        if API or "S_OPERATOR" in match.group(3) or rng.random() < 0.1:
            found[match.group(1)] = members.split()
    return found


FLAGS = {}  # op -> its flags in the table (S_READ, S_BILLING, S_ADMIN: the staff role it needs)
OPS = ops()
# Real actors of the api socket (tests/e2e_api_fuzz.sh): a signed-in payer and a read-only
# staff member, each with the members that carry its session, the texts it must never be
# shown (another payer's name and e-mail), and its kind and role. Their requests must be
# answered for them alone: nothing another payer owns, no change a read-only role may not make.
ACTORS = json.loads(os.environ.get("API_FUZZ_ACTORS", "[]"))
STRINGS = ["", "acme", "ACME", "nosuchfirm", "x" * 64, "x" * 5000, "é" * 300, "\t", "\u202e",
           "'; DROP TABLE firm; --", "../../etc/passwd", "%s%n%x", "1.00", "-1.00", "0.001",
           "1e3", "1,00", "9999999999999.99", "10000000000000.00", CARD, "2026-02-30",
           "2026-12-06", "0000-00-00", "USD", "usd", "XXX", "I", "T", "posted", "pending",
           "a@b.c", "not an email", "x@" + "y" * 300 + ".com", "00000000-0000-0000-0000-000000000000",
           "C-00001", "M-00001", "INV-00001", "OP-001", "TR-001", "weekly", "monthly", "admin",
           "billing", "read", "enable", "disable", "true", "null", "{}", "\\", "\"", "\u0001"]
NUMBERS = [0, 1, 2, 3, -1, 20, 21, 500, 501, 1000, 5000, 2 ** 31 - 1, 2 ** 31, 2 ** 53, 2 ** 63 - 1,
           -2 ** 63, 999999999999999, 1000000000000000, 1.5, -0.0, 1e308]


def value(depth=0):
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(STRINGS)
    if kind < 0.65:
        return rng.choice(NUMBERS)
    if kind < 0.72:
        return rng.choice([True, False, None])
    if depth > 2:
        return rng.choice(STRINGS)
    if kind < 0.86:
        return [value(depth + 1) for _ in range(rng.choice([0, 1, 2, 3, 40]))]
    names = ["invoice", "trust", "reference", "kind", "amount", "amount_minor", "currency",
             "number", "exp_month", "exp_year", "cvc", "account", "x"]
    return {rng.choice(names): value(depth + 1) for _ in range(rng.randint(0, 5))}


def lines():
    return [{"invoice": rng.choice(["INV-00001", "INV-00002", "", "x" * 100]),
             "trust": rng.choice(["M-00001", "", None]),
             "amount_minor": rng.choice(NUMBERS), "amount": rng.choice(STRINGS)}
            for _ in range(rng.choice([0, 1, 2, 501]))]


def card():
    return {"number": rng.choice([CARD, "4000000000000002", "1234", "", CARD + "0"]),
            "exp_month": rng.choice(NUMBERS), "exp_year": rng.choice([2031, 1999, 2100, "2031"]),
            "cvc": rng.choice(["123", "", "12345", 123])}


PLAUSIBLE = {"firm": "acme", "currency": "USD", "amount": "1.00", "account": "OP-001",
             "client": "C-00001", "matter": "M-00001", "invoice": "INV-00001", "trust": "M-00001",
             "email": "pat@example.com", "payer_email": "pat@example.com",
             "receipt_email": "pat@example.com", "payer_name": "Pat Doe", "name": "Pat Doe",
             "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031,
             "frequency": "monthly", "day_rule": "last", "first_date": "2027-01-01",
             "level": "client", "number": "C-00001", "type": "OPERATING", "state": "open",
             "status": "posted", "by": "client-number", "match": "exact", "text": "C-00001",
             "limit": 10, "deadline_ms": 1000, "today": "2026-12-06", "action": "enable",
             "event": "agent_offline", "enabled": True, "minutes": 30, "field": "payer",
             "phone": "+1 555 0100", "token": "tok_visa_4242", "amount_minor": 100,
             "auto": True, "save_method": False, "save_payer": False, "ar_message": "fuzz"}


# Values the core gave back in accepted replies, by member name (ids, uuids, keys, numbers):
# later requests use them, so that they reach the objects earlier requests made (a payer
# added, then its methods, associations, schedules; a payment, then its posting).
LEARNT = json.loads(os.environ.get("API_FUZZ_LEARNT", "{}"))  # seeded: the other payer's ids
LEARNABLE = re.compile(r"(_id|_uuid|_key|_number|^number|^token|^reference)$")


def learn(reply):
    if isinstance(reply, dict):
        for name, member in reply.items():
            if LEARNABLE.search(name) and isinstance(member, (str, int)) and \
                    not isinstance(member, bool):
                pool = LEARNT.setdefault(name, [])
                if member not in pool and len(pool) < 200:
                    pool.append(member)
            else:
                learn(member)
    elif isinstance(reply, list):
        for member in reply[:50]:
            learn(member)


def plausible(name):
    """A value the op could accept, so that requests get past validation and deeper."""
    if name in LEARNT and rng.random() < 0.7:
        return rng.choice(LEARNT[name])
    if name in ("pay_key", "key", "idempotency_key"):
        return "fuzz-%016d" % rng.randint(1, 10 ** 15)
    if name in ("email", "payer_email") and rng.random() < 0.5:
        return "payer%d@example.com" % rng.randint(1, 10 ** 6)
    if name == "as_payer":
        return plausible("payer_id")
    if name in PLAUSIBLE:
        return PLAUSIBLE[name]
    if name.endswith("_id"):
        return rng.randint(1, 5)
    if name == "lines":
        return [{"invoice": "INV-0000%d" % rng.randint(1, 9), "amount_minor": rng.randint(1, 500)}]
    if name == "card":
        return {"number": CARD, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    return value()


def invoice():
    return "INV-%07d" % rng.randint(1, 24)


def money_lines():
    chosen = [{"invoice": invoice(), "amount_minor": rng.randint(1, 3000)}
              for _ in range(rng.randint(0, 2))]
    if not chosen or rng.random() < 0.3:
        chosen.append({"trust": "M-%06d" % rng.randint(1, 6), "amount_minor": rng.randint(1, 90000)})
    return chosen


def payer():
    if LEARNT.get("payer_id") and rng.random() < 0.5:
        return {"payer_id": rng.choice(LEARNT["payer_id"])}
    return {"payer_name": "Pat Doe", "payer_email": plausible("email")}


# Whole requests of the ops that move money, as a user makes them (docs/admin-api.md): the
# fuzz changes one member of them at most, so that most reach the processor and the books.
TEMPLATES = {
    "payment": lambda: dict(firm="acme", ar_message="fuzz", pay_key=plausible("pay_key"),
                            **payer(), **rng.choice([
                                {"lines": money_lines()},
                                {"auto": {"client": "C-%05d" % rng.randint(1, 3), "amount": "%d.%02d" % (rng.randint(0, 30), rng.randint(0, 99))}}]),
                            **rng.choice([{"card": {"number": CARD, "exp_month": 12, "exp_year": 2031, "cvc": "123"}},
                                          {"method_id": plausible("method_id")},
                                          {"card_token": "tok_visa_4242"}])),
    "pay": lambda: dict(firm="acme", client="C-%05d" % rng.randint(1, 3),
                        amount="%d.%02d" % (rng.randint(0, 20), rng.randint(0, 99)),
                        payer_name="Pat Doe", payer_email="pat@example.com",
                        ar_message="fuzz", pay_key=plausible("pay_key")),
    "link-create": lambda: dict(firm="acme", payer_name="Pat Doe", payer_email="pat@example.com",
                                lines=money_lines()),
    "refund": lambda: dict(charge_key=plausible("charge_key"), amount_minor=rng.randint(1, 3000)),
    "void": lambda: dict(charge_key=plausible("charge_key")),
    "chargeback": lambda: dict(charge_key=plausible("charge_key"), amount_minor=rng.randint(1, 3000)),
    "payer-add": lambda: dict(firm="acme", name="Pat Doe", email=plausible("email")),
}


def request():
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(["", "not json", "[1,2,3]", "42", "\"op\"", "{", "{\"op\": \"status\"",
                           "[" * 5000 + "]" * 5000, json.dumps({"op": "x" * 100000}),
                           "{\"op\": \"status\", \"op\": \"pay\"}", "{\"op\": null}", "{}"]), None
    money = [name for name in TEMPLATES if name in OPS]
    op = rng.choice(money) if money and rng.random() < 0.15 else rng.choice(list(OPS))
    body = {"op": op}
    if rng.random() < 0.03:
        body["op"] = rng.choice([1, None, [], op.upper(), op + " ", "nosuchop"])
    members = list(OPS[op])
    style = rng.random() * (0.5 if op in TEMPLATES else 1)
    careful = style < 0.4  # mostly plausible values, one or two hostile ones
    if style < 0.2:  # every member plausible but at most one: past validation, into the work
        if op in TEMPLATES:
            body.update(TEMPLATES[op]())
            members = list(body)[1:]
        else:
            for name in members:
                body[name] = plausible(name)
        if not API and rng.random() < 0.5:
            body["staff"] = "fuzzer"
        if members and rng.random() < 0.5:
            name = rng.choice(members)
            if rng.random() < 0.3:
                del body[name]
            else:
                body[name] = value()
        members = []
    for name in members:
        if careful:
            if rng.random() < 0.7:
                body[name] = plausible(name) if rng.random() < 0.85 else value()
        elif rng.random() < 0.6:
            if name == "lines" and rng.random() < 0.7:
                body[name] = lines()
            elif name == "card" and rng.random() < 0.7:
                body[name] = card()
            elif name == "firm" and rng.random() < 0.6:
                body[name] = "acme"
            elif name.endswith("_id") and rng.random() < 0.5:
                body[name] = rng.randint(1, 5)
            else:
                body[name] = value()
    if rng.random() < 0.1:
        body[rng.choice(["stranger", "staff", "session", "staff_session", "csrf", "firm"])] = value()
    actor = None
    # (An actor signed out would be no actor for the rest of the run.)
    if API and ACTORS and rng.random() < 0.5 and not op.endswith("sign-out"):
        actor = rng.choice(ACTORS)
        body.update(actor["members"])
    elif API:
        for name in ("session", "staff_session", "csrf"):
            if rng.random() < 0.3:
                body[name] = rng.choice(["", "x" * 43, "A" * 43, "x" * 5000, 1, None])
    return json.dumps(body), actor


failures = 0


def failed(what, sent):
    global failures
    failures += 1
    print("FAIL: %s; request: %s" % (what, sent[:300]), flush=True)


# One client process, a request a line, answered a line at a time: what a reply teaches
# shapes the requests after it.
client = subprocess.Popen([CLIENT, ENDPOINT, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, ML_API_CLIENT_TIMEOUT_MS="20000"))
refused = 0
accepted = {}
errors = {}  # "op: error" -> count, printed with API_FUZZ_ERRORS=N (the N most frequent)
for number in range(COUNT):
    sent, actor = request()
    try:
        client.stdin.write(sent + "\n")
        client.stdin.flush()
        reply = client.stdout.readline()
    except (BrokenPipeError, OSError):
        reply = ""
    if not reply:
        client.kill()
        failed("the client stopped after %d of %d replies (exit %s): %s" %
               (number, COUNT, client.wait(), client.stderr.read()[-500:]), sent)
        break
    reply = reply.rstrip("\n")
    if reply == "!no reply":
        failed("no reply", sent)
        continue
    try:
        answer = json.loads(reply)
    except ValueError:
        failed("a reply that is not JSON: " + reply[:200], sent)
        continue
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        failed("a reply without ok: " + reply[:200], sent)
        continue
    if not answer["ok"]:
        refused += 1
        if isinstance(answer.get("error"), str) and sent.startswith('{"op": "'):
            key = "%s: %s" % (sent[8:sent.index('"', 8)], re.sub(r"\d+", "N", answer["error"])[:90])
            errors[key] = errors.get(key, 0) + 1
        if not isinstance(answer.get("error"), str) or not answer["error"]:
            failed("a refusal without an error text: " + reply[:200], sent)
    else:
        learn(answer)
        op = str(json.loads(sent).get("op"))
        accepted[op] = accepted.get(op, 0) + 1
    if CARD in reply:
        failed("a reply holds the card number: " + reply[:200], sent)
    if actor:
        for text in actor.get("forbidden", []):
            if text.lower() in reply.lower():
                failed("%s %s was shown %r: %s" % (actor["kind"], actor.get("role", ""), text, reply[:200]),
                       sent)
        op = str(json.loads(sent).get("op"))
        if answer["ok"] and actor["kind"] == "staff" and actor.get("role") == "read" and \
                re.search(r"S_BILLING|S_ADMIN", FLAGS.get(op, "")):
            failed("a read-only staff member's %s was done" % op, sent)
client.stdin.close()
client.wait()
for key, count in sorted(errors.items(), key=lambda pair: -pair[1])[:int(os.environ.get("API_FUZZ_ERRORS", "0"))]:
    print("api_fuzz: refused %d: %s" % (count, key))
print("api_fuzz: accepted by op: %s" % ", ".join("%s %d" % pair for pair in sorted(accepted.items())))
print("api_fuzz: %d requests to %s (seed %d): %d refused, %d accepted, %d failures" %
      (COUNT, ENDPOINT, SEED, refused, COUNT - refused, failures), flush=True)
sys.exit(1 if failures else 0)
