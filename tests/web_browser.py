#!/usr/bin/python3
"""Browser smoke test of matterlink-web (tests/e2e_web_browser.sh starts it).

usage: web_browser.py BASE_URL SCREENSHOT_DIR

Headless Chromium on a phone-sized window (390 x 844) through Debian's chromedriver, given
explicitly so that Selenium never tries to download one. It opens /sign-in and checks that
every field has its label, that the style sheet applied (the CSP allows it, and there is no
inline style to refuse), that the page fits the width, that the fields take the keyboard,
and it saves a screenshot.
"""
import os
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from web_common import check, failures, chrome

BASE, SHOTS = sys.argv[1], sys.argv[2]
driver = chrome(('browser',))


try:
    driver.set_page_load_timeout(20)
    driver.set_window_size(390, 844)
    driver.get(BASE + "/sign-in")
    check(driver.title.startswith("Sign in"), f"title {driver.title!r}")
    fields = driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden])")
    check(len(fields) == 2, f"two visible fields, got {len(fields)}")
    for field in fields:
        field_id = field.get_attribute("id")
        labels = driver.find_elements(By.CSS_SELECTOR, f"label[for='{field_id}']")
        check(len(labels) == 1 and labels[0].text.strip() != "", f"label for {field_id}")
    # The style sheet applied: the header is the accent colour, not the browser's default.
    header = driver.find_element(By.CSS_SELECTOR, "header.site")
    check(header.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)",
          "the style sheet applied")
    # Nothing wider than the phone's screen.
    width = driver.execute_script("return document.documentElement.scrollWidth")
    check(width <= 390, f"page width {width} fits 390 px")
    # The keyboard alone reaches the fields: Tab from the skip link lands on the e-mail field.
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    body = driver.switch_to.active_element
    body.send_keys(Keys.TAB)
    active = driver.switch_to.active_element
    check(active.get_attribute("id") == "email", f"Tab reaches the e-mail field, got "
                                                 f"{active.get_attribute('id')!r}")
    # The browser reported no CSP violation (it logs them to the console).
    for entry in driver.get_log("browser"):
        check("Content Security Policy" not in entry.get("message", ""),
              "CSP violation: " + entry.get("message", ""))
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, "web-sign-in-390.png")
    check(driver.save_screenshot(path) and os.path.getsize(path) > 1000, "screenshot " + path)
    print("screenshot: " + path, flush=True)
finally:
    driver.quit()

if failures:
    sys.exit(1)
print("web_browser: all checks passed", flush=True)
