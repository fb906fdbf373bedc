#!/usr/bin/python3
"""The staff app's Payers pages in a real browser against a real core (tests/e2e_staff_payers.sh).

usage: staff_payers.py BASE_URL BILLING_TOKEN READ_TOKEN QUERY CLIENT EXPECTED QUINN TRUST_CLIENT
    MAIL_DIR SHOTS

Headless Chromium on a 390 x 844 phone window. A billing member (Bea) accepts the invitation,
adds a payer (Pat), turns Login Access on through its confirmation step (no mail before the
confirmation), opens the Associations tab, "+", searches by client name for QUERY (more than
one client), narrows with the client-number column filter to CLIENT, checks it and creates the
association (a search of the trust ledgers finds TRUST_CLIENT too). "View as payer" lists exactly EXPECTED; Pat sets a password from the welcome
mail, signs in and sees exactly EXPECTED; the staff page then says the password is set.
Removing the association empties both. An e-mail change waits for its confirmation; Quinn's
saved card (QUINN: payer id) is removed; reset password and delete user. A read-only member
(Rae) sees the pages without a change button and gets 404 for changes posted anyway.
"""
import re
import sys
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions

from staff_browser import StaffBrowser, mail_link, mails
from web_common import check, failures, requester

BASE, BEA_TOKEN, RAE_TOKEN, QUERY, CLIENT, EXPECTED, QUINN, TRUST_CLIENT, MAIL_DIR, SHOTS = sys.argv[1:11]
EXPECTED = sorted(EXPECTED.split())
BEA, RAE = "bea@example.com", "rae@example.com"
STAFF_PASSWORD = "staff horse battery"
PAT, PAT_PASSWORD = "pat@example.com", "payer horse battery"
request = requester(BASE, timeout=15)
ui = StaffBrowser(BASE, SHOTS, 20)
driver, wait = ui.driver, ui.wait
heading, shot, fits, accept, sign_in = ui.heading, ui.shot, ui.fits, ui.accept, ui.sign_in


def click(selector):
    driver.find_element(By.CSS_SELECTOR, selector).click()


def notice_has(text):
    """Whether the page after a change says text in its notice (waiting for that page: the
    page before may have had a notice of its own)."""
    try:
        wait.until(lambda d: text in d.find_element(By.CSS_SELECTOR, "main .notice").text)
        return True
    except Exception:
        return False


def list_access(payer_id):
    """The Login Access column of the payers list for payer_id (None when not listed)."""
    driver.get(BASE + "/staff/payers")
    cells = driver.find_elements(By.CSS_SELECTOR, f"tr[data-payer-id='{payer_id}'] td.login-access")
    return cells[0].text if cells else None


def portal_invoices(path):
    """The invoice numbers the portal's listing shows on path (the payer's or the staff's)."""
    driver.get(BASE + path)
    rows = driver.find_elements(By.CSS_SELECTOR, "section.matter tbody th[scope=row]")
    return sorted(re.sub(r"^Invoice: ", "", row.text) for row in rows)


try:
    driver.set_page_load_timeout(30)
    driver.set_window_size(390, 844)
    accept(BEA_TOKEN, STAFF_PASSWORD)
    sign_in(BEA, STAFF_PASSWORD)

    # Payers in the navigation; Add Payer.
    driver.find_element(By.LINK_TEXT, "Payers").click()
    wait.until(expected_conditions.url_to_be(BASE + "/staff/payers"))
    check(heading() == "Payers", f"payers page: {heading()!r}")
    fits("the payers list")
    shot("staff-payers-390.png")
    check("Quinn Carded" in driver.find_element(By.CSS_SELECTOR, "table.payers").text,
          "the firm's payer listed")
    driver.find_element(By.ID, "add-name").send_keys("Pat Payer")
    driver.find_element(By.ID, "add-email").send_keys(PAT)
    click("form.add-payer button[type=submit]")
    check(notice_has("The payer is added"), "the payer added")
    pat = re.search(r"/staff/payers/([0-9]+)", driver.current_url).group(1)
    check(heading() == "Pat Payer", f"the payer's page: {heading()!r}")
    state = driver.find_element(By.CSS_SELECTOR, ".access-state").get_attribute("data-state")
    check(state == "off", f"login access off at first: {state}")
    fits("the payer page")
    # The list says who can sign in to the portal: not Pat, yet.
    access = list_access(pat)
    check(access == "Off", f"the list's Login Access for Pat at first: {access!r}")
    driver.get(f"{BASE}/staff/payers/{pat}")

    # Login Access: the switch asks first; nothing is mailed before Confirm.
    click("a.switch")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".confirm")))
    check(PAT in driver.find_element(By.CSS_SELECTOR, ".confirm").text,
          "the confirmation names the address")
    shot("staff-payer-access-confirm-390.png", ".confirm")
    # (e2e_staff_payers.sh counts the welcome mails at the end: exactly one.)
    check(not mails(MAIL_DIR, PAT, "/set-password"), "no mail before the confirmation")
    click(".confirm button[type=submit]")
    check(notice_has("welcome e-mail is on its way"), "the welcome mail's notice")
    access = driver.find_element(By.CSS_SELECTOR, ".access-state").get_attribute("data-state")
    invitation = driver.find_element(By.CSS_SELECTOR, ".invitation").get_attribute("data-invitation")
    check(access == "invited" and invitation == "sent", f"invited, sent: {access}, {invitation}")
    welcome = mail_link(MAIL_DIR, PAT, "/set-password")
    check(welcome is not None, "the welcome mail arrived")
    fits("the payer page with access on")
    shot("staff-payer-390.png", "section.access")
    driver.set_window_size(1280, 900)
    shot("staff-payer-1280.png", "section.access")
    driver.set_window_size(390, 844)

    # Associations: "+", Search By client name, the column filter, check, Create Association.
    driver.find_element(By.LINK_TEXT, "Associations").click()
    wait.until(expected_conditions.url_contains("/staff/payer-associations/"))
    check("No associations" in driver.page_source, "no associations at first")
    click("a.add")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "by")))
    driver.find_element(By.CSS_SELECTOR, "#by option[value=client-name]").click()
    driver.find_element(By.ID, "text").send_keys(QUERY)
    click("#association-search button[type=submit]")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.results")))
    numbers = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.results td.client_number")]
    check(len(numbers) > 1 and CLIENT in numbers, f"the search finds several clients: {numbers}")
    driver.find_element(By.ID, "f_client_number").send_keys(CLIENT + Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "table.results tbody tr")) == 1)
    numbers = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.results td.client_number")]
    check(numbers == [CLIENT], f"the column filter keeps the one client: {numbers}")
    fits("the association search")
    shot("staff-payer-association-search-390.png", "fieldset.filters")
    driver.set_window_size(1280, 900)
    shot("staff-payer-association-search-1280.png", "#add-h")
    driver.set_window_size(390, 844)
    click("table.results input[type=checkbox]")
    click("form.results button[type=submit]")
    check(notice_has("Associations created: 1."), "the association created")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.associations tbody tr")
    check(len(rows) == 1 and rows[0].get_attribute("data-number") == CLIENT,
          f"the association listed: {[row.text for row in rows]}")
    shot("staff-payer-associations-390.png")
    # Look in the trust ledgers: a client with money in trust (no invoice needed).
    click("a.add")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "target")))
    driver.find_element(By.CSS_SELECTOR, "#by option[value=client-number]").click()
    driver.find_element(By.CSS_SELECTOR, "#target option[value=trust]").click()
    driver.find_element(By.ID, "text").send_keys(TRUST_CLIENT + Keys.ENTER)
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.results")))
    numbers = {cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.results td.client_number")}
    check(numbers == {TRUST_CLIENT} and "Ledgers" in driver.find_element(By.CSS_SELECTOR, "table.results thead").get_attribute("textContent"),
          f"the trust ledgers of {TRUST_CLIENT}: {numbers}")

    # View as payer: exactly the client's open invoices.
    driver.find_element(By.LINK_TEXT, "View as payer").click()
    shown = portal_invoices(f"/staff/payer-view/{pat}")
    check(shown == EXPECTED, f"view as payer {shown} != {EXPECTED}")
    check(not driver.find_elements(By.CSS_SELECTOR, "main input.pick:not([disabled])"),
          "nothing to pay in the staff's view")
    fits("view as payer")
    shot("staff-payer-view-390.png")

    # The payer: a password from the mail, then the portal shows the same invoices.
    driver.get(f"{BASE}/set-password?token={welcome}")
    driver.find_element(By.ID, "password").send_keys(PAT_PASSWORD)
    driver.find_element(By.ID, "confirm").send_keys(PAT_PASSWORD)
    click("form.stack button[type=submit]")
    wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "set"))
    driver.get(BASE + "/sign-in")
    driver.find_element(By.ID, "email").send_keys(PAT)
    driver.find_element(By.ID, "password").send_keys(PAT_PASSWORD + Keys.ENTER)
    wait.until(expected_conditions.url_to_be(BASE + "/invoices"))
    shown = portal_invoices("/invoices")
    check(shown == EXPECTED, f"the payer's portal {shown} != {EXPECTED}")
    driver.get(f"{BASE}/staff/payers/{pat}")
    access = driver.find_element(By.CSS_SELECTOR, ".access-state").get_attribute("data-state")
    invitation = driver.find_element(By.CSS_SELECTOR, ".invitation").get_attribute("data-invitation")
    check(access == "active" and invitation == "password set",
          f"active, password set: {access}, {invitation}")
    access = list_access(pat)
    check(access == "On", f"the list's Login Access for Pat with a password: {access!r}")

    # Removing the association removes the invoices from both views.
    driver.get(f"{BASE}/staff/payer-associations/{pat}")
    click("table.associations button.danger")
    check(notice_has("removed"), "the association removed")
    check(portal_invoices("/invoices") == [], "the payer sees nothing after the removal")
    check("no open invoices" in driver.page_source, "the portal says so")
    check(portal_invoices(f"/staff/payer-view/{pat}") == [], "view as payer: nothing either")

    # An e-mail change of a payer with a login waits for the new address's confirmation.
    driver.get(f"{BASE}/staff/payers/{pat}")
    field = driver.find_element(By.ID, "email")
    field.clear()
    field.send_keys("pat.new@example.com")
    click("form.edit-payer button[type=submit]")
    check(notice_has("confirmed by the payer first"), "the e-mail change waits")
    check(driver.find_element(By.ID, "email").get_attribute("value") == PAT, "the old address stays")
    check("pat.new@example.com" in driver.find_element(By.CSS_SELECTOR, ".pending-email").text,
          "the new address is shown as waiting")

    # Reset password, then delete the login (with its confirmation).
    click("button[aria-label='Send a password reset e-mail']")
    check(notice_has("reset e-mail is on its way"), "reset sent")
    check(mail_link(MAIL_DIR, PAT, "/set-password", 20) is not None, "the reset mail")
    click("a.button.danger")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".confirm button.danger")))
    click(".confirm button.danger")
    check(notice_has("login is deleted"), "the login deleted")
    access = driver.find_element(By.CSS_SELECTOR, ".access-state").get_attribute("data-state")
    check(access == "deleted", f"deleted: {access}")
    driver.get(BASE + "/invoices")
    check(driver.current_url.startswith(BASE + "/sign-in"), "the payer's session ended")

    # Quinn's saved card, listed without its token, removed.
    driver.get(f"{BASE}/staff/payers/{QUINN}")
    methods = driver.find_element(By.CSS_SELECTOR, "table.methods").text
    check("visa ending 4242" in methods and "12/2099" in methods, f"the saved card: {methods!r}")
    check("tok_quinn" not in driver.page_source, "no processor token on the page")
    click("table.methods button")
    check(notice_has("method is removed"), "the method removed")
    check("No saved methods" in driver.page_source, "no methods left")

    # The read-only member: the same pages, no buttons.
    click("form.sign-out button")
    wait.until(expected_conditions.url_to_be(BASE + "/staff/sign-in"))
    accept(RAE_TOKEN, STAFF_PASSWORD)
    sign_in(RAE, STAFF_PASSWORD)
    driver.get(BASE + "/staff/payers")
    check("Pat Payer" in driver.page_source and not driver.find_elements(By.ID, "add-name"),
          "read-only: the list without Add Payer")
    driver.get(f"{BASE}/staff/payers/{pat}")
    check(heading() == "Pat Payer", "read-only: the payer page")
    check(not driver.find_elements(By.CSS_SELECTOR, "main form[method=post], a.switch, a.button.danger"),
          "read-only: no change buttons on the payer page")
    driver.get(f"{BASE}/staff/payer-associations/{pat}?add=1")
    check(not driver.find_elements(By.CSS_SELECTOR, "a.add, main form[method=post], #association-search"),
          "read-only: no + and no search on the associations tab")
    driver.get(f"{BASE}/staff/payer-view/{pat}")
    check(heading() == "Pat Payer", "read-only: view as payer")
    fits("view as payer for a read-only member")
    rae_cookie = "ml_staff=" + driver.get_cookie("ml_staff")["value"]
    driver.get(f"{BASE}/staff/payers/{pat}")
    rae_csrf = driver.find_element(By.CSS_SELECTOR, "form.sign-out input[name=csrf]").get_attribute("value")
except Exception:
    print("at " + driver.current_url + ":\n" + driver.find_element(By.TAG_NAME, "body").text,
          flush=True)
    raise
finally:
    driver.quit()

# The read-only member posts changes anyway: the core refuses them all (404), nothing changes.
for path, fields in [(f"/staff/payers/{pat}", {"action": "edit", "name": "Renamed by Rae",
                                                "email": PAT, "phone": ""}),
                     (f"/staff/payers/{pat}", {"action": "access-on"}),
                     ("/staff/payers", {"name": "Added by Rae", "email": "rae.payer@example.com"}),
                     (f"/staff/payer-associations/{pat}", {"action": "add", "level": "client",
                                                           "pick_0": CLIENT})]:
    body = urllib.parse.urlencode(dict(fields, csrf=rae_csrf))
    response, _ = request("POST", path, body, rae_cookie)
    check(response.status == 404, f"read-only POST {fields.get('action', 'add payer')}: {response.status}")
response, page = request("GET", f"/staff/payers/{pat}", cookie=rae_cookie)
check(response.status == 200 and "Renamed by Rae" not in page, "nothing changed by the read-only posts")
# Another firm's or an unknown payer's id: the same 404 as an unknown page.
response, _ = request("GET", "/staff/payers/999999", cookie=rae_cookie)
check(response.status == 404, f"an unknown payer: {response.status}")
response, _ = request("GET", "/staff/payer-view/0", cookie=rae_cookie)
check(response.status == 404, f"a malformed payer id: {response.status}")

if failures:
    print(f"{len(failures)} check(s) failed", flush=True)
    sys.exit(1)
print("staff payers: all checks passed", flush=True)
