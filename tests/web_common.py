"""What the portal's browser and HTTP tests (tests/web_*.py) share: the list of failed checks,
a plain HTTP client for the web under test, and headless Chromium from Debian's packages
(chromium and chromedriver given explicitly, so Selenium never tries to download a driver)."""
import http.client
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL: " + what, flush=True)


def tampered(token):
    """token with its first character changed to another one: a wrong token of the right
    form. (Putting a fixed character first is the right token whenever the token already
    starts with it, one run in 64.)"""
    return ("B" if token[:1] == "A" else "A") + token[1:]


def requester(base, timeout=10):
    """request(method, path, body=None, cookie=None) -> (response, text) against base, a
    form-encoded body by default."""
    url = urllib.parse.urlsplit(base)

    def request(method, path, body=None, cookie=None):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookie:
            headers["Cookie"] = cookie
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read().decode()
        connection.close()
        return response, data

    return request


def chrome(logs=()):
    """Headless Chromium; logs names the logs to keep ("browser", "performance")."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--disable-extensions"]:
        options.add_argument(argument)
    if logs:
        options.set_capability("goog:loggingPrefs", {log: "ALL" for log in logs})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def patient_wait(driver, seconds):
    """A wait that asks again while the element it looks at belongs to the page being
    replaced ("Node with given id does not belong to the document"): not an answer yet."""
    return WebDriverWait(driver, seconds, ignored_exceptions=(WebDriverException,))
