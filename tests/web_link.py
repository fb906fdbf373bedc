#!/usr/bin/python3
"""A payment link's page in a real browser against a real core (tests/e2e_web_link.sh).

usage: web_link.py LINK_URL TWICE_TOKEN CANCELLED_TOKEN FIRM "INVOICE INVOICE" SHOTS_DIR OUT_JSON

Headless Chromium on a 390 x 844 phone window opens the URL from the link's e-mail: the page
shows the firm, the invoices and the trust deposit with the total, never the A/R message; the
card inputs have no name; a new card typed there is tokenized at the processor by the page's
script and pays; the confirmation shows the charges and the receipt number. The same URL then
shows the generic "expired or was already used" page, like a cancelled link and an unknown
token (the same words for all three). Over plain HTTP: Referrer-Policy no-referrer; the link
token is a hidden field of the form; one form posted twice at once pays once. Writes
{"postings": [...]} to OUT_JSON.
"""
import http.client
import json
import os
import re
import sys
import threading
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

from web_common import check, failures, requester, chrome, patient_wait

LINK_URL, TWICE, CANCELLED, FIRM, INVOICES, SHOTS, OUT = sys.argv[1:8]
CARD = "4242424242424242"
GONE = "expired or was already used"
paid = {"postings": []}
url = urllib.parse.urlsplit(LINK_URL)
BASE = f"{url.scheme}://{url.netloc}"
TOKEN = urllib.parse.parse_qs(url.query)["token"][0]


request = requester(BASE, timeout=20)


def main_text(page):
    found = re.search(r"<main[^>]*>(.*)</main>", page, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1) if found else page).strip()


# Over HTTP first: the page's headers and form, before the link is paid.
response, page = request("GET", f"/link?token={TWICE}")
check(response.status == 200, f"the link page: {response.status}")
check(response.getheader("Referrer-Policy") == "no-referrer", "Referrer-Policy no-referrer")
check("SECRET-AR-MEMO" not in page, "the A/R message on the page")
check(f'name="link" value="{TWICE}"' in page, "the link's token is a hidden field of the form")
check("<script>" not in page and "style=" not in page, "no inline script or style")

driver = chrome(('performance', 'browser'))
wait = patient_wait(driver, 20)
os.makedirs(SHOTS, exist_ok=True)
network = []
gone_texts = []

try:
    driver.set_page_load_timeout(20)
    driver.set_window_size(390, 844)
    driver.get(LINK_URL)
    check(FIRM in driver.find_element(By.CSS_SELECTOR, "header.site").text, "the firm's name")
    lines = driver.find_element(By.ID, "link-lines").text
    for invoice in INVOICES.split():
        check(invoice in lines, f"invoice {invoice} on the page")
    check("Trust deposit" in lines, "the trust deposit on the page")
    check(driver.find_element(By.ID, "link-total").text.startswith("6.75"),
          f"the total: {driver.find_element(By.ID, 'link-total').text}")
    check("SECRET-AR-MEMO" not in driver.page_source, "the A/R message on the page")
    for field in ["card-number", "card-exp-month", "card-exp-year", "card-cvc"]:
        element = driver.find_element(By.ID, field)
        check(element.get_attribute("name") in (None, ""), f"{field} has no name")
        check(len(driver.find_elements(By.CSS_SELECTOR, f"label[for={field}]")) == 1,
              f"{field} has a label")
    driver.find_element(By.ID, "card-number").send_keys("4242 4242 4242 4242")
    driver.find_element(By.ID, "card-exp-month").send_keys("12")
    driver.find_element(By.ID, "card-exp-year").send_keys("2099")
    driver.find_element(By.ID, "card-cvc").send_keys("123")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    check(width <= 390, f"the link page fits 390 px (width {width})")
    driver.save_screenshot(os.path.join(SHOTS, "web-link-390.png"))
    driver.find_element(By.CSS_SELECTOR, "#pay-form button[type=submit]").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Thank you"))
    postings = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "td.posting")]
    main = driver.find_element(By.TAG_NAME, "main").text
    check(len(postings) == 2 and all(postings), f"two charges with their postings: {postings}")
    check("Invoices" in main and "Trust deposit" in main, "the charges apart")
    receipt = driver.find_element(By.ID, "receipt").text
    check(re.fullmatch(r"[0-9a-f-]{36}", receipt) is not None, f"a receipt number: {receipt}")
    paid["postings"].extend(postings)
    driver.save_screenshot(os.path.join(SHOTS, "web-link-done-390.png"))
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            network.append(message["params"]["request"])

    # Used, cancelled, unknown: one page, the same words.
    for token in [TOKEN, CANCELLED, "0123456789abcdef0123456789abcdef"]:
        driver.get(f"{BASE}/link?token={token}")
        text = driver.find_element(By.TAG_NAME, "main").text
        check(GONE in text, f"the generic page for {token[:6]}...: {text}")
        check(len(driver.find_elements(By.ID, "pay-form")) == 0, "no form on it")
        gone_texts.append(text)
    check(len(set(gone_texts)) == 1, f"the same words for used, cancelled, unknown: {gone_texts}")
    severe = [entry for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
              and "410" not in entry["message"]]
    check(not severe, f"browser errors (CSP?): {severe}")
finally:
    driver.quit()

to_web = [item for item in network if item["url"].startswith(BASE)]
check(to_web, "the network log holds the requests to the web")
check(not any(CARD in (item.get("postData") or "") or CARD in item["url"] for item in to_web),
      "a request to matterlink-web carried the card number")
check(any("/v1/public/tokens" in item["url"] for item in network),
      "the browser tokenized at the processor")

def tokenized(page, number):
    """The card's token as the page's script gets it from the processor."""
    tokenize = urllib.parse.urlsplit(re.search(r'data-tokenize-url="([^"]+)"', page).group(1))
    connection = http.client.HTTPConnection(tokenize.hostname, tokenize.port, timeout=10)
    connection.request("POST", tokenize.path, json.dumps({"number": number, "exp_month": 12,
                                                         "exp_year": 2099, "cvc": "123"}),
                       {"Content-Type": "application/json", "Origin": BASE})
    card = json.loads(connection.getresponse().read())
    connection.close()
    return card


def link_form(page, number):
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
    card = tokenized(page, number)
    return urllib.parse.urlencode({"link": fields["link"], "pay_key": fields["pay_key"],
                                   "method": "new", "token": card["token"],
                                   "card_brand": card["brand"], "card_last4": card["last4"],
                                   "card_exp_month": card["exp_month"],
                                   "card_exp_year": card["exp_year"]})


# A declined card: the page again with the reason, nothing paid, the link still open.
response, page = request("GET", f"/link?token={TWICE}")
response, page = request("POST", "/link", link_form(page, "4000000000000002"))
check(response.status == 402 and "declined" in page and 'id="receipt"' not in page
      and 'id="pay-form"' in page, f"a declined card: {response.status}")
# A card token the processor never made: refused, nothing paid.
fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
forged = urllib.parse.urlencode({"link": fields["link"], "pay_key": fields["pay_key"],
                                 "method": "new", "token": "tok_forged0123456789"})
response, page = request("POST", "/link", forged)
check(response.status == 400 and 'id="receipt"' not in page and 'id="pay-form"' in page,
      f"a forged card token: {response.status} {main_text(page)[:200]}")

# One form posted twice at once (a double click without the script's guard): one payment.
response, page = request("GET", f"/link?token={TWICE}")
form = link_form(page, CARD)
answers = [None, None]


def post(index):
    answers[index] = request("POST", "/link", form)


threads = [threading.Thread(target=post, args=(index,)) for index in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
receipts = []
for response, page in answers:
    check(response.status == 200, f"a post of the form: {response.status} {main_text(page)}")
    shown = re.search(r'id="receipt">([^<]+)<', page)
    receipts.append(shown.group(1) if shown else None)
check(receipts[0] and receipts[0] == receipts[1], f"the same form twice, one payment: {receipts}")
# Once more, after both answered: the payment as it stands, with its posting.
response, page = request("POST", "/link", form)
check(response.status == 200 and "already sent" in page, f"a third post: {response.status}")
shown = re.search(r'id="receipt">([^<]+)<', page)
check(shown and shown.group(1) == receipts[0], "the third post shows the same payment")
paid["postings"].extend(re.findall(r'class="posting">([^<]+)<', page))
# Another form of the paid link: the generic page.
response, page = request("POST", "/link", form.replace("pay_key=", "pay_key=x"))
check(response.status == 410 and GONE in page, f"another form of a paid link: {response.status}")
# A POST without the link's token, or with the card and no token: the generic page.
response, page = request("POST", "/link", "pay_key=abcdefabcdefabcdef")
check(response.status == 410 and GONE in page, f"a post without the link: {response.status}")

with open(OUT, "w") as out:
    json.dump(paid, out)
if failures:
    sys.exit(1)
print("web_link: all checks passed", flush=True)
