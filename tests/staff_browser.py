"""What the staff app's browser tests (tests/staff_*.py) share: headless Chromium on the staff
app with its wait, screenshots and the width check; accepting an invitation, signing in and
out; the second factor's codes (RFC 6238); the links in the mails tests/smtp_server.py keeps."""
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import struct
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions

from web_common import check, chrome, patient_wait


def totp(secret, step):
    """RFC 6238: HMAC-SHA1 of the 30 s step, dynamic truncation, 6 digits."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1000000:06d}"


_used_steps = {}


def next_code(secret, who=None):
    """A code for a step later than any who (by default, anyone with this secret) used: the
    core takes each step of an account once, whatever its key, steps -1..+1 of its clock. The
    current step, or the one after the last one used, waiting on the clock when that is not
    yet in reach. Never the step before the current one (what it gave when the last code was
    2 or more steps old): the core refuses that code once the next step begins, which may be
    before the request reaches it on a loaded machine; the current step's code is good for 30
    to 60 s more, the next one's for 60 to 90 s."""
    holder = secret if who is None else who
    deadline = time.time() + 40
    while True:
        now = int(time.time()) // 30
        last = _used_steps.get(holder)
        step = max(now, last + 1 if last is not None else now)
        if step <= now + 1:
            _used_steps[holder] = step
            return totp(secret, step)
        check(time.time() < deadline, "the TOTP step came")
        time.sleep(0.5)


def mails(mail_dir, email, path):
    """The tokens of PATH?token= links in mails to email, oldest first."""
    found = []
    for name in glob.glob(os.path.join(mail_dir, "*.json")):
        mail = json.load(open(name))
        hit = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_-]{43})", mail["body"] or "")
        if hit and email in mail["rcpt_tos"]:
            found.append((os.path.getmtime(name), hit.group(1)))
    return [token for _, token in sorted(found)]


def mail_link(mail_dir, email, path, seconds=20):
    """The newest PATH?token= link in a mail to email, waiting up to seconds for the mail."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = mails(mail_dir, email, path)
        if found:
            return found[-1]
        time.sleep(0.2)
    return None


class StaffBrowser:
    """Headless Chromium on the staff app at base: driver, and wait (seconds long)."""

    def __init__(self, base, shots=None, seconds=15):
        self.base = base
        self.shots = shots
        self.driver = chrome()
        self.wait = patient_wait(self.driver, seconds)
        if shots:
            os.makedirs(shots, exist_ok=True)

    def heading(self):
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def shot(self, name, show=None):
        """A screenshot into shots, with the element show (a CSS selector) scrolled to the
        top first."""
        if show:
            self.driver.execute_script("arguments[0].scrollIntoView()",
                                       self.driver.find_element(By.CSS_SELECTOR, show))
        self.driver.save_screenshot(os.path.join(self.shots, name))

    def fits(self, what):
        width = self.driver.execute_script("return document.documentElement.scrollWidth")
        check(width <= 390, f"{what} fits 390 px (width {width})")

    def submit(self, form_selector="main form.stack"):
        self.driver.find_element(By.CSS_SELECTOR, form_selector + " button[type=submit]").click()

    def accept(self, token, password, with_code=False):
        """Accept an invitation; returns the second factor's secret when one is asked."""
        self.driver.get(f"{self.base}/staff/accept?token={token}")
        secret = None
        if with_code:
            secret = self.driver.find_element(By.ID, "totp-secret").text.strip()
            self.driver.find_element(By.ID, "totp_code").send_keys(next_code(secret))
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.ID, "confirm").send_keys(password)
        self.submit()
        self.wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"),
                                                                          "Welcome"))
        return secret

    def sign_in(self, email, password, code=None, expect="/staff/", fresh=False):
        """Sign in (with code when the second step asks for one); wait for expect unless it is
        None. fresh: forget every cookie first (another member's session)."""
        if fresh:
            self.driver.delete_all_cookies()
        self.driver.get(self.base + "/staff/sign-in")
        self.driver.find_element(By.ID, "email").send_keys(email)
        self.driver.find_element(By.ID, "password").send_keys(password)
        # The keyboard alone signs in: Enter in the password field sends the form.
        self.driver.find_element(By.ID, "password").send_keys(Keys.ENTER)
        if code is not None:
            self.wait.until(expected_conditions.presence_of_element_located((By.ID, "code")))
            self.driver.find_element(By.ID, "code").send_keys(code)
            self.submit()
        if expect:
            self.wait.until(expected_conditions.url_to_be(self.base + expect))

    def sign_out(self):
        self.driver.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
        self.wait.until(expected_conditions.url_to_be(self.base + "/staff/sign-in"))
