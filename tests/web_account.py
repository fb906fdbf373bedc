#!/usr/bin/python3
"""The payer's account pages in a real browser against a real core (tests/e2e_web_account.sh).

usage: web_account.py BASE_URL SET_PASSWORD_TOKEN EMAIL FIRM SHOTS_DIR PAYMENT RECORDED
       INVOICE MATTER VISA_ID MASTERCARD_ID OTHER_PAYMENT OTHER_METHOD_ID AUTOPAY_FIRST

Headless Chromium on a 390 x 844 phone window: the payer sets the password from the welcome
link and signs in; the history lists the staff charge (partly refunded: its trust deposit was
refunded), the declined card, the saved-card deposits and the payment staff recorded, each
with its status; the receipt of the charge shows its invoice and trust deposit, the firm and
the payer; an expired card is marked; the Mastercard becomes the default and then is removed, the Visa (which pays
Auto-Pay) becomes the default and has no Remove button; the Auto-Pay page shows the schedule
and its next run. Over plain HTTP with the same session: another payer's receipt and card are
404, a change without the CSRF token 403.
"""
import os
import re
import sys
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.common.exceptions import WebDriverException

from web_common import check, failures, requester, chrome, patient_wait

(BASE, TOKEN, EMAIL, FIRM, SHOTS, PAYMENT, RECORDED, INVOICE, MATTER, VISA, MASTERCARD,
 OTHER_PAYMENT, OTHER_METHOD, AUTOPAY_FIRST) = sys.argv[1:15]
PASSWORD = "correct horse battery"


request = requester(BASE, timeout=10)


# The password, through the welcome link's form (the sign-in flow is tests/web_flow.py's).
response, page = request("GET", "/set-password?token=" + TOKEN)
form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
body = urllib.parse.urlencode({"form_token": form_token, "token": TOKEN, "password": PASSWORD,
                               "confirm": PASSWORD})
response, page = request("POST", "/set-password", body, f"ml_form={form_token}")
check(response.status == 200, f"set the password: {response.status}")

driver = chrome()
# A condition may look at an element of the page being replaced: ask again, not fail.
wait = patient_wait(driver, 15)
os.makedirs(SHOTS, exist_ok=True)


def heading():
    return driver.find_element(By.TAG_NAME, "h1").text


def open_page(path, expected):
    driver.get(BASE + path)
    wait.until(lambda d: heading() == expected)


def text():
    return driver.find_element(By.TAG_NAME, "main").text


try:
    driver.set_window_size(390, 844)
    driver.get(BASE + "/sign-in")
    driver.find_element(By.ID, "email").send_keys(EMAIL)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait.until(lambda d: heading() == "Your invoices")
    # The menu reaches the history.
    driver.find_element(By.LINK_TEXT, "Payment history").click()
    wait.until(lambda d: heading() == "Payment history")
    check(FIRM in driver.find_element(By.CSS_SELECTOR, "header.site").text, "the firm's name")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.history tbody tr")
    shown = {}
    for row in rows:
        link = row.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
        shown[link.rsplit("/", 1)[-1]] = row.text
    check(len(rows) == 5, f"the history lists {len(rows)} payments, not 5: {list(shown.values())}")
    charge = shown.get(PAYMENT, "")
    check("partly refunded" in charge and "17.34" in charge and "Charged by the firm" in charge
          and "Visa ending 4242" in charge, f"the staff charge: {charge!r}")
    check("Operating: 12.34 USD, approved; Posted to your account" in charge
          and "Trust: 5.00 USD, refunded" in charge, f"the staff charge's charges: {charge!r}")
    recorded = shown.get(RECORDED, "")
    check("Recorded by the firm" in recorded and "2.00" in recorded and "approved" in recorded,
          f"the recorded payment: {recorded!r}")
    check(sum("declined" in row for row in shown.values()) == 1, "the declined card")
    check(sum("1.00 USD" in row and "Trust: 1.00 USD, approved" in row for row in shown.values()) == 2,
          "the two deposits that saved the cards")
    check(OTHER_PAYMENT not in shown, "another payer's payment is listed")
    check("ar_message" not in driver.page_source, "the A/R message")
    driver.save_screenshot(os.path.join(SHOTS, "web-history-390.png"))

    # The receipt, printable.
    driver.find_element(By.CSS_SELECTOR, f"a[href='/history/{PAYMENT}']").click()
    wait.until(lambda d: heading() == "Receipt")
    receipt = text()
    for expected in [FIRM, "Pat Doe", EMAIL, f"Invoice {INVOICE}", f"Trust deposit, matter {MATTER}",
                     "12.34 USD", "5.00 USD", "partly refunded", "Posted to your account",
                     "Refunded (done)", PAYMENT]:
        check(expected in receipt, f"the receipt shows {expected!r}")
    driver.save_screenshot(os.path.join(SHOTS, "web-receipt-390.png"))

    # Saved methods: the Mastercard becomes the default, then goes; the Visa pays Auto-Pay.
    driver.find_element(By.LINK_TEXT, "Payment methods").click()
    wait.until(lambda d: heading() == "Payment methods")
    check("New cards are saved when you pay" in text(), "the page says how cards are added")
    check("Pays your Auto-Pay (Monthly fees)" in text(), "the Visa is marked as Auto-Pay's")
    check(len(driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Remove Visa ending 4242']")) == 0,
          "the Visa, which pays Auto-Pay, has a Remove button")
    expired = driver.find_element(By.XPATH, "//tr[contains(., 'Visa ending 1111')]").text
    check("01/2020" in expired and "Expired" in expired and "Make default" not in expired,
          f"the expired card is marked and cannot be the default: {expired!r}")
    check("Expired" not in driver.find_element(By.XPATH, "//tr[contains(., 'Visa ending 4242')]").text,
          "a current card is marked expired")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Make Mastercard ending 4444 the default']").click()
    wait.until(lambda d: "Your default card is changed." in text())
    row = driver.find_element(By.XPATH, "//tr[contains(., 'Mastercard ending 4444')]").text
    check("Default" in row, f"the Mastercard is the default: {row!r}")
    driver.save_screenshot(os.path.join(SHOTS, "web-methods-390.png"))
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Remove Mastercard ending 4444']").click()
    wait.until(lambda d: "The card is removed." in text())
    check("Mastercard" not in text(), "the Mastercard is still listed")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Make Visa ending 4242 the default']").click()
    wait.until(lambda d: "Your default card is changed." in text())
    check("Default" in driver.find_element(By.XPATH, "//tr[contains(., 'Visa ending 4242')]").text,
          "the Visa is the default")

    # Auto-Pay, read-only, with its next run.
    driver.find_element(By.LINK_TEXT, "Auto-Pay").click()
    wait.until(lambda d: heading() == "Auto-Pay")
    autopay = text()
    check("Monthly fees" in autopay and AUTOPAY_FIRST in autopay and "Visa ending 4242" in autopay
          and "Everything due" in autopay, f"the Auto-Pay page: {autopay!r}")

    # The history on a laptop: a table.
    driver.set_window_size(1280, 900)
    open_page("/history", "Payment history")
    driver.save_screenshot(os.path.join(SHOTS, "web-history-1280.png"))

    # Over plain HTTP with the same session: other payers' things are "not found", changes
    # need the session's CSRF token.
    session = driver.get_cookie("ml_session")["value"]
    cookie = f"ml_session={session}"
    response, page = request("GET", f"/history/{OTHER_PAYMENT}", cookie=cookie)
    check(response.status == 404, f"another payer's receipt: {response.status}")
    response, page = request("GET", "/history/00000000-0000-4000-8000-000000000000", cookie=cookie)
    check(response.status == 404, f"no such payment: {response.status}")
    response, page = request("GET", "/methods", cookie=cookie)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    for path in ["/methods/remove", "/methods/default"]:
        body = urllib.parse.urlencode({"csrf": csrf, "method_id": OTHER_METHOD})
        response, page = request("POST", path, body, cookie)
        check(response.status == 404, f"{path} of another payer's card: {response.status}")
        body = urllib.parse.urlencode({"method_id": VISA})
        response, page = request("POST", path, body, cookie)
        check(response.status == 403, f"{path} without the CSRF token: {response.status}")
        body = urllib.parse.urlencode({"csrf": "x" * 43, "method_id": VISA})
        response, page = request("POST", path, body, cookie)
        check(response.status == 403, f"{path} with a wrong CSRF token: {response.status}")
    response, page = request("GET", "/methods/remove", cookie=cookie)
    check(response.status == 405, f"GET of a change: {response.status}")
    response, page = request("GET", "/history", cookie="ml_session=" + "A" * 43)
    check(response.status == 303, f"the history without a live session: {response.status}")
    response, page = request("GET", "/methods", cookie=cookie)
    check("Visa ending 4242" in page, "the Visa is still saved")
except Exception as error:  # a crash is a failure with its reason, not a traceback alone
    failures.append(f"{type(error).__name__}: {error}")
    print("FAIL:", failures[-1], flush=True)
    try:
        print(driver.find_element(By.TAG_NAME, "body").text[:2000])
    except WebDriverException:
        pass
finally:
    driver.quit()

sys.exit(1 if failures else 0)
