#!/usr/bin/python3
"""Make a Payment in four steps in a real browser against a real core (tests/e2e_staff_pay.sh).

usage: staff_pay.py BASE_URL ACCEPT_TOKEN EMAIL CLIENT FIRM SHOTS_DIR OUT_JSON

Headless Chromium on a 390 x 844 phone window. A billing staff member accepts the invitation
(ACCEPT_TOKEN: a password) and signs in. Step 1: search by client number, "use this every
time". Step 2: the client's invoices; two are checked and added; a second search (by invoice
number) adds a third; a trust ledger checked without an amount is refused (trust is by hand),
with 5.00 it is added; back at step 1 the selection is still there (4 lines), and /staff/pay
now goes straight to step 2; the "Selected" view lists the four. Step 3: one total above
what the three invoices have available is refused and the page says why; a total 1.00 short
of it is applied oldest first (the newest invoice gets its available balance less 1.00) and
the deposit stays 5.00. Step 4: a new payer (Save payer) with a declined card is charged
nothing, keeps what was typed and is saved; then a new card through the processor's hosted
fields pays, with the A/R message; the result page shows the operating and the
trust charge apart, approved, each with its posting; the same form sent again (over HTTP, as
the browser posted it) shows the same payment and pays nothing more. The 1.00 left is paid
for Max Full, who has 20 saved cards (the most), with a new card and "Save this card": it is
charged and the result page says the card was not saved, and why. Then a fourth
invoice is selected and sent with "Send for Payment" to the saved payer. Chromium's network
log shows no request to matterlink-web carried the card number, and its console no CSP
violation. Writes {"postings": [...],
"unsaved_postings": [...], "invoices": [...], "amounts": {...}, "ar_message": ...} to OUT_JSON.
"""
import json
import os
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

from web_common import check, failures, chrome, patient_wait, requester

BASE, TOKEN, EMAIL, CLIENT, FIRM, SHOTS, OUT = sys.argv[1:8]
PASSWORD = "staff horse battery"
CARD = "4242424242424242"
AR_MESSAGE = "Front desk: paid by phone, ticket 4471"
out = {"postings": [], "unsaved_postings": [], "invoices": [], "amounts": {}, "ar_message": AR_MESSAGE}

driver = chrome(('performance', 'browser'))
driver.set_window_size(390, 844)
wait = patient_wait(driver, 30)
os.makedirs(SHOTS, exist_ok=True)
network = []


def no_csp_violation():
    """The browser reported no Content-Security-Policy violation (it logs them to the console)."""
    for entry in driver.get_log("browser"):
        check("Content Security Policy" not in entry.get("message", ""),
              "CSP violation: " + entry.get("message", ""))


def keep_network_log():
    no_csp_violation()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            network.append(message["params"]["request"])


def heading():
    return driver.find_element(By.TAG_NAME, "h1").text


def wait_heading(text):
    wait.until(lambda d: text in d.find_element(By.TAG_NAME, "h1").text)


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, name))


def by_id(element_id):
    return driver.find_element(By.ID, element_id)


def type_into(element_id, text):
    field = by_id(element_id)
    field.clear()
    field.send_keys(text)


def cents(text):
    """'1,234.56' or '1,234.56 USD' as minor units (USD in these tests)."""
    number = text.split()[0].replace(",", "")
    whole, _, part = number.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


def decimal(minor):
    return "%d.%02d" % (minor // 100, minor % 100)


def click_and_load(element):
    """Click what sends a form or follows a link, and wait for the next page to replace this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait.until(expected_conditions.staleness_of(page))


def search(by, text):
    driver.find_element(By.CSS_SELECTOR, "#by option[value='%s']" % by).click()
    type_into("text", text)
    click_and_load(driver.find_element(By.CSS_SELECTOR, "#search-form button[name=go]"))
    wait.until(lambda d: d.find_elements(By.ID, "results") or d.find_elements(By.ID, "no-results"))


def result_rows():
    """[(checkbox, invoice number)] of the results table."""
    rows = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr"):
        rows.append((row.find_element(By.CSS_SELECTOR, "input[type=checkbox]"),
                     row.find_element(By.CSS_SELECTOR, "th").text.strip()))
    return rows


def selected_count():
    return int(by_id("selected-count").text)


def to_pay_step(invoice, payer_text):
    """A new payment of one invoice, from step 1 to step 4, for the saved payer whose search
    by payer_text finds them first."""
    driver.get(BASE + "/staff/pay")
    wait_heading("search")
    search("invoice-number", invoice)
    result_rows()[0][0].click()
    click_and_load(by_id("add-selection"))
    wait.until(lambda d: d.find_elements(By.ID, "selected-count") and selected_count() == 1)
    click_and_load(by_id("to-allocate"))
    wait_heading("allocate")
    click_and_load(by_id("to-pay"))
    wait_heading("pay")
    type_into("payer_text", payer_text)
    driver.find_element(By.CSS_SELECTOR, "#payer-find button").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#payers-found a"))
    driver.find_element(By.CSS_SELECTOR, "#payers-found a").click()
    wait.until(lambda d: d.find_elements(By.ID, "payer-chosen"))


try:
    # The invitation: a password (no second factor for billing), then sign in.
    driver.get(BASE + "/staff/accept?token=" + TOKEN)
    type_into("password", PASSWORD)
    type_into("confirm", PASSWORD)
    button = driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]")
    button.click()
    wait.until(expected_conditions.staleness_of(button))
    check("Welcome" in heading(), "the invitation accepted: " + heading())
    driver.get(BASE + "/staff/sign-in")
    type_into("email", EMAIL)
    type_into("password", PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(lambda d: "/staff/sign-in" not in d.current_url)

    # Step 1: criteria. No default yet, so /staff/pay shows it.
    driver.get(BASE + "/staff/pay")
    wait_heading("search criteria")
    check(FIRM in driver.find_element(By.CSS_SELECTOR, "header").text, "the firm's name in the header")
    by_id("by-client-number").click()
    by_id("remember").click()
    shot("staff-pay-1-criteria.png")
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_heading("search")
    check("by=client-number" in driver.current_url, "step 2 with the field chosen: " + driver.current_url)

    # Step 2: the client's invoices; check two and add them.
    search("client-number", CLIENT)
    rows = result_rows()
    check(len(rows) >= 4, "at least four invoices of the client: %d" % len(rows))
    first_two = [number for _, number in rows[:2]]
    third, fourth = rows[2][1], rows[3][1]
    for box, _ in rows[:2]:
        box.click()
    shot("staff-pay-2-search.png")
    driver.set_window_size(1280, 900)
    shot("staff-pay-2-search-1280.png")
    driver.set_window_size(390, 844)
    click_and_load(by_id("add-selection"))
    wait.until(lambda d: d.find_elements(By.ID, "selected-count") and selected_count() == 2)
    # A second search adds a third invoice to the same selection.
    search("invoice-number", third)
    rows = result_rows()
    check([number for _, number in rows] == [third], "the invoice-number search finds %s: %s" % (third, rows))
    rows[0][0].click()
    click_and_load(by_id("add-selection"))
    wait.until(lambda d: d.find_elements(By.ID, "selected-count") and selected_count() == 3)
    # A trust ledger of the client: trust is allocated by hand, so a deposit needs its amount.
    driver.get(BASE + "/staff/pay/search?target=trust&by=client-number&go=1&text=" + CLIENT)
    wait.until(lambda d: d.find_elements(By.ID, "results"))
    ledger = driver.find_element(By.CSS_SELECTOR, "#results tbody tr")
    matter = ledger.find_element(By.CSS_SELECTOR, "th").text.split()[0]
    ledger.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    click_and_load(by_id("add-selection"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "p.error"))
    check("by hand" in driver.find_element(By.CSS_SELECTOR, "p.error").text,
          "a trust deposit without an amount is refused: " + driver.find_element(By.CSS_SELECTOR, "p.error").text)
    check(selected_count() == 3, "nothing added without the deposit's amount")
    ledger = driver.find_element(By.CSS_SELECTOR, "#results tbody tr")
    if not ledger.find_element(By.CSS_SELECTOR, "input[type=checkbox]").is_selected():
        ledger.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    ledger.find_element(By.CSS_SELECTOR, "input[type=text]").send_keys("5.00")
    click_and_load(by_id("add-selection"))
    wait.until(lambda d: d.find_elements(By.ID, "selected-count") and selected_count() == 4)

    # Back to step 1: the selection is kept; /staff/pay now skips step 1.
    driver.find_element(By.LINK_TEXT, "Back to step 1: criteria").click()
    wait_heading("search criteria")
    check("4 line" in by_id("selection-kept").text, "step 1 says the selection is kept")
    check(by_id("remember").is_selected(), "'use this every time' is remembered")
    driver.get(BASE + "/staff/pay")
    wait_heading("search")
    check("by=client-number" in driver.current_url, "/staff/pay skips to step 2: " + driver.current_url)
    by_id("view-selected").click()
    wait.until(lambda d: d.find_elements(By.ID, "selected"))
    listed = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#selected tbody th")]
    check(sorted(listed) == sorted(["Invoice " + n for n in first_two + [third]] +
                                   ["Trust deposit, matter " + matter]),
          "the Selected view lists the three and the deposit: %s" % listed)
    shot("staff-pay-2-selected.png")
    out["invoices"] = first_two + [third]

    # Step 3: one total. Above what is available: refused, and why.
    click_and_load(by_id("to-allocate"))
    wait_heading("allocate")
    lines = [line for line in driver.find_elements(By.CSS_SELECTOR, "#allocation tbody tr")
             if line.find_element(By.CSS_SELECTOR, "th").text.startswith("Invoice")]
    order = [line.find_element(By.CSS_SELECTOR, "th").text.split()[1] for line in lines]
    available = [cents(line.find_element(By.CSS_SELECTOR, "td[data-label=Available]").text)
                 for line in lines]
    check(sorted(order) == sorted(out["invoices"]), "allocate lists the three: %s" % order)
    total = sum(available)
    by_id("mode-total").click()
    type_into("total", decimal(total + 100))
    click_and_load(by_id("to-pay"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "p.error"))
    refusal = driver.find_element(By.CSS_SELECTOR, "p.error").text
    check("more than" in refusal and "so 1.00 USD would be a surplus" in refusal and decimal(total + 100) in refusal.replace(",", ""),
          "a surplus is refused with the reason: " + refusal)
    shot("staff-pay-3-surplus.png")
    check(heading().endswith("allocate"), "still at step 3 after the surplus")
    # 1.00 short: the oldest two in full, the newest its available balance less 1.00.
    by_id("mode-total").click()
    type_into("total", decimal(total - 100))
    click_and_load(by_id("to-pay"))
    wait_heading("pay")
    expected = dict(zip(order, available))
    expected[order[-1]] -= 100
    expected[matter] = 500  # the deposit as typed, never part of the total
    summary = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#summary tbody tr"):
        summary[row.find_element(By.CSS_SELECTOR, "th").text.split()[-1]] = cents(
            row.find_element(By.CSS_SELECTOR, "td.num").text)
    check(summary == expected, "oldest first, trust by hand: %s, expected %s" % (summary, expected))
    out["amounts"] = summary

    # Step 4: a new payer, saved, with a new card through the hosted fields.
    type_into("payer_name", "Pat Doe")
    type_into("payer_email", "pat@example.com")
    by_id("save_payer").click()
    check(by_id("method-new").is_selected(), "a new card is the choice without a saved payer")
    type_into("receipt_email", "pat@example.com")
    type_into("ar_message", AR_MESSAGE)

    def card(number):
        type_into("card-number", number)
        type_into("card-exp-month", "04")
        type_into("card-exp-year", "2031")
        type_into("card-cvc", "123")

    # A declined card charges nothing and keeps everything typed; the saved payer stays.
    card("4000000000000002")
    click_and_load(by_id("pay-now"))
    check("declined (card_declined)" in driver.find_element(By.CSS_SELECTOR, "p.error").text,
          "the decline and its reason: " + driver.find_element(By.CSS_SELECTOR, "p.error").text)
    check("Pat Doe" in by_id("payer-chosen").text, "the payer saved with Save payer is chosen")
    check(by_id("ar_message").get_attribute("value") == AR_MESSAGE, "the A/R message is kept")
    check(by_id("method-new").is_selected(), "the new card is still the choice")
    card(CARD)
    by_id("save_method").click()
    shot("staff-pay-4-pay.png")
    by_id("pay-now").click()
    wait_heading("Payment made")
    check(by_id("payment-status").text == "approved", "approved: " + by_id("payment-status").text)
    check(not driver.find_elements(By.ID, "method-not-saved"), "a card that was saved is not said unsaved")
    charges = driver.find_elements(By.CSS_SELECTOR, "#charges tr.charge")
    check([c.get_attribute("class") for c in charges] == ["charge operating", "charge trust"],
          "an operating and a trust charge, apart: %s" % [c.get_attribute("class") for c in charges])
    for charge in charges:
        posting = charge.find_element(By.CSS_SELECTOR, ".posting").text
        check(len(posting) == 36, "the charge's posting: " + posting)
        out["postings"].append(posting)
        check(charge.find_element(By.CSS_SELECTOR, ".posting-status").text in
              ("pending", "delivered", "posted"), "the posting's state")
    shot("staff-pay-5-result.png")
    keep_network_log()
    # The same form sent again (a double click, a resend): the same payment, not a second one.
    sent = [r for r in network if r["url"] == BASE + "/staff/pay/pay" and r["method"] == "POST"]
    check(len(sent) == 2 and sent[-1].get("postData"), "the pay form was posted twice: %d" % len(sent))
    if sent and sent[-1].get("postData"):
        cookie = "ml_staff=" + driver.get_cookie("ml_staff")["value"]
        response, page = requester(BASE, timeout=30)("POST", "/staff/pay/pay", sent[-1]["postData"], cookie)
        check(response.status == 200 and all(p in page for p in out["postings"]),
              "the form sent again shows the same payment: %d %s" % (response.status, page[-600:]))

    # A card "Save this card" cannot keep: Max Full has 20 saved cards, the most. The 1.00
    # left on the newest invoice is paid with a new card: it is charged, and the result page
    # says above the charges that the card was not saved, and why.
    to_pay_step(order[-1], "Max")
    check("Max Full" in by_id("payer-chosen").text, "Max Full is chosen")
    by_id("method-new").click()
    card(CARD)
    by_id("save_method").click()
    by_id("pay-now").click()
    wait_heading("Payment made")
    check(by_id("payment-status").text == "approved", "approved at 20 cards: " + by_id("payment-status").text)
    unsaved = driver.find_elements(By.ID, "method-not-saved")
    check(unsaved and "already has 20 payment methods" in unsaved[0].text,
          "the card not saved is said, with why: %s" % (unsaved[0].text if unsaved else "(nothing)"))
    shot("staff-pay-6-not-saved.png")
    for charge in driver.find_elements(By.CSS_SELECTOR, "#charges tr.charge"):
        out["unsaved_postings"].append(charge.find_element(By.CSS_SELECTOR, ".posting").text)
    check(len(out["unsaved_postings"]) == 1, "one charge at 20 cards: %s" % out["unsaved_postings"])

    # Send for Payment: a fourth invoice, to the saved payer.
    to_pay_step(fourth, "Pat")
    check("Pat Doe" in by_id("payer-chosen").text, "the saved payer is chosen")
    check(len(driver.find_elements(By.CSS_SELECTOR, "input[name=method][id^=method-]")) >= 2,
          "the saved card is offered")
    by_id("send-link").click()
    wait_heading("Payment link sent")
    check("pat@example.com" in by_id("link-sent").text, "the link went to the payer")
    out["link_invoice"] = fourth
    keep_network_log()
    carried = [r["url"] for r in network if r["url"].startswith(BASE) and
               CARD in (r.get("postData", "") + r["url"])]
    check(not carried, "no request to matterlink-web carried the card number: %s" % carried)
except Exception as error:  # noqa: BLE001 (the screenshot and the page say what went wrong)
    shot("staff-pay-failure.png")
    check(False, "%s: %s at %s: %s" % (type(error).__name__, error, driver.current_url,
                                       driver.find_element(By.TAG_NAME, "main").text[:800]
                                       if driver.find_elements(By.TAG_NAME, "main") else ""))
finally:
    driver.quit()
    json.dump(out, open(OUT, "w"))

print("staff_pay: " + ("FAIL" if failures else "OK"), flush=True)
sys.exit(1 if failures else 0)
