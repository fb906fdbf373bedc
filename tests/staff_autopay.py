#!/usr/bin/python3
"""The staff app's Auto-Pay and Notifications pages in a real browser against a real core
(tests/e2e_staff_autopay.sh).

usage: staff_autopay.py BASE_URL ADMIN_TOKEN BILLING_TOKEN CLI ADMIN_SOCKET OUT_JSON SHOTS_DIR

Headless Chromium, 390 px wide: the administrator (second factor) sends "Error-Failed
AutoPay" to alerts@acme.example and turns "payment received" on on /staff/notifications; a
billing member gets 404 there, then, from Pat's page (Payers, its Auto-Pay tab), adds a
monthly schedule for Pat (saved card, name, deposit account, A/R message, frequency,
first date, up to an amount) with "Save and Manage Enrollments", checks Pat's association and
"Enroll and Save"; the operator's test clock runs it and the schedule's page shows the paid run
with its posting, posted; a second schedule for a payer whose card is declined shows the
declined run; the first schedule disabled makes no more runs. Over HTTP: a form without the
CSRF token changes nothing. Writes the schedules and the posting to OUT_JSON for the script.
"""
import json
import re
import subprocess
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select

from staff_browser import StaffBrowser, next_code
from web_common import check, failures, requester

BASE, ADMIN_TOKEN, BILLING_TOKEN, CLI, ADMIN_SOCKET, OUT, SHOTS = sys.argv[1:8]
ADMIN_PASSWORD = "admin horse battery staple"
BILLING_PASSWORD = "billing horse battery"
request = requester(BASE, timeout=10)
out = {}




def operator(*args):
    """The operator's CLI (the test clock is the operator's, never staff's)."""
    done = subprocess.run([CLI, "--admin", ADMIN_SOCKET, "--json", *args], capture_output=True,
                          text=True, timeout=90)
    check(done.returncode == 0, f"matterlink {' '.join(args)}: {done.stdout} {done.stderr}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def runs(schedule):
    return operator("autopay", "show", str(schedule))["schedule"]["runs"]


def clock(day, schedules):
    """Set the test clock; wait until no run of schedules is still open."""
    operator("autopay", "clock", day)
    deadline = time.time() + 30
    while time.time() < deadline:
        if all(r["status"] not in ("started", "pending") for s in schedules for r in runs(s)):
            return
        time.sleep(0.3)
    check(False, f"the runs due by {day} settled")


ui = StaffBrowser(BASE, SHOTS, 15)
driver, wait = ui.driver, ui.wait
heading, shot, fits, accept, sign_in, sign_out = ui.heading, ui.shot, ui.fits, ui.accept, ui.sign_in, ui.sign_out




def add_schedule(payer_name, name, frequency, first, amount=None, message="", from_payer=False):
    """From the payer's page (its Auto-Pay tab, "+ Add Auto-Pay") or from the Auto-Pay list
    (pick the payer): fill the form, Save and Manage Enrollments, check every association,
    Enroll and Save. Returns the schedule's id."""
    if from_payer:
        driver.find_element(By.LINK_TEXT, "Payers").click()
        wait.until(expected_conditions.url_contains("/staff/payers"))
        driver.find_element(By.LINK_TEXT, payer_name).click()
        wait.until(expected_conditions.url_contains("/staff/payers/"))
        driver.find_element(By.CSS_SELECTOR, "nav.tabs").find_element(By.LINK_TEXT,
                                                                     "Auto-Pay").click()
        wait.until(expected_conditions.url_contains("/staff/autopay?payer_id="))
        check(heading() == f"Auto-Pay: {payer_name}", f"the payer's Auto-Pay: {heading()!r}")
        check("No Auto-Pay schedules yet." in driver.page_source, "none yet")
        driver.find_element(By.LINK_TEXT, "+ Add Auto-Pay").click()
    else:
        driver.find_element(By.LINK_TEXT, "Auto-Pay").click()
        wait.until(expected_conditions.url_to_be(BASE + "/staff/autopay"))
        select = Select(driver.find_element(By.ID, "add-payer"))
        select.select_by_visible_text(
            [o.text for o in select.options if o.text.startswith(payer_name)][0])
        driver.find_element(By.CSS_SELECTOR, "form[action='/staff/autopay/form'] button").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "ap-name")))
    check(heading() == f"Add Auto-Pay for {payer_name}", f"the form's heading: {heading()!r}")
    # Every field of seed 004: a saved method, name, deposit account, A/R message, frequency,
    # first date, all or up to an amount.
    check(len(Select(driver.find_element(By.ID, "ap-method")).options) == 1, "the payer's card")
    accounts = [o.text for o in Select(driver.find_element(By.ID, "ap-account")).options]
    check(accounts == ["OP-001 (operating, USD)"], f"operating accounts only: {accounts}")
    driver.find_element(By.ID, "ap-name").send_keys(name)
    driver.find_element(By.ID, "ap-message").send_keys(message)
    Select(driver.find_element(By.ID, "ap-frequency")).select_by_value(frequency)
    driver.execute_script("arguments[0].value = arguments[1]",
                          driver.find_element(By.ID, "ap-first"), first)
    if amount:
        driver.find_element(By.ID, "ap-pay-upto").click()
        driver.find_element(By.ID, "ap-amount").send_keys(amount)
    else:
        driver.find_element(By.ID, "ap-pay-all").click()
    fits("the Auto-Pay form")
    if amount:
        shot("staff-autopay-form-390.png")
    driver.find_element(By.CSS_SELECTOR, "button[value=enroll]").click()
    wait.until(expected_conditions.url_contains("/staff/autopay/enroll?schedule_id="))
    schedule = int(re.search(r"schedule_id=(\d+)", driver.current_url).group(1))
    boxes = driver.find_elements(By.CSS_SELECTOR, "form.enrollments input[type=checkbox]")
    check(len(boxes) == 1 and not boxes[0].is_selected(), "the payer's association, unchecked")
    for box in boxes:
        box.click()
    fits("the enrollments")
    if amount:
        shot("staff-autopay-enroll-390.png")
    driver.find_element(By.XPATH, "//button[text()='Enroll and Save']").click()
    wait.until(expected_conditions.url_contains("/staff/autopay/schedule?schedule_id="))
    check("The enrollments are saved." in driver.page_source, "enrollments saved")
    check(len(driver.find_elements(By.CSS_SELECTOR, "ul.enrollments li")) == 1,
          "the enrollment on the schedule's page")
    return schedule


def run_rows():
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")]


try:
    driver.set_page_load_timeout(20)
    driver.set_window_size(390, 844)

    # The administrator: Error-Failed AutoPay to an address of the firm's choosing.
    secret = accept(ADMIN_TOKEN, ADMIN_PASSWORD, with_code=True)
    sign_in("ann@example.com", ADMIN_PASSWORD, next_code(secret))
    driver.get(BASE + "/staff/notifications")
    check(heading() == "Notifications", f"notifications: {heading()!r}")
    section = driver.find_element(By.ID, "notify-autopay_failed")
    check(section.find_element(By.ID, "autopay_failed-on").is_selected(),
          "Error-Failed AutoPay is on by default")
    check("office@acme.example" in section.text, "by default to the contact address")
    check(not driver.find_element(By.ID, "link_paid-on").is_selected(), "link paid off by default")
    section.find_element(By.ID, "autopay_failed-to").send_keys("alerts@acme.example")
    section.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(expected_conditions.staleness_of(section))
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
    section = driver.find_element(By.ID, "notify-autopay_failed")
    check("alerts@acme.example" in section.find_element(By.CSS_SELECTOR, "p.state").text,
          "Error-Failed AutoPay now to alerts@acme.example")
    # Payment received, off by default, on: to the contact address (no address given).
    section = driver.find_element(By.ID, "notify-payment_received")
    section.find_element(By.ID, "payment_received-on").click()
    section.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(expected_conditions.staleness_of(section))
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
    check("office@acme.example" in driver.find_element(By.ID, "notify-payment_received").text,
          "payment received on, to the contact address")
    # A bad address is refused and says why.
    section = driver.find_element(By.ID, "notify-agent_offline")
    section.find_element(By.ID, "agent_offline-on").click()
    section.find_element(By.ID, "agent_offline-to").send_keys("it@acme.example, not an address")
    section.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(expected_conditions.staleness_of(section))
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    check("is not an e-mail address" in driver.find_element(By.CSS_SELECTOR, "p.error").text,
          "a bad address is refused with the reason")
    check(not driver.find_element(By.ID, "agent_offline-on").is_selected(),
          "the refused change changed nothing")
    fits("the notifications page")
    shot("staff-notifications-390.png")
    sign_out()

    # The billing member: no notifications page, but Auto-Pay.
    accept(BILLING_TOKEN, BILLING_PASSWORD, with_code=False)
    sign_in("bo@example.com", BILLING_PASSWORD)
    check(not driver.find_elements(By.LINK_TEXT, "Notifications"), "no Notifications for billing")
    driver.get(BASE + "/staff/notifications")
    check(heading() == "Page not found", f"notifications for billing: {heading()!r}")
    driver.get(BASE + "/staff/")

    monthly = add_schedule("Pat Doe", "Monthly fees", "monthly", "2027-01-15", "150.00",
                           "AutoPay web", from_payer=True)
    page = driver.find_element(By.CSS_SELECTOR, "dl.schedule").text
    for value in ["Visa ending 4242", "OP-001", "AutoPay web", "Monthly", "2027-01-15",
                  "Up to 150.00 USD", "Bo Billing"]:
        check(value in page, f"{value!r} on the schedule's page: {page!r}")
    check("No runs yet." in driver.page_source, "no runs yet")

    # The operator's test clock runs it: the page shows the paid run and its posting.
    clock("2027-01-15", [monthly])
    paid = [r for r in runs(monthly) if r["status"] == "paid"]
    check(len(paid) == 1, f"one paid run: {runs(monthly)}")
    deadline = time.time() + 30
    rows = []
    while time.time() < deadline:
        driver.get(f"{BASE}/staff/autopay/schedule?schedule_id={monthly}")
        rows = run_rows()
        if rows and "(posted)" in rows[0]:
            break
        time.sleep(0.5)
    check(len(rows) == 1 and "Paid" in rows[0] and "2027-01-15" in rows[0],
          f"the paid run on the page: {rows}")
    check(rows and "(posted)" in rows[0], f"its posting, posted: {rows}")
    posting = re.search(r"([0-9a-f-]{36}) \(posted\)", rows[0] if rows else "")
    out["posting"] = posting.group(1) if posting else None
    fits("the schedule's page")
    shot("staff-autopay-schedule-390.png")
    driver.set_window_size(1280, 900)
    shot("staff-autopay-schedule-1280.png")
    driver.set_window_size(390, 844)

    # A payer whose card the processor declines: the run shows declined.
    plan = add_schedule("Poor Payer", "Plan", "monthly", "2027-01-20")
    clock("2027-01-20", [monthly, plan])
    driver.get(f"{BASE}/staff/autopay/schedule?schedule_id={plan}")
    rows = run_rows()
    check(len(rows) == 1 and "Declined: card_declined" in rows[0], f"the declined run: {rows}")

    # The list shows both, for the firm and for one payer.
    driver.get(BASE + "/staff/autopay")
    names = [row.find_element(By.CSS_SELECTOR, "th").text
             for row in driver.find_elements(By.CSS_SELECTOR, "table.autopay tbody tr")]
    check(sorted(names) == ["Monthly fees", "Plan"], f"the firm's schedules: {names}")
    fits("the Auto-Pay list")
    shot("staff-autopay-list-390.png")

    # Edited: the first date, now past, stays as it was; the name changes.
    driver.get(f"{BASE}/staff/autopay/schedule?schedule_id={monthly}")
    driver.find_element(By.LINK_TEXT, "Edit").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "ap-name")))
    check(driver.find_element(By.ID, "ap-name").get_attribute("value") == "Monthly fees" and
          driver.find_element(By.ID, "ap-amount").get_attribute("value") == "150.00" and
          driver.find_element(By.ID, "ap-pay-upto").is_selected(), "the form holds the schedule")
    driver.find_element(By.ID, "ap-name").send_keys(" (edited)")
    driver.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait.until(expected_conditions.url_contains("done=saved"))
    check(heading() == "Auto-Pay: Monthly fees (edited)", f"edited: {heading()!r}")
    # Another firm's schedule, or one that is not there: not found.
    driver.get(f"{BASE}/staff/autopay/schedule?schedule_id=999")
    check(heading() == "Page not found", f"an unknown schedule: {heading()!r}")

    # Over HTTP: disabling without the CSRF token changes nothing (403).
    cookie = "ml_staff=" + driver.get_cookie("ml_staff")["value"]
    response, _ = request("POST", "/staff/autopay/schedule",
                          f"schedule_id={monthly}&action=disable", cookie=cookie)
    check(response.status == 403, f"no CSRF token: {response.status}")
    check(operator("autopay", "show", str(monthly))["schedule"]["enabled"] == 1,
          "still enabled after the refused form")

    # Disabled in the page: the next due date makes no run.
    driver.get(f"{BASE}/staff/autopay/schedule?schedule_id={monthly}")
    driver.find_element(By.XPATH, "//button[text()='Disable']").click()
    wait.until(expected_conditions.url_contains("done=disable"))
    check(driver.find_element(By.CSS_SELECTOR, "dd.state").text.startswith("Off"), "shown off")
    clock("2027-02-15", [monthly, plan])
    check(len(runs(monthly)) == 1, f"a disabled schedule ran: {runs(monthly)}")
    # Delete asks first; keeping it changes nothing.
    driver.find_element(By.XPATH, "//button[text()='Delete']").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Delete"))
    driver.find_element(By.LINK_TEXT, "Keep it").click()
    check("Monthly fees" in heading(), "kept")
    out.update(monthly=monthly, plan=plan)
except Exception:
    print("at " + driver.current_url + ":\n" + driver.find_element(By.TAG_NAME, "body").text,
          flush=True)
    raise
finally:
    driver.quit()

json.dump(out, open(OUT, "w"))
if failures:
    print(f"{len(failures)} check(s) failed", flush=True)
    sys.exit(1)
print("staff Auto-Pay: ok", flush=True)
