#!/usr/bin/python3
"""Paying from the portal in a real browser against a real core (tests/e2e_web_pay.sh).

usage: web_pay.py BASE_URL SET_PASSWORD_TOKEN EMAIL FIRM SHOTS_DIR API_CLIENT API_ENDPOINT
                  OTHER_PAYERS_INVOICE OUT_JSON

Headless Chromium on a 390 x 844 phone window: sign in, choose two invoices on /invoices, pay
them with a new card typed into the pay page (its script tokenizes the card at the
processor; the card inputs have no name), saving the card; the confirmation shows the
charge, the card and the receipt number; then the saved card pays another invoice. Chromium's
network log shows that no request to matterlink-web carried the card number. Over plain HTTP:
the same pay form posted twice pays once; a POST without the CSRF token is refused; at the
core's api socket, another payer's invoice in portal-pay's lines is "not found" and a missing
CSRF token is refused. Writes {"invoices": [...], "postings": [...]} to OUT_JSON.
"""
import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

from web_common import check, failures, requester, chrome, patient_wait

BASE, TOKEN, EMAIL, FIRM, SHOTS, API_CLIENT, API, OTHER, OUT = sys.argv[1:10]
PASSWORD = "correct horse battery"
CARD = "4242424242424242"
paid = {"invoices": [], "postings": []}


request = requester(BASE, timeout=20)


def core(payload):
    out = subprocess.run([API_CLIENT, API, json.dumps(payload)], capture_output=True, text=True,
                         timeout=20)
    return json.loads(out.stdout)


# The welcome link sets the password (the sign-in tests cover this page in the browser).
response, page = request("GET", "/sign-in")
form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"form_token": form_token, "token": TOKEN, "password": PASSWORD,
                               "confirm": PASSWORD})
response, page = request("POST", "/set-password", body, f"ml_form={form_token}")
check(response.status == 200, f"set-password: {response.status}")

driver = chrome(('performance', 'browser'))
wait = patient_wait(driver, 20)
os.makedirs(SHOTS, exist_ok=True)
network = []


def heading():
    return driver.find_element(By.TAG_NAME, "h1").text


def keep_network_log():
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            network.append(message["params"]["request"])


def choose_and_open_pay(count):
    """Tick the first count invoices' boxes on /invoices and press Pay selected."""
    driver.get(BASE + "/invoices")
    boxes = driver.find_elements(By.CSS_SELECTOR, "input.pick")
    check(len(boxes) >= count, f"{len(boxes)} invoices to choose from")
    chosen = []
    for box in boxes[:count]:
        box.click()
        chosen.append(box.get_attribute("value"))
    driver.find_element(By.CSS_SELECTOR, "#choose button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "pay-form")))
    return chosen


def confirmation():
    wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Thank you"))
    postings = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "td.posting")]
    check(len(postings) == 1 and all(postings), f"one charge with its posting: {postings}")
    paid["postings"].extend(postings)
    return driver.find_element(By.ID, "receipt").text


try:
    driver.set_page_load_timeout(20)
    driver.set_window_size(390, 844)
    driver.get(BASE + "/sign-in")
    driver.find_element(By.ID, "email").send_keys(EMAIL)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait.until(expected_conditions.url_to_be(BASE + "/invoices"))

    # Two invoices with a new card, saved.
    chosen = choose_and_open_pay(2)
    paid["invoices"].extend(chosen)
    check(heading() == "Pay" and FIRM in driver.find_element(By.CSS_SELECTOR, "header.site").text,
          "the pay page with the firm's name")
    amounts = [driver.find_element(By.ID, f"amount_{index}").get_attribute("value")
               for index in range(2)]
    check(all(re.fullmatch(r"[0-9,]+\.[0-9]{2}", amount) for amount in amounts),
          f"full balances by default: {amounts}")
    for field in ["card-number", "card-exp-month", "card-exp-year", "card-cvc"]:
        element = driver.find_element(By.ID, field)
        check(element.get_attribute("name") in (None, ""), f"{field} has no name")
        label = driver.find_elements(By.CSS_SELECTOR, f"label[for={field}]")
        check(len(label) == 1, f"{field} has a label")
    check(not driver.find_element(By.ID, "card-js-note").is_displayed(),
          "the JavaScript note is hidden when the script runs")
    driver.find_element(By.ID, "method-new").click()
    driver.find_element(By.ID, "card-number").send_keys("4242 4242 4242 4242")
    driver.find_element(By.ID, "card-exp-month").send_keys("12")
    driver.find_element(By.ID, "card-exp-year").send_keys("2099")
    driver.find_element(By.ID, "card-cvc").send_keys("123")
    driver.find_element(By.ID, "save_method").click()
    width = driver.execute_script("return document.documentElement.scrollWidth")
    check(width <= 390, f"the pay page fits 390 px (width {width})")
    driver.save_screenshot(os.path.join(SHOTS, "web-pay-390.png"))
    driver.find_element(By.CSS_SELECTOR, "#pay-form button[type=submit]").click()
    receipt = confirmation()
    main = driver.find_element(By.TAG_NAME, "main").text
    check("visa ending in 4242" in main and "Invoices" in main, "the card and the charge shown")
    check(re.fullmatch(r"[0-9a-f-]{36}", receipt) is not None, f"a receipt number: {receipt}")
    driver.save_screenshot(os.path.join(SHOTS, "web-pay-done-390.png"))

    # The saved card pays the next invoice (it is chosen by default).
    chosen = choose_and_open_pay(1)
    paid["invoices"].extend(chosen)
    saved = driver.find_elements(By.CSS_SELECTOR, "input[name=method][id^=method-]:not(#method-new)")
    check(len(saved) == 1 and saved[0].is_selected(), "the saved card is offered and chosen")
    driver.find_element(By.CSS_SELECTOR, "#pay-form button[type=submit]").click()
    confirmation()
    keep_network_log()
    severe = [entry for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
    check(not severe, f"browser errors (CSP?): {severe}")
finally:
    driver.quit()

# No request to matterlink-web carried the card number; the processor got it.
to_web = [item for item in network if item["url"].startswith(BASE)]
check(to_web, "the network log holds the requests to the web")
check(not any(CARD in (item.get("postData") or "") or CARD in item["url"] for item in to_web),
      "a request to matterlink-web carried the card number")
check(any("/v1/public/tokens" in item["url"] for item in network),
      "the browser tokenized at the processor")

# Over HTTP: sign in, then one pay form posted twice pays once.
response, page = request("GET", "/sign-in")
form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"form_token": form_token, "email": EMAIL, "password": PASSWORD})
response, _ = request("POST", "/sign-in", body, f"ml_form={form_token}")
session = re.match(r"ml_session=([A-Za-z0-9_-]+);", response.getheader("Set-Cookie") or "")
cookie = f"ml_session={session.group(1) if session else ''}"
response, page = request("GET", "/invoices", cookie=cookie)
pick = re.search(r'name="pick_0" value="([^"]+)"', page)
check(pick is not None, "an invoice left to pay")
response, page = request("GET", "/pay?pick_0=" + urllib.parse.quote(pick.group(1)), cookie=cookie)
fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
method = re.search(r'name="method" id="method-([0-9]+)" value="([0-9]+)"', page)
check(method is not None, "the saved card on the HTTP form")
form = {"csrf": fields["csrf"], "pay_key": fields["pay_key"], "invoices": fields["invoices"],
        "mode": "each", "amount_0": "1.00", "method": method.group(2) if method else ""}
# The firm takes trust deposits (firm-portal): one to a matter of Pat's client rides along, a
# charge of its own.
deposit = re.search(r'<option value="([^"]+)">', page)
check(deposit is not None, "a matter offered for a trust deposit")
form_with_trust = dict(form, trust_matter=deposit.group(1) if deposit else "", trust_amount="5.00")
receipts = []
for attempt in range(2):
    response, page = request("POST", "/pay", urllib.parse.urlencode(form_with_trust), cookie)
    check(response.status == 200, f"pay form post {attempt}: {response.status}")
    shown = re.search(r'id="receipt">([^<]+)<', page)
    receipts.append(shown.group(1) if shown else None)
    if attempt == 0:
        postings = re.findall(r'class="posting">([^<]+)<', page)
        check(len(postings) == 2 and "Trust deposit" in page, "invoices and trust apart")
        paid["postings"].extend(postings)
check(receipts[0] and receipts[0] == receipts[1], f"the same form twice, one payment: {receipts}")
check("already sent" in page, "the second post says it was paid once")
# More than is available: refused with the reason, the typed amount kept.
response, page = request("GET", "/pay?pick_0=" + urllib.parse.quote(pick.group(1)), cookie=cookie)
fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
over = dict(form, pay_key=fields["pay_key"], amount_0="987,654.32")
response, page = request("POST", "/pay", urllib.parse.urlencode(over), cookie)
check(response.status == 400 and "is more than the" in page and 'value="987,654.32"' in page,
      f"an amount over what is available: {response.status}")
# A card the processor declines (tokenized as the page's script would): the reason, nothing paid.
tokenize = re.search(r'data-tokenize-url="([^"]+)"', page).group(1)
target = urllib.parse.urlsplit(tokenize)
connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
connection.request("POST", target.path, json.dumps({"number": "4000000000000002", "exp_month": 12,
                                                   "exp_year": 2099, "cvc": "123"}),
                   {"Content-Type": "application/json", "Origin": BASE})
answer = json.loads(connection.getresponse().read())
connection.close()
response, page = request("GET", "/pay?pick_0=" + urllib.parse.quote(pick.group(1)), cookie=cookie)
fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
declined = dict(form, pay_key=fields["pay_key"], method="new", token=answer["token"],
                card_brand=answer["brand"], card_last4=answer["last4"],
                card_exp_month=answer["exp_month"], card_exp_year=answer["exp_year"])
response, page = request("POST", "/pay", urllib.parse.urlencode(declined), cookie)
check(response.status == 402 and "declined" in page and 'id="receipt"' not in page,
      f"a declined card: {response.status}")
# A new card without the script (no token): the page says a card needs JavaScript.
nojs = dict(form, pay_key=fields["pay_key"], method="new")
response, page = request("POST", "/pay", urllib.parse.urlencode(nojs), cookie)
check(response.status == 400 and "needs JavaScript" in page, f"no script: {response.status}")
# Without the CSRF token: refused, nothing paid.
refused = dict(form, pay_key="another-key-0123456789abcdef")
del refused["csrf"]
response, page = request("POST", "/pay", urllib.parse.urlencode(refused), cookie)
check(response.status == 403 and 'id="receipt"' not in page, f"no CSRF: {response.status}")

# At the core: another payer's invoice is "not found", a missing CSRF token is refused.
attempt = {"op": "portal-pay", "session": session.group(1), "csrf": fields["csrf"],
           "pay_key": "core-check-0123456789", "method_id": int(form["method"]),
           "lines": [{"invoice": OTHER, "amount_minor": 100}]}
reply = core(attempt)
check(reply.get("error") == "not found", f"another payer's invoice: {reply}")
del attempt["csrf"]
attempt["lines"] = [{"invoice": pick.group(1), "amount_minor": 100}]
reply = core(attempt)
check(reply.get("ok") is False and reply.get("csrf") is False, f"no CSRF at the core: {reply}")

with open(OUT, "w") as out:
    json.dump(paid, out)
if failures:
    sys.exit(1)
print("web_pay: all checks passed", flush=True)
