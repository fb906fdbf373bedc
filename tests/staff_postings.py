#!/usr/bin/python3
"""Manage Postings and the dashboard in a real browser against a real core
(tests/e2e_staff_postings.sh).

usage: staff_postings.py BASE_URL main BO_TOKEN RITA_TOKEN REJECTED OTHER_INVOICE PAYMENT
                         CLIENT OTHER_CLIENT SHOTS_DIR
       staff_postings.py BASE_URL offline SHOTS_DIR
       staff_postings.py BASE_URL refused BO_TOKEN SHOTS_DIR

main: Bo (billing) and Rita (read-only) accept their invitations. Bo's dashboard shows the
agent online, one posting rejected and none waiting (links into Manage Postings), today's card
payment and the deposit accounts. Under "Rejected" Bo finds the rejected posting, reallocates
it to another invoice of its client by typing an amount, and the new posting posts. A filter by
client narrows the list. On the card payment's page Bo refunds 5.00 of the operating charge
(its reversing posting posts) and a refund of more than is left is refused with the core's
reason. Rita sees the postings and the payment but no button, and a POST with Rita's session
and CSRF token is 404. offline: after the agent stopped, Bo's dashboard says "Offline".
refused (tests/e2e_firm_item_cap.sh): Bo accepts the invitation, and the dashboard says the
firm's matter data is not taken (the firm is past core/max_firm_items) and whom to ask.
"""
import os
import sys
import time
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

from staff_browser import StaffBrowser
from web_common import check, failures, requester

BASE, PHASE = sys.argv[1:3]
BO, BO_PASSWORD = "bo@example.com", "billing horse battery"
RITA, RITA_PASSWORD = "rita@example.com", "reader horse battery"
request = requester(BASE, timeout=10)
ui = StaffBrowser(BASE)
driver, wait = ui.driver, ui.wait
heading, shot, fits, accept = ui.heading, ui.shot, ui.fits, ui.accept


def sign_in(email, password):
    ui.sign_in(email, password, fresh=True)


def text_of(selector):
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0].text.strip() if found else None


def state_becomes(path, state, seconds=30):
    """Reload the posting's page until its state reads state (the agent answers)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        driver.get(BASE + path)
        if text_of("#posting-state") == state:
            return True
        time.sleep(0.3)
    return False


def list_rows():
    return [row.get_attribute("data-posting")
            for row in driver.find_elements(By.CSS_SELECTOR, "table.postings tr[data-posting]")]


def offline_phase():
    sign_in(BO, BO_PASSWORD)
    agent = text_of("span.status[class*=agent-]")
    check(agent == "Offline", f"the dashboard says offline: {agent!r}")
    check(text_of("dd.last-contact") not in (None, "never"), "the last contact is kept")
    check(text_of("dd.postings-rejected a") == "1" and text_of("dd.postings-unresolved a") == "0",
          f"rejected {text_of('dd.postings-rejected a')!r}, to resolve {text_of('dd.postings-unresolved a')!r}")
    shot("staff-dashboard-offline-390.png")


def refused_phase():
    accept(sys.argv[3], BO_PASSWORD)
    sign_in(BO, BO_PASSWORD)
    replica = text_of("dd.replica")
    check(replica is not None and replica.startswith("Not taking the firm's matter data")
          and "ask your IT staff" in replica, f"the dashboard says the data is refused: {replica!r}")
    check("refused" in (driver.find_element(By.CSS_SELECTOR, "dd.replica").get_attribute("class")),
          "the refusal is marked")
    fits("the dashboard, data refused")
    shot("staff-dashboard-refused-390.png")


def main_phase():
    global SHOTS
    (BO_TOKEN, RITA_TOKEN, REJECTED, OTHER_INVOICE, PAYMENT, CLIENT, OTHER_CLIENT,
     SHOTS) = sys.argv[3:11]
    ui.shots = SHOTS
    os.makedirs(SHOTS, exist_ok=True)
    accept(BO_TOKEN, BO_PASSWORD)
    accept(RITA_TOKEN, RITA_PASSWORD)

    # The dashboard: the agent online, the counts (links into Manage Postings), today's
    # payment and the deposit accounts.
    sign_in(BO, BO_PASSWORD)
    check(text_of("span.status.agent-online") == "Online", "the dashboard says online")
    check(text_of("dd.last-contact") not in (None, "never"), "the last contact")
    check(text_of("dd.replica") is not None, "how far the replica is behind")
    check(text_of("dd.postings-rejected a") == "1", f"one rejected: {text_of('dd.postings-rejected a')!r}")
    check(text_of("dd.postings-waiting a") == "0", f"none waiting: {text_of('dd.postings-waiting a')!r}")
    check(text_of("dd.postings-unresolved a") == "1", f"one to resolve: {text_of('dd.postings-unresolved a')!r}")
    check(text_of("p.payments-today .count") == "1", f"today's payments: {text_of('p.payments-today')!r}")
    accounts = text_of("table.accounts") or ""
    check("OP-001" in accounts and "TR-001" in accounts and "Trust" in accounts,
          f"the deposit accounts: {accounts!r}")
    fits("the dashboard")
    shot("staff-dashboard-390.png")
    driver.set_window_size(1280, 900)
    shot("staff-dashboard-1280.png")
    driver.set_window_size(390, 844)

    # Rejected: the link from the dashboard, the posting in the view.
    driver.find_element(By.CSS_SELECTOR, "dd.postings-rejected a").click()
    wait.until(expected_conditions.url_contains("state=rejected"))
    check(heading() == "Postings", f"postings page: {heading()!r}")
    check(list_rows() == [REJECTED], f"the rejected view: {list_rows()}")
    current = text_of("nav.tabs a[aria-current=page]")
    check(current == "Rejected", f"the current view: {current!r}")
    fits("the postings list")
    driver.set_window_size(1280, 900)
    shot("staff-postings-rejected-1280.png")
    driver.set_window_size(390, 844)

    # Pages: 25 postings, then the older ones, none twice; back to the newest.
    driver.get(BASE + "/staff/postings")
    first_page = list_rows()
    driver.find_element(By.CSS_SELECTOR, "nav.pages a[rel=next]").click()
    wait.until(expected_conditions.url_contains("before="))
    second_page = list_rows()
    check(len(first_page) == 25 and second_page and not set(first_page) & set(second_page),
          f"pages of {len(first_page)} and {len(second_page)} postings, apart")
    check(driver.find_elements(By.CSS_SELECTOR, "nav.pages a[rel=first]"), "a link to the newest")
    everything = first_page + second_page

    # A filter by client narrows the list (all views): only that client's postings.
    driver.get(BASE + "/staff/postings")
    driver.find_element(By.ID, "f-client").send_keys(OTHER_CLIENT)
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait.until(expected_conditions.url_contains("client="))
    narrowed = list_rows()
    while driver.find_elements(By.CSS_SELECTOR, "nav.pages a[rel=next]"):
        main = driver.find_element(By.TAG_NAME, "main")
        driver.find_element(By.CSS_SELECTOR, "nav.pages a[rel=next]").click()
        wait.until(expected_conditions.staleness_of(main))
        narrowed += list_rows()
    clients = {cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.postings td[data-label=Client]")}
    check(0 < len(narrowed) < len(everything) and clients == {OTHER_CLIENT},
          f"the client filter: {len(narrowed)} of {len(everything)}, clients {clients}")
    check(REJECTED not in narrowed, "another client's posting is filtered out")
    # An amount range: only the 0.01 payments, with the source filter kept in the links.
    driver.get(BASE + "/staff/postings?source=staff&max=0.01")
    amounts = {cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.postings td[data-label=Amount]")}
    check(amounts == {"0.01 USD"}, f"the amount filter: {amounts}")
    next_link = driver.find_elements(By.CSS_SELECTOR, "nav.pages a[rel=next]")
    check(not next_link or "max=0.01" in next_link[0].get_attribute("href"), "filters kept in the pages")
    driver.get(BASE + "/staff/postings?min=abc")
    check("not an amount" in (text_of("p.error") or ""), "a filter amount that is not one is said")

    # Reallocate the rejected posting to another invoice of its client.
    driver.get(f"{BASE}/staff/postings/{REJECTED}")
    check(text_of("#posting-state") == "Rejected", f"the posting's state: {text_of('#posting-state')!r}")
    check("invoice_not_open" in (text_of("#posting-answer") or ""), "the matter system's reason")
    amount = driver.find_element(By.CSS_SELECTOR, f"input[data-reference='{OTHER_INVOICE}']")
    # First a wrong total: the core's refusal is shown, the typed amount kept.
    amount.send_keys("0.40")
    driver.find_element(By.CSS_SELECTOR, "form.reallocate button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    check("must sum to" in text_of("p.error"), f"the core's refusal: {text_of('p.error')!r}")
    amount = driver.find_element(By.CSS_SELECTOR, f"input[data-reference='{OTHER_INVOICE}']")
    check(amount.get_attribute("value") == "0.40", "the typed amount is kept")
    amount.clear()
    amount.send_keys("0.50")
    fits("the reallocation form")
    shot("staff-posting-reallocate-390.png")
    driver.find_element(By.CSS_SELECTOR, "form.reallocate button[type=submit]").click()
    wait.until(expected_conditions.url_contains("done=reallocated"))
    moved = urllib.parse.urlsplit(driver.current_url).path.rsplit("/", 1)[1]
    check(moved != REJECTED, "the reallocation is a new posting")
    check(state_becomes(f"/staff/postings/{moved}", "Posted"), "the reallocated posting posts")
    lines = text_of("table.lines") or ""
    check(OTHER_INVOICE in lines and "0.50" in lines, f"the new posting's lines: {lines!r}")
    shot("staff-posting-posted-390.png")
    driver.get(f"{BASE}/staff/postings/{REJECTED}")
    check(driver.find_elements(By.CSS_SELECTOR, f"ol.history a[href='/staff/postings/{moved}']"),
          "the rejected posting's history links to its reallocation")
    check(not driver.find_elements(By.CSS_SELECTOR, "form.reallocate"), "reallocated once only")
    # Dealt with: still rejected, marked reallocated, no longer to resolve.
    driver.get(BASE + "/staff/postings?state=rejected")
    check("(reallocated)" in (text_of(f"tr[data-posting='{REJECTED}'] td[data-label=State]") or ""),
          "the rejected posting is marked reallocated")
    driver.get(BASE + "/staff/postings?state=unresolved")
    check(list_rows() == [], f"nothing left to resolve: {list_rows()}")

    # The card payment: a refund of 5.00 makes a reversing posting that posts.
    driver.get(f"{BASE}/staff/payments/{PAYMENT}")
    check(heading() == "Card payment", f"the payment's page: {heading()!r}")
    form = "section.charge[data-account-type=operating] form.refund"
    driver.find_element(By.CSS_SELECTOR, form + " input[name=amount]").send_keys("5.00")
    fits("the payment's page")
    shot("staff-payment-390.png")
    driver.find_element(By.CSS_SELECTOR, form + " button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "a.reversal-link")))
    check("Refund recorded" in (text_of("p.notice") or ""), f"the refund's notice: {text_of('p.notice')!r}")
    reversal = driver.find_element(By.CSS_SELECTOR, "a.reversal-link").text
    check(state_becomes(f"/staff/postings/{reversal}", "Posted"), "the refund's reversing posting posts")
    check("5.00" in (text_of("dd.amount") or ""), f"the reversal's amount: {text_of('dd.amount')!r}")
    # More than is left: refused, in the core's words, nothing given back.
    driver.get(f"{BASE}/staff/payments/{PAYMENT}")
    driver.find_element(By.CSS_SELECTOR, form + " input[name=amount]").send_keys("999.00")
    driver.find_element(By.CSS_SELECTOR, form + " button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    refusal = text_of("p.error") or ""
    check(refusal.startswith("The refund was refused:"), f"the refusal: {refusal!r}")
    shot("staff-payment-refused-390.png")

    # Rita (read-only) sees, but has no button, and the core refuses her POST.
    sign_in(RITA, RITA_PASSWORD)
    driver.get(BASE + "/staff/postings?state=rejected")
    check(REJECTED in list_rows(), "Rita sees the rejected posting")
    driver.get(f"{BASE}/staff/postings/{REJECTED}")
    check(heading().startswith("Posting"), f"Rita's posting page: {heading()!r}")
    check(not driver.find_elements(By.CSS_SELECTOR, "form.resend, form.reallocate"),
          "no resend or reallocate for read-only")
    driver.get(f"{BASE}/staff/payments/{PAYMENT}")
    check(heading() == "Card payment" and not driver.find_elements(By.CSS_SELECTOR, "form.reverse"),
          "Rita sees the payment, without refund, void or chargeback")
    csrf = driver.find_element(By.CSS_SELECTOR, "form.sign-out input[name=csrf]").get_attribute("value")
    cookie = "ml_staff=" + driver.get_cookie("ml_staff")["value"]
    body = urllib.parse.urlencode({"csrf": csrf, "action": "resend"})
    response, _ = request("POST", f"/staff/postings/{REJECTED}", body, cookie)
    check(response.status == 404, f"Rita's resend: {response.status}")
    body = urllib.parse.urlencode({"csrf": csrf, "action": "refund", "charge_key": PAYMENT + ":operating"})
    response, _ = request("POST", f"/staff/payments/{PAYMENT}", body, cookie)
    check(response.status == 404, f"Rita's refund: {response.status}")


try:
    driver.set_page_load_timeout(20)
    driver.set_window_size(390, 844)
    if PHASE == "offline":
        ui.shots = sys.argv[3]
        offline_phase()
    elif PHASE == "refused":
        ui.shots = sys.argv[4]
        os.makedirs(ui.shots, exist_ok=True)
        refused_phase()
    else:
        main_phase()
except Exception:
    # What the browser showed when a wait gave up, for the log.
    print("at " + driver.current_url + ":\n" + driver.find_element(By.TAG_NAME, "body").text[:3000])
    raise
finally:
    driver.quit()

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print(f"staff postings ({PHASE}): all checks passed")
