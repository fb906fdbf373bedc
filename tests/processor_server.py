#!/usr/bin/env python3
"""processor_server: a card processor on 127.0.0.1 that speaks the HTTP API of docs/processor.md.

No real processor exists where matterlink is built and tested, so the HTTP client
(core/ml_processor.c) is tested against this server. It behaves like the built-in test
processor: the same test cards, the same reason codes, the same ids derived from the
idempotency key, and an idempotency store in memory. It can also misbehave on purpose, to
test the client's retries and its UNKNOWN outcome: answer 500 without doing anything, do the
work and then drop the connection, answer too late, answer garbage or an answer too large,
or do the work and then answer something the client must not believe (--lie: an amount,
currency, account, charge, key, kind or id that is not the one asked about, a member of the
wrong type, a status that disagrees with the HTTP status, duplicate members, no object).

Usage: processor_server.py --api-key-file FILE [--port N] [--fail-500 N] [--drop N]
           [--garbage N] [--oversize N] [--lie N] [--delay-ms MS --delay-count N]
           [--timeout-card-attempts N] [--timeout-card-delay-ms MS] [--cors-origin ORIGIN]...

Hosted fields (docs/processor.md): POST /v1/public/tokens is the browser's tokenization
endpoint: no API key (a browser cannot keep one), CORS for each --cors-origin (the portal's
origin), the card in, a token out, so card numbers never pass through matterlink.
GET /v1/tokens/{token} (with the API key) tells the core what card a token names.

It prints its port on standard output once it accepts connections, and logs one line per
request on standard error (method, path, status: never a body or a header). Tests change the
misbehaviour switches at run time with POST /_test/control, read counters with GET
/_test/stats and the charges made (with their keys) at GET /_test/ledger, and settle
charges with POST /_test/settle (test only: not part of the API).
Python standard library only.
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUEST_MAX = 64 * 1024
AMOUNT_MAX = 2**53 - 1

# number: (brand, behaviour, decline reason); the same table as s_cards in core/ml_processor.c.
CARDS = {
    "4242424242424242": ("visa", "approve", None),
    "5555555555554444": ("mastercard", "approve", None),
    "378282246310005": ("amex", "approve", None),
    "6011111111111117": ("discover", "approve", None),
    "4000000000000002": ("visa", "decline", "card_declined"),
    "4000000000009995": ("visa", "decline", "insufficient_funds"),
    "4000000000000069": ("visa", "decline", "expired_card"),
    "4000000000003006": ("visa", "timeout_after", None),
    "4000000000004004": ("visa", "timeout_before", None),
}

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
# The key's hash in two groups of 8 hex digits (as one group of 16 it held 13 or more digits that
# pass the card check for about one key in 2,000, and the core refuses to save such a token as
# a card number); tokens made as one group still charge.
TOKEN = re.compile(r"^tok_([a-z]+)_([0-9]{4})_([0-9]{2})([0-9]{4})_"
                   r"([0-9a-f]{8}_[0-9a-f]{8}|[0-9a-f]{16})$")


def fnv(text):
    """FNV-1a 64, as s_fnv in core/ml_processor.c: ids derive from keys the same way."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % value


def luhn(digits):
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def expired(month, year):
    now = datetime.now(timezone.utc)
    return year * 12 + month < now.year * 12 + now.month


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class Refusal(Exception):
    """A request refused as invalid: HTTP status, error code, message. Never stored."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Processor:
    """The idempotency store, the charges and the misbehaviour switches, behind one lock."""

    def __init__(self, options):
        self.lock = threading.Lock()
        self.operations = {}  # key -> (operation, params, http status, body)
        self.charges = {}  # charge id -> dict
        self.timeout_attempts = {}  # key -> charge requests seen for a timeout card
        self.made = {}  # key -> charges made under it (the ledger shows it: 1 unless a bug)
        self.switches = {
            "fail_500": options.fail_500,
            "drop": options.drop,
            "garbage": options.garbage,
            "oversize": options.oversize,
            "lie": options.lie,
            "lie_kind": -1,
            "delay_ms": options.delay_ms,
            "delay_count": options.delay_count,
            "timeout_card_attempts": options.timeout_card_attempts,
            "timeout_card_delay_ms": options.timeout_card_delay_ms,
        }
        self.stats = {"requests": 0, "charges": 0, "refunds": 0, "voids": 0, "tokens": 0,
                      "browser_tokens": 0}

    def misbehaviour(self, operation):
        """The misbehaviour this request gets, if any (each switch counts down). Lies are
        told about operations only (charges, refunds, voids and their lookups), not tokens."""
        with self.lock:
            self.stats["requests"] += 1
            for name in ("fail_500", "drop", "garbage", "oversize", "lie"):
                if name == "lie" and not operation:
                    continue
                if self.switches[name] > 0:
                    self.switches[name] -= 1
                    return name
            if self.switches["delay_count"] > 0:
                self.switches["delay_count"] -= 1
                return "delay"
        return None

    def replay(self, key, operation, params):
        stored = self.operations.get(key)
        if stored is None:
            return None
        if stored[0] != operation or stored[1] != params:
            raise Refusal(409, "idempotency_key_reused",
                          "idempotency key reused with other parameters")
        return stored[2], stored[3]

    def store(self, key, operation, params, status, body):
        body["idempotency_key"] = key
        self.operations[key] = (operation, params, status, body)
        return status, body

    def tokenize(self, key, request):
        number, cvc = request.get("number"), request.get("cvc")
        month, year = request.get("exp_month"), request.get("exp_year")
        if not isinstance(number, str) or not re.fullmatch(r"[0-9]{12,19}", number) \
                or not luhn(number):
            raise Refusal(400, "invalid_number",
                          "the card number is not 12 to 19 digits passing the Luhn check")
        if not is_int(month) or not is_int(year) or not 1 <= month <= 12 \
                or not 2000 <= year <= 2099:
            raise Refusal(400, "invalid_expiry",
                          "the expiry is a month 1 to 12 and a four-digit year")
        if not isinstance(cvc, str) or not re.fullmatch(r"[0-9]{3,4}", cvc):
            raise Refusal(400, "invalid_cvc", "the security code is 3 or 4 digits")
        card = CARDS.get(number)
        if card is None:
            raise Refusal(400, "not_a_test_card",
                          "this processor takes only the test cards of docs/processor.md")
        if len(cvc) != (4 if card[0] == "amex" else 3):
            raise Refusal(400, "invalid_cvc",
                          "the security code has 4 digits on amex cards and 3 on others")
        params = hashlib.sha256(("%s|%d|%d|%s" % (number, month, year, cvc)).encode()).hexdigest()
        replayed = self.replay(key, "token", params)
        if replayed:
            return replayed
        self.stats["tokens"] += 1
        body = {"object": "token", "brand": card[0], "last4": number[-4:],
                "exp_month": month, "exp_year": year}
        if expired(month, year):
            body.update(status="declined", reason="expired_card", message="the card has expired")
            return self.store(key, "token", params, 402, body)
        hashed = fnv(key)
        body.update(status="approved", token="tok_%s_%s_%02d%04d_%s_%s"
                    % (card[0], number[-4:], month, year, hashed[:8], hashed[8:]))
        return self.store(key, "token", params, 200, body)

    def card_of(self, token):
        match = TOKEN.match(token) if isinstance(token, str) else None
        if match:
            for number, card in CARDS.items():
                if card[0] == match.group(1) and number[-4:] == match.group(2) \
                        and 1 <= int(match.group(3)) <= 12:
                    return card, int(match.group(3)), int(match.group(4))
        raise Refusal(400, "invalid_token", "no such token at this processor")

    def token_info(self, token):
        """What card a token names (GET /v1/tokens/{token}): never the number."""
        card, month, year = self.card_of(token)
        number = [n for n, c in CARDS.items() if c is card][0]
        return 200, {"object": "token", "status": "approved", "token": token, "brand": card[0],
                     "last4": number[-4:], "exp_month": month, "exp_year": year}

    def charge(self, key, request, delays):
        token, amount = request.get("token"), request.get("amount")
        currency, account = request.get("currency"), request.get("merchant_account")
        description = request.get("description", "")
        check_money(amount, currency)
        if not isinstance(account, str) or not ACCOUNT.match(account):
            raise Refusal(400, "invalid_merchant_account", "bad merchant_account")
        if not isinstance(description, str) or len(description.encode()) > 200 \
                or any(ord(char) < 0x20 or ord(char) == 0x7F for char in description):
            raise Refusal(400, "invalid_description", "bad description")
        card, month, year = self.card_of(token)
        params = (token, amount, currency, account, description)
        if card[1].startswith("timeout"):
            # The first requests with this key (a call and its retries) are answered too
            # late; the charge is made first (timeout_after) or not at all (timeout_before).
            seen = self.timeout_attempts.get(key, 0) + 1
            if seen <= self.switches["timeout_card_attempts"]:
                self.timeout_attempts[key] = seen
                delays.append(self.switches["timeout_card_delay_ms"])
                if card[1] == "timeout_before":
                    return 504, {"error": {"code": "timeout", "message": "too late"}}
        replayed = self.replay(key, "charge", params)
        if replayed:
            return replayed
        self.stats["charges"] += 1
        self.made[key] = self.made.get(key, 0) + 1
        charge_id = "ch_" + fnv(key)
        body = {"object": "charge", "id": charge_id, "amount": amount, "currency": currency,
                "merchant_account": account}
        if expired(month, year):
            body.update(status="declined", reason="expired_card", message="the card has expired")
        elif card[1] == "decline":
            body.update(status="declined", reason=card[2], message="the card was declined")
        else:
            body.update(status="approved")
        self.charges[charge_id] = {"key": key, "approved": body["status"] == "approved",
                                   "amount": amount, "refunded": 0, "currency": currency,
                                   "account": account, "voided": False, "settled": False}
        return self.store(key, "charge", params,
                          200 if body["status"] == "approved" else 402, body)

    def charge_for(self, charge_id):
        if not isinstance(charge_id, str) or not ID.match(charge_id):
            raise Refusal(400, "invalid_txn", "bad charge")
        charge = self.charges.get(charge_id)
        if charge is None:
            raise Refusal(422, "no_such_charge", "no charge %s" % charge_id)
        if not charge["approved"]:
            raise Refusal(422, "charge_not_approved", "charge %s was declined" % charge_id)
        if charge["voided"]:
            raise Refusal(422, "charge_voided", "charge %s was voided" % charge_id)
        return charge

    def refund(self, key, request):
        charge_id, amount, currency = (request.get("charge"), request.get("amount"),
                                       request.get("currency"))
        check_money(amount, currency)
        if not isinstance(charge_id, str) or not ID.match(charge_id):
            raise Refusal(400, "invalid_txn", "bad charge")
        params = (charge_id, amount, currency)
        replayed = self.replay(key, "refund", params)
        if replayed:
            return replayed
        charge = self.charge_for(charge_id)
        if charge["currency"] != currency:
            raise Refusal(422, "currency_mismatch",
                          "charge %s is in %s" % (charge_id, charge["currency"]))
        if amount > charge["amount"] - charge["refunded"]:
            raise Refusal(422, "amount_exceeds_refundable",
                          "charge %s has %d left to refund"
                          % (charge_id, charge["amount"] - charge["refunded"]))
        charge["refunded"] += amount
        self.stats["refunds"] += 1
        body = {"object": "refund", "status": "approved", "id": "re_" + fnv(key),
                "charge": charge_id, "amount": amount, "currency": currency,
                "merchant_account": charge["account"]}
        return self.store(key, "refund", params, 200, body)

    def void(self, key, request):
        charge_id = request.get("charge")
        if not isinstance(charge_id, str) or not ID.match(charge_id):
            raise Refusal(400, "invalid_txn", "bad charge")
        params = (charge_id,)
        replayed = self.replay(key, "void", params)
        if replayed:
            return replayed
        charge = self.charge_for(charge_id)
        if charge["settled"]:
            raise Refusal(422, "charge_settled", "charge %s has settled: refund it" % charge_id)
        if charge["refunded"]:
            raise Refusal(422, "charge_refunded", "charge %s was partly refunded" % charge_id)
        charge["voided"] = True
        self.stats["voids"] += 1
        body = {"object": "void", "status": "approved", "id": "vo_" + fnv(key),
                "charge": charge_id, "amount": charge["amount"], "currency": charge["currency"],
                "merchant_account": charge["account"]}
        return self.store(key, "void", params, 200, body)

    def lookup(self, key):
        stored = self.operations.get(key)
        if stored is None:
            raise Refusal(404, "not_found", "no operation was made with this key")
        return 200, stored[3]

    def ledger(self):
        """Every charge made, with its key and how many times work was done under the key."""
        return [{"id": charge_id, "key": charge["key"], "made": self.made.get(charge["key"], 0),
                 "approved": charge["approved"], "amount": charge["amount"],
                 "currency": charge["currency"], "account": charge["account"],
                 "refunded": charge["refunded"], "voided": charge["voided"]}
                for charge_id, charge in self.charges.items()]

    def settle(self):
        settled = 0
        for charge in self.charges.values():
            if charge["approved"] and not charge["voided"] and not charge["settled"]:
                charge["settled"] = True
                settled += 1
        return settled


LIES = random.Random(int(os.environ.get("ML_PROCESSOR_LIE_SEED", "0")))


def lie(status, answer, kind=-1):
    """The answer to work done, changed so that it is not about that work, or not readable
    as an answer: (HTTP status, body), the body a dict or the raw bytes to send. kind picks
    the lie (0 another amount, 9 the HTTP status swapped, ...), -1 one at random."""
    body = json.loads(json.dumps(answer))
    kind = kind if kind >= 0 else LIES.randrange(16)
    other = {"charge": "refund", "refund": "void", "void": "charge", "token": "charge"}
    if kind == 0 and is_int(body.get("amount")):
        body["amount"] += LIES.choice([1, -1, 100])
    elif kind == 1 and "amount" in body:
        body["amount"] = LIES.choice([str(body["amount"]), float(body["amount"]) + 0.5, -body["amount"],
                                      2 ** 63, None, [body["amount"]]])
    elif kind == 2 and "currency" in body:
        body["currency"] = LIES.choice(["EUR" if body["currency"] != "EUR" else "USD", "usd", "", 840])
    elif kind == 3 and "merchant_account" in body:
        body["merchant_account"] = LIES.choice(["acct_elsewhere", "", None])
    elif kind == 4 and "charge" in body:
        body["charge"] = LIES.choice(["ch_another", "", 7])
    elif kind == 5:
        body["idempotency_key"] = LIES.choice(["another-key", "", None])
    elif kind == 6:
        body["object"] = LIES.choice([other.get(body.get("object"), "charge"), "Charge", None])
    elif kind == 7 and "id" in body:
        body["id"] = LIES.choice(["bad id", "x" * 500, "", 12, None])
    elif kind == 8:
        body["status"] = LIES.choice(["APPROVED", "pending", "", None, True])
    elif kind == 9:
        status = {200: 402, 201: 402, 402: 200}.get(status, status)
    elif kind == 10:
        return status, json.dumps([body]).encode()
    elif kind == 11 and is_int(body.get("amount")):
        # The right amount, then another: a reader that keeps the last member believes it.
        text = json.dumps(body)
        return status, (text[:-1] + ', "amount": %d}' % (body["amount"] + 1)).encode()
    elif kind == 12:
        body.pop(LIES.choice(sorted(body)), None)
    elif kind == 13 and "token" in body:
        body["token"] = LIES.choice(["tok_another", "", None])
    elif kind == 14:
        return status, b'{"object": "charge", "status": "approved", ' + b'"x": ' * 20 + b'1' + b'}' * 21
    else:
        return status, json.dumps(body).encode()[:-1]  # cut short
    return status, body


def check_money(amount, currency):
    if not is_int(amount) or not 1 <= amount <= AMOUNT_MAX:
        raise Refusal(400, "invalid_amount", "an amount is a whole number of minor units")
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise Refusal(400, "invalid_currency", "bad currency")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "processor_server/1"

    def setup(self):
        super().setup()
        # Headers and body leave in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold each answer back for 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        # The request line and status only: bodies hold card numbers, headers the API key.
        sys.stderr.write("processor_server: %s\n" % (format % args))

    def cors_origin(self):
        """The request's Origin when it is one the portal runs at (--cors-origin), else None."""
        origin = self.headers.get("Origin")
        return origin if origin in self.server.cors_origins else None

    def reply(self, status, body, content_type="application/json", cors=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            if cors:
                self.send_header("Access-Control-Allow-Origin", cors)
                self.send_header("Vary", "Origin")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting: expected in tests

    def read_body(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > REQUEST_MAX:
            raise Refusal(413, "request_too_large", "request body over 64 KiB")
        data = self.rfile.read(length)
        try:
            parsed = json.loads(data) if data else {}
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, "invalid_json", "the body is not JSON")
        if not isinstance(parsed, dict):
            raise Refusal(400, "invalid_json", "the body is not a JSON object")
        return parsed

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        if self.path == "/v1/public/tokens":
            return self.browser_token()
        self.handle_request("POST")

    def do_OPTIONS(self):
        # The browser's CORS preflight for the JSON POST of the hosted fields.
        origin = self.cors_origin()
        if self.path != "/v1/public/tokens" or origin is None:
            return self.reply(403, {"error": {"code": "origin_refused",
                                              "message": "this origin may not tokenize"}})
        try:
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Vary", "Origin")
            self.send_header("Content-Length", "0")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def browser_token(self):
        """POST /v1/public/tokens: a card from the payer's browser becomes a token. No API key:
        the origin is checked instead (CORS), and each call gets a key of its own."""
        processor = self.server.processor
        origin = self.cors_origin()
        try:
            if origin is None:
                raise Refusal(403, "origin_refused", "this origin may not tokenize")
            body = self.read_body()
            with processor.lock:
                processor.stats["browser_tokens"] += 1
                status, answer = processor.tokenize("browser:" + os.urandom(16).hex(), body)
        except Refusal as refusal:
            return self.reply(refusal.status,
                              {"error": {"code": refusal.code, "message": refusal.message}},
                              cors=origin)
        if status != 200:
            return self.reply(status, {"error": {"code": answer.get("reason", "declined"),
                                                 "message": answer.get("message", "declined")}},
                              cors=origin)
        shown = {name: answer[name] for name in ("token", "brand", "last4", "exp_month",
                                                 "exp_year")}
        self.reply(200, shown, cors=origin)

    def handle_request(self, method):
        processor = self.server.processor
        try:
            body = self.read_body() if method == "POST" else {}
            if self.path.startswith("/_test/"):
                return self.control(method, body)
            authorization = self.headers.get("Authorization", "")
            if not hmac.compare_digest(authorization.encode(),
                                       ("Bearer " + self.server.api_key).encode()):
                raise Refusal(401, "unauthorized", "missing or wrong API key")
            misbehaviour = processor.misbehaviour(
                self.path in ("/v1/charges", "/v1/refunds", "/v1/voids")
                or self.path.startswith("/v1/operations/"))
            if misbehaviour == "fail_500":
                return self.reply(500, {"error": {"code": "internal", "message": "try again"}})
            delays = []
            status, answer = self.dispatch(method, body, delays)
        except Refusal as refusal:
            return self.reply(refusal.status,
                              {"error": {"code": refusal.code, "message": refusal.message}})
        if misbehaviour == "drop":
            # The work is done but its answer is lost: close without a word.
            self.close_connection = True
            return
        if misbehaviour == "garbage":
            return self.reply(200, b"<html>502 Bad Gateway</html>", "text/html")
        if misbehaviour == "oversize":
            return self.reply(200, {"padding": "x" * (100 * 1024)})
        if misbehaviour == "lie" and isinstance(answer, dict):
            status, answer = lie(status, answer, processor.switches["lie_kind"])
        if misbehaviour == "delay":
            delays.append(processor.switches["delay_ms"])
        for delay in delays:
            time.sleep(delay / 1000.0)
        self.reply(status, answer)

    def dispatch(self, method, body, delays):
        processor = self.server.processor
        operations = {"/v1/tokens": processor.tokenize, "/v1/refunds": processor.refund,
                      "/v1/voids": processor.void}
        if method == "GET" and self.path.startswith("/v1/tokens/"):
            with processor.lock:
                return processor.token_info(self.path[len("/v1/tokens/"):])
        if method == "GET" and self.path.startswith("/v1/operations/"):
            key = self.path[len("/v1/operations/"):]
            if not KEY.match(key):
                raise Refusal(400, "invalid_key", "bad idempotency key")
            with processor.lock:
                return processor.lookup(key)
        if method != "POST" or (self.path not in operations and self.path != "/v1/charges"):
            raise Refusal(404, "no_such_endpoint", "no such endpoint")
        key = self.headers.get("Idempotency-Key", "")
        if not KEY.match(key):
            raise Refusal(400, "invalid_key", "a valid Idempotency-Key header is required")
        with processor.lock:
            if self.path == "/v1/charges":
                return processor.charge(key, body, delays)
            return operations[self.path](key, body)

    def control(self, method, body):
        processor = self.server.processor
        with processor.lock:
            if method == "POST" and self.path == "/_test/control":
                for name, value in body.items():
                    if name not in processor.switches or not is_int(value) or value < (
                            -1 if name == "lie_kind" else 0):
                        raise Refusal(400, "invalid_switch", "unknown switch or bad value")
                    processor.switches[name] = value
                return self.reply(200, dict(processor.switches))
            if method == "POST" and self.path == "/_test/settle":
                return self.reply(200, {"settled": processor.settle()})
            if method == "GET" and self.path == "/_test/stats":
                return self.reply(200, dict(processor.stats))
            if method == "GET" and self.path == "/_test/ledger":
                return self.reply(200, {"charges": processor.ledger()})
        raise Refusal(404, "no_such_endpoint", "no such endpoint")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-500", type=int, default=0)
    parser.add_argument("--drop", type=int, default=0)
    parser.add_argument("--garbage", type=int, default=0)
    parser.add_argument("--oversize", type=int, default=0)
    parser.add_argument("--lie", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--delay-count", type=int, default=0)
    parser.add_argument("--timeout-card-attempts", type=int, default=3)
    parser.add_argument("--timeout-card-delay-ms", type=int, default=20000)
    parser.add_argument("--cors-origin", action="append", default=[],
                        help="an origin (scheme://host:port) whose pages may tokenize cards")
    options = parser.parse_args()
    with open(options.api_key_file) as file:
        api_key = file.read().rstrip("\r\n")
    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.api_key = api_key
    server.cors_origins = set(options.cors_origin)
    server.processor = Processor(options)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
