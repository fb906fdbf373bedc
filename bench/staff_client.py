#!/usr/bin/python3
"""The load client of bench/staff.sh: STAFF billing staff members make payments at once.

usage: staff_client.py WEB_PORT MAIL_DIR CLIENTS_FILE PROCESSOR_URL ROUNDS OUT_JSON

Each invitation mail in MAIL_DIR (one per staff member, from `matterlink staff invite`) is
followed through the staff app: GET /staff/accept?token=, POST the password, POST
/staff/sign-in (billing role: no second factor), keeping the ml_staff session cookie. Then
one thread per staff member, each on its own keep-alive HTTP connection, makes ROUNDS
payments without pause, as the four steps of Make a Payment over HTTP (web/staff/
ml_web_staff_pay*.c), each round for the next client of CLIENTS_FILE (a client number with
two or more open invoices; no two rounds share a client, so no two staff members pay the
same invoice):

  search       GET  /staff/pay/search?by=client-number&text=C&go=1  (the client's invoices)
  select       POST /staff/pay/select (two rows checked; 303)
  select back  GET  the 303's Location: the results again, the two rows checked
  allocate     GET  /staff/pay/allocate (the lines, balances net of pending postings)
  allocate set POST /staff/pay/allocate, an amount per line (at most 50.00; 303 to step 4)
  pay page     GET  /staff/pay/pay (the pay form with its pay_key)
  pay          POST /staff/pay/pay: a new payer and a new card (token), the payment and its
               postings; includes the core's two calls to the processor (the token's card,
               the charge), so it is reported apart from the target
  tokenize     POST PROCESSOR/v1/public/tokens: the browser's own call to the processor
               (hosted fields), never through matterlink: the processor's time, for scale

BENCH_PROCESSES=1 runs each staff member in a process of its own instead of a thread. And,
in the same threads (processes) and the same run, the baselines that do not reach the core: the
style sheet (/static/portal.css) and the sign-in form (/staff/sign-in). Every answer is
checked (status, and the page it should be); a wrong one counts as an error of its step.
Writes {"steps": {label: [ms, ...]}, "errors": {label: n}, "payments": n, "seconds": s,
"paid": [[card token, payment UUID, ms of the pay POST], ...]}: bench/staff.sh subtracts the
processor calls the core made for each payment (its debug log names the token and the UUID).
"""
import glob
import html
import http.client
import json
import multiprocessing
import os
import re
import sys
import threading
import time
import urllib.parse

PORT, MAIL, CLIENTS, PROCESSOR, ROUNDS, OUT = sys.argv[1:7]
PORT, ROUNDS = int(PORT), int(ROUNDS)
PASSWORD = "bench staff horse battery"
CARD = {"number": "4242424242424242", "exp_month": 4, "exp_year": 2031, "cvc": "123"}
ORIGIN = "http://127.0.0.1:%d" % PORT


class Connection:
    """One keep-alive connection to matterlink-web (a new one when the server closes it)."""

    def __init__(self, host="127.0.0.1", port=PORT):
        self.host, self.port, self.conn = host, port, None

    def request(self, method, path, fields=None, cookie=None, headers=None, json_body=None):
        body = urllib.parse.urlencode(fields) if fields is not None else None
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if json_body is not None:
            body = json.dumps(json_body)
            all_headers["Content-Type"] = "application/json"
        if cookie:
            all_headers["Cookie"] = cookie
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                page = response.read().decode("utf-8", "replace")
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response, page
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server had closed: once more on a new one.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


def value(page, name):
    found = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    return html.unescape(found.group(1)) if found else None


def sign_in_everyone():
    """The session cookie of each invited staff member, after accepting and signing in."""
    web = Connection()
    sessions = []
    for path in sorted(glob.glob(os.path.join(MAIL, "*.json"))):
        mail = json.load(open(path))
        token = re.search(r"/staff/accept\?token=([A-Za-z0-9_-]{43})", mail["body"] or "")
        if not token:
            continue
        email = mail["rcpt_tos"][0]
        response, page = web.request("GET", "/staff/accept?token=" + token.group(1))
        form = value(page, "form_token")
        assert response.status == 200 and form, (email, response.status)
        response, page = web.request("POST", "/staff/accept", {
            "form_token": form, "token": token.group(1), "password": PASSWORD,
            "confirm": PASSWORD}, "ml_form=" + form)
        assert response.status == 200 and "Welcome" in page, (email, response.status)
        response, _ = web.request("POST", "/staff/sign-in", {
            "form_token": form, "email": email, "password": PASSWORD}, "ml_form=" + form)
        cookie = re.match(r"ml_staff=([A-Za-z0-9_-]+)", response.getheader("Set-Cookie") or "")
        assert response.status == 303 and cookie, (email, response.status)
        sessions.append("ml_staff=" + cookie.group(1))
    return sessions


results = {}
errors = {}
payments = [0]
paid = []
lock = threading.Lock()


def record(label, started, ok):
    elapsed = (time.perf_counter() - started) * 1000.0
    with lock:
        results.setdefault(label, []).append(elapsed)
        if not ok:
            errors[label] = errors.get(label, 0) + 1
    return ok


def one_round(web, processor, cookie, client, number):
    """One payment in four steps; False at the first step that went wrong."""
    started = time.perf_counter()
    response, _ = web.request("GET", "/static/portal.css")
    record("style sheet (baseline, no core)", started, response.status == 200)
    started = time.perf_counter()
    response, _ = web.request("GET", "/staff/sign-in")
    record("sign-in form (baseline, no core)", started, response.status == 200)

    query = urllib.parse.urlencode({"by": "client-number", "text": client, "match": "exact",
                                    "go": "1"})
    started = time.perf_counter()
    response, page = web.request("GET", "/staff/pay/search?" + query, cookie=cookie)
    picks = re.findall(r'name="(pick_[0-9]+)" value="([0-9]+)"', page)
    if not record("1 search", started, response.status == 200 and len(picks) >= 2):
        return False
    fields = {"csrf": value(page, "csrf"), "back": value(page, "back"), "rows": value(page, "rows")}
    fields.update(dict(picks[:2]))
    started = time.perf_counter()
    response, _ = web.request("POST", "/staff/pay/select", fields, cookie)
    location = response.getheader("Location") or ""
    if not record("2 select (POST)", started, response.status == 303 and location):
        return False
    started = time.perf_counter()
    response, page = web.request("GET", urllib.parse.urlsplit(location)._replace(
        scheme="", netloc="").geturl(), cookie=cookie)
    if not record("2 select: the results again", started,
                  response.status == 200 and page.count(" checked>") >= 2):
        return False

    started = time.perf_counter()
    response, page = web.request("GET", "/staff/pay/allocate", cookie=cookie)
    amounts = re.findall(r'name="(amount_[0-9]+)" value="([0-9,.]*)"', page)
    if not record("3 allocate page", started, response.status == 200 and len(amounts) == 2):
        return False
    fields = {"csrf": value(page, "csrf"), "mode": "each", "lines": value(page, "lines"),
              "total": ""}
    for name, shown in amounts:
        minor = int(shown.replace(",", "").replace(".", "") or "0")
        fields[name] = "%d.%02d" % divmod(min(minor, 5000), 100)
    started = time.perf_counter()
    response, _ = web.request("POST", "/staff/pay/allocate", fields, cookie)
    if not record("3 allocate (POST)", started, response.status == 303):
        return False

    started = time.perf_counter()
    response, page = web.request("GET", "/staff/pay/pay", cookie=cookie)
    form = {"csrf": value(page, "csrf"), "pay_key": value(page, "pay_key")}
    if not record("4 pay page", started, response.status == 200 and all(form.values())):
        return False
    # The browser's call to the processor (hosted fields): JSON, never through matterlink.
    started = time.perf_counter()
    answer, text = processor.request("POST", "/v1/public/tokens", json_body=CARD,
                                     headers={"Origin": ORIGIN})
    token = json.loads(text or "{}").get("token") if answer.status == 200 else None
    if not record("processor: tokenize (browser's call)", started, bool(token)):
        return False
    form.update({"payer_name": "Bench Payer %d" % number, "method": "new", "token": token,
                 "payer_email": "payer%d@bench.example" % number,
                 "receipt_email": "payer%d@bench.example" % number,
                 "ar_message": "bench payment %d" % number})
    started = time.perf_counter()
    response, page = web.request("POST", "/staff/pay/pay", form, cookie)
    elapsed = (time.perf_counter() - started) * 1000.0
    ok = response.status == 200 and 'id="payment-status">approved<' in page
    if not record("4 pay (POST: payment, with the processor)", started, ok):
        return False
    uuid = re.search(r"<dt>Payment</dt><dd>([0-9a-f-]{36})</dd>", page)
    with lock:
        payments[0] += 1
        # To take the processor's calls out of this step (bench/staff.sh, from the core's log).
        paid.append([token, uuid.group(1) if uuid else "", elapsed])
    return True


def staff_member(cookie, clients, first_number):
    web = Connection()
    processor_url = urllib.parse.urlsplit(PROCESSOR)
    processor = Connection(processor_url.hostname, processor_url.port)
    for index, client in enumerate(clients):
        try:
            one_round(web, processor, cookie, client, first_number + index)
        except Exception as problem:  # a broken connection, a page not as expected
            with lock:
                errors["exception"] = errors.get("exception", 0) + 1
                if errors["exception"] <= 3:
                    print("bench client: %r" % (problem,), file=sys.stderr)
            web = Connection()
            processor = Connection(processor_url.hostname, processor_url.port)


sessions = sign_in_everyone()
print("%d staff members accepted their invitations and signed in through the staff app"
      % len(sessions), flush=True)
clients = [line.strip() for line in open(CLIENTS) if line.strip()]
if len(clients) < len(sessions) * ROUNDS:
    sys.exit("bench client: %d clients for %d rounds" % (len(clients), len(sessions) * ROUNDS))


def staff_process(queue, *args):
    """A staff member in a process of its own (BENCH_PROCESSES=1): its figures back by queue."""
    staff_member(*args)
    queue.put((results, errors, payments[0], paid))


workers = []
began = time.perf_counter()
if os.environ.get("BENCH_PROCESSES") == "1":
    # No interpreter lock shared between the staff members: the client's own delays shrink
    # to the operating system's scheduling (the baselines show what is left).
    queue = multiprocessing.Queue()
    for index, cookie in enumerate(sessions):
        mine = clients[index * ROUNDS:(index + 1) * ROUNDS]
        workers.append(multiprocessing.Process(target=staff_process,
                                               args=(queue, cookie, mine, index * ROUNDS + 1)))
    for worker in workers:
        worker.start()
    for _ in workers:
        their_results, their_errors, their_payments, their_paid = queue.get()
        for label, values in their_results.items():
            results.setdefault(label, []).extend(values)
        for label, count in their_errors.items():
            errors[label] = errors.get(label, 0) + count
        payments[0] += their_payments
        paid.extend(their_paid)
    for worker in workers:
        worker.join()
else:
    for index, cookie in enumerate(sessions):
        mine = clients[index * ROUNDS:(index + 1) * ROUNDS]
        workers.append(threading.Thread(target=staff_member,
                                        args=(cookie, mine, index * ROUNDS + 1)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
seconds = time.perf_counter() - began
with open(OUT, "w") as out:
    json.dump({"steps": results, "errors": errors, "payments": payments[0], "paid": paid,
               "seconds": seconds, "staff": len(sessions)}, out)
